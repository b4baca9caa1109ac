"""The media of one pair in a viewer site: its image, thumbnail, sound and LMS picture.

File names are the sha256 of the source bytes (under a folder naming the picture's parameters),
so a rerun finds what it made before and recomputes nothing, and two pairs with the same bytes
share a file. Media files of a built dataset are hard-linked into the site when the file system
allows it (no second copy on disk), copied otherwise.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmav_data.atomic import TMP_PREFIX, write_bytes
from cmav_data.checksum import sha256_bytes

THUMB_HEIGHT = 128
LMS_SIZE = (132, 96)  # width x height of the LMS picture: 44 frames x3, 128 mel rows / 4 x3
THUMB_DIR = f"media/thumb-h{THUMB_HEIGHT}"
LMS_DIR = "media/lms-v1"  # change the version when the picture's rendering changes
IMAGE_DIR = "media/img"
AUDIO_DIR = "media/wav"

# A dark-to-bright palette (black, purple, orange, yellow-white) for dB from the floor to 0 dB.
_PALETTE = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float64)


class MediaReadError(Exception):
    """A pair's image or sound that cannot be decoded; ``str`` names the file and the cause."""


@dataclass(frozen=True)
class PairMediaJob:
    """One pair's sources: a file path (built dataset) or bytes (shards); ``name`` names it in errors."""

    site: str
    name: str
    image_path: str | None = None
    audio_path: str | None = None
    image_bytes: bytes | None = None
    audio_bytes: bytes | None = None


@dataclass(frozen=True)
class PairMedia:
    """Site-relative paths of one pair's media, and whether anything had to be computed."""

    image: str
    thumb: str
    audio: str
    lms: str
    computed: bool


def _read(path: str | None, data: bytes | None, name: str, what: str) -> bytes:
    if data is not None:
        return data
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise MediaReadError(f"{path}: cannot read the {what} of pair {name} ({e.strerror or e})") from None


def _place(site: Path, rel: str, source: str | None, data: bytes) -> None:
    """Put ``data`` at ``site/rel`` (atomically): a hard link to ``source`` if possible."""
    target = site / rel
    if target.exists():
        return
    if source is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{TMP_PREFIX}{target.name}.{os.getpid()}")
        try:
            os.link(source, tmp)
            os.replace(tmp, target)
            return
        except OSError:
            if tmp.exists():
                tmp.unlink()
    write_bytes(target, data)


def image_thumbnail(jpeg: bytes) -> bytes:
    """A JPEG at most ``THUMB_HEIGHT`` pixels high (never enlarged)."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as img:
        img = img.convert("RGB")
        if img.height > THUMB_HEIGHT:
            img = img.resize((max(1, round(img.width * THUMB_HEIGHT / img.height)), THUMB_HEIGHT), Image.BILINEAR)
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def lms_picture(wav: bytes) -> bytes:
    """A PNG of the chunk's log-mel spectrogram (LMS defaults, librosa reference path): low
    frequencies at the bottom, colour from the spec's dB floor (dark) to its full-scale 0 dB."""
    import soundfile as sf
    from PIL import Image

    from cmav_data.features.reference import reference_chunk
    from cmav_data.features.specs import LmsSpec
    from cmav_data.media import resample

    spec = LmsSpec()
    data, sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    mono = resample(data.mean(axis=1, dtype=np.float32), sr, spec.sample_rate)
    mono = np.pad(mono, (0, max(0, spec.n_samples - len(mono))))[: spec.n_samples]
    db = reference_chunk(mono, spec)[::-1]  # rows: high mel bands first, so low ones end at the bottom
    level = np.clip((db - spec.floor_db) / -spec.floor_db, 0.0, 1.0) * (len(_PALETTE) - 1)
    low = np.minimum(level.astype(int), len(_PALETTE) - 2)
    frac = (level - low)[..., None]
    rgb = (_PALETTE[low] * (1 - frac) + _PALETTE[low + 1] * frac).round().astype(np.uint8)
    img = Image.fromarray(rgb, "RGB").resize(LMS_SIZE, Image.NEAREST)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def make_pair_media(job: PairMediaJob) -> PairMedia:
    """Write one pair's media under ``job.site`` unless already there (a worker's unit of work)."""
    site = Path(job.site)
    image = _read(job.image_path, job.image_bytes, job.name, "image")
    audio = _read(job.audio_path, job.audio_bytes, job.name, "sound")
    image_key, audio_key = sha256_bytes(image), sha256_bytes(audio)
    paths = PairMedia(image=f"{IMAGE_DIR}/{image_key}.jpg", thumb=f"{THUMB_DIR}/{image_key}.jpg",
                      audio=f"{AUDIO_DIR}/{audio_key}.wav", lms=f"{LMS_DIR}/{audio_key}.png", computed=False)
    computed = False
    _place(site, paths.image, job.image_path, image)
    _place(site, paths.audio, job.audio_path, audio)
    if not (site / paths.thumb).exists():
        try:
            write_bytes(site / paths.thumb, image_thumbnail(image))
        except Exception as e:  # PIL raises several types for bad images
            raise MediaReadError(f"{job.image_path or job.name}: undecodable image of pair {job.name} ({e})") from None
        computed = True
    if not (site / paths.lms).exists():
        try:
            write_bytes(site / paths.lms, lms_picture(audio))
        except Exception as e:  # soundfile raises LibsndfileError/RuntimeError with libsndfile's text
            raise MediaReadError(f"{job.audio_path or job.name}: undecodable sound of pair {job.name} ({e})") from None
        computed = True
    return PairMedia(paths.image, paths.thumb, paths.audio, paths.lms, computed)
