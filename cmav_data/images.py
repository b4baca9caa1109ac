"""Image encoding and squaring shared by the recipes (Sub-URMP crops, INIS photos).

JPEG output uses fixed encoder settings (baseline, no optimisation, accurate DCT) so that equal
pixels give equal bytes; squares are made either by padding (keeps the whole picture: Sub-URMP's
players) or by a centred crop (fills the frame: INIS's photos), then a Lanczos resize.

Video frames are encoded with libjpeg-turbo through simplejpeg, straight from the decoder's 4:2:0
YCbCr planes when their colours are BT.601 (JPEG's own): no RGB conversion and no chroma
resampling, which made the crops' encoding 2x cheaper than RGB through Pillow.
"""

from __future__ import annotations

import io

import numba
import numpy as np
import simplejpeg
from PIL import Image


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def encode_jpeg_planes(planes: tuple[np.ndarray, np.ndarray, np.ndarray], quality: int) -> bytes:
    """JPEG of full-range BT.601 4:2:0 planes Y [h, w], Cb and Cr [ceil(h/2), ceil(w/2)].

    TurboJPEG reads the luma of a 4:2:0 image as ceil(h/2)*2 x ceil(w/2)*2 samples (whole chroma
    pairs) through the plane's row stride: for an odd width or height it reads one column or row
    past the plane, which in a crop is the next row's first pixel or memory nobody wrote, and which
    leaks into the last 8x8 blocks. An odd plane is therefore given that column and row here, as
    copies of its edge (what libjpeg pads the rest of the block with), so equal pixels give equal bytes.
    """
    y, u, v = planes
    height, width = y.shape
    if height % 2 or width % 2:
        padded = np.empty((height + height % 2, width + width % 2), np.uint8)
        padded[:height, :width] = y
        padded[:height, width:] = y[:, width - 1 :]
        padded[height:] = padded[height - 1]
        y = padded[:height, :width]  # the image's own size, with the padding in the rows' stride
    return simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality, fastdct=False)


def encode_jpeg_rgb(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG (4:2:0, as Pillow's default) of a uint8 RGB array [h, w, 3]."""
    return simplejpeg.encode_jpeg(rgb, quality=quality, colorspace="RGB", colorsubsampling="420", fastdct=False)


# Video (limited) range to JPEG's full range, in 16-bit fixed point: out = floor((x - low) * scale + bias)
# after clamping x to [low, high]. Luma 16..235 -> 0..255 (rounded); chroma 16..240 -> 0..255 with
# 128 staying 128 (bias just under 1: the +0.5 of the centre and the +0.5 of rounding; 240 -> 255).
LUMA_LEVELS = (16, 235, round(255 / 219 * 65536), 32768)
CHROMA_LEVELS = (16, 240, int(255 / 224 * 65536), 65535)
FULL_LEVELS = (0, 255, 65536, 0)  # identity


@numba.njit(nogil=True, cache=True)
def _expand_copy(plane, top, left, height, width, low, high, scale, bias):
    """A new [height, width] array of the levels-mapped pixels (vectorised: clamp, multiply, shift)."""
    out = np.empty((height, width), np.uint8)
    low8, high8 = np.uint8(low), np.uint8(high)
    low32, scale32, bias32 = np.uint32(low), np.uint32(scale), np.uint32(bias)
    for i in range(height):
        row = plane[top + i, left : left + width]
        target = out[i]
        for j in range(width):
            x = np.uint32(min(max(row[j], low8), high8))
            target[j] = np.uint8(min(((x - low32) * scale32 + bias32) >> np.uint32(16), np.uint32(255)))
    return out


def crop_planes(planes: tuple[np.ndarray, np.ndarray, np.ndarray], box: tuple[int, int, int, int],
                limited_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of ``box`` (left, top, right, bottom) from 4:2:0 planes, as new full-range planes.

    ``limited_range``: the planes hold video levels (Y 16-235), expanded to JPEG's 0-255 while
    copying, in one vectorised pass about as fast as a plain copy (swscale's range conversion cost
    8x more, a lookup table 4x). The chroma of an odd edge comes from the 2x2 block that holds it
    (half a pixel off, invisibly).
    """
    y, u, v = planes
    left, top, right, bottom = box
    if not (0 <= left < right <= y.shape[1] and 0 <= top < bottom <= y.shape[0]):  # the kernel does not check
        raise ValueError(f"crop box {box} is not inside the {y.shape[1]}x{y.shape[0]} frame")
    luma, chroma = (LUMA_LEVELS, CHROMA_LEVELS) if limited_range else (FULL_LEVELS, FULL_LEVELS)
    c_top, c_left, c_height, c_width = top // 2, left // 2, (bottom - top + 1) // 2, (right - left + 1) // 2
    return (_expand_copy(y, top, left, bottom - top, right - left, *luma),
            _expand_copy(u, c_top, c_left, c_height, c_width, *chroma),
            _expand_copy(v, c_top, c_left, c_height, c_width, *chroma))


def pad_square(img: Image.Image, size: int) -> Image.Image:
    """Pad to a square (black, centred) so the subject keeps its proportions, then resize."""
    side = max(img.size)
    canvas = Image.new("RGB", (side, side))
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def crop_square(img: Image.Image, size: int) -> Image.Image:
    """Crop the centred square of the shorter side, then resize."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
