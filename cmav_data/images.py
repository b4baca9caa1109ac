"""Image encoding and squaring shared by the recipes (Sub-URMP crops, INIS photos).

JPEG output uses fixed encoder settings (baseline, no optimisation) so that equal pixels give equal
bytes; squares are made either by padding (keeps the whole picture: Sub-URMP's players) or by a
centred crop (fills the frame: INIS's photos), then a Lanczos resize.
"""

from __future__ import annotations

import io

from PIL import Image


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


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
