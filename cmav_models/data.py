"""A built Sub-URMP dataset as in-memory tensors for training and scoring.

Input: a dataset root with ``manifest.parquet`` (columns of ``cmav_data.manifest.PAIR_SCHEMA``),
JPEG player crops and 0.5 s 44.1 kHz WAV chunks at the manifest's relative paths. Output: a
:class:`Pairs` record with images resized to a square (uint8), log-mel spectrograms (LMS, dB,
float16), class indices, splits, and the pitch-position pose target.

The LMS is ``cmav_data.features``' :class:`LmsSpec` (the Sub-URMP compare-features setting:
44.1 kHz mono, n_fft 2048, hop 512, 128 mels, dB against the fixed full-scale reference with its
fixed -120 dB floor, so 22,050 samples give 128 x 44 frames; digital silence is -120 dB
everywhere), computed with its fast path (librosa's numbers within tolerance). ``top_db=120``
equals the floor: it binds only on chunks louder than a full-scale sine, and it is the dB span that
``lms_to_unit`` maps to [-1, 1]. Its ``to_dict()`` is the feature config checkpoints record and check.

The pose target reads the demo corpus's drawing rule "bow or slide position from pitch": the
position of the chunk's mean F0 inside the instrument's playing range (``instruments.csv``), 0 at
the lowest note and 1 at the highest; NaN for silent or unvoiced chunks.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from PIL import Image
from torch.nn import functional as F

from cmav_data.features.store import FeatureInputError, batch_extractor, load_chunk
from cmav_data.features.specs import FLOOR_DB, FULL_SCALE, LmsSpec
from cmav_data.instruments import BY_CLASS
from cmav_data.manifest import PAIR_SCHEMA, read_manifest
from cmav_data.progress import progress_map

SPLITS = ("train", "validation")
_DECODE_CHUNK = 256  # rows per parallel task: large enough to amortise process round trips


class DatasetError(Exception):
    """A dataset that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class LoadOptions:
    image_size: int = 64
    lms: LmsSpec = LmsSpec(top_db=-FLOOR_DB)
    max_train: int | None = None  # subsample (seeded, whole dataset order) to bound epoch time
    max_validation: int | None = None
    seed: int = 0


@dataclass
class Pairs:
    ids: list[str]
    split: np.ndarray  # str, "train" | "validation"
    labels: torch.Tensor  # long, index into instruments.CLASS_NAMES
    images: torch.Tensor  # uint8 [N, 3, S, S]
    lms: torch.Tensor  # float16 [N, 1, n_mels, frames], dB re full scale, >= -top_db (the floor)
    pitch_position: torch.Tensor  # float32 [N], NaN when silent/unvoiced

    def subset(self, split: str) -> "Pairs":
        keep = np.flatnonzero(self.split == split)
        index = torch.from_numpy(keep)
        return Pairs([self.ids[i] for i in keep], self.split[keep], self.labels[index],
                     self.images[index], self.lms[index], self.pitch_position[index])

    def __len__(self) -> int:
        return len(self.ids)


def check_lms_spec(spec: LmsSpec) -> None:
    """The models read LMS as dB against full scale with its fixed floor at -top_db (mapped to [-1, 1]
    by ``lms_to_unit``); other scalings would silently mis-scale them."""
    if (spec.kind != "lms" or spec.normalize != "none" or spec.db_ref != FULL_SCALE or spec.top_db is None
            or spec.floor_db != -spec.top_db):
        raise DatasetError(f"the models need an LMS in dB against full scale (db_ref={FULL_SCALE!r}) with its "
                           f"fixed floor at -top_db and no normalisation, not {spec.to_dict()}")


def validate_manifest(table: pa.Table, path: Path) -> None:
    """Check what training needs before any decoding: columns, splits, classes in both splits."""
    missing = [f.name for f in PAIR_SCHEMA if f.name not in table.column_names]
    if missing:
        raise DatasetError(f"{path}: missing manifest columns {', '.join(missing)}")
    splits = set(table.column("split").to_pylist())
    unknown = splits - set(SPLITS)
    if unknown:
        raise DatasetError(f"{path}: unknown split value(s) {sorted(unknown)}; expected train/validation")
    for split in SPLITS:
        if split not in splits:
            raise DatasetError(f"{path}: no {split} split (no rows with split == {split!r})")
    by_split = {s: set() for s in SPLITS}
    for split, name in zip(table.column("split").to_pylist(), table.column("class_name").to_pylist()):
        by_split[split].add(name)
    for name in sorted(by_split["train"] ^ by_split["validation"]):
        has, lacks = ("train", "validation") if name in by_split["train"] else ("validation", "train")
        raise DatasetError(f"{path}: class {name!r} has {has} pairs but no {lacks} pairs; "
                           "every class must be in both splits to score on validation")
    for name in sorted(by_split["train"]):
        if name not in BY_CLASS:
            raise DatasetError(f"{path}: unknown class {name!r}")


def _subsample(split: np.ndarray, options: LoadOptions) -> np.ndarray:
    rng = np.random.default_rng(options.seed)
    keep = []
    for name, cap in (("train", options.max_train), ("validation", options.max_validation)):
        rows = np.flatnonzero(split == name)
        if cap is not None and cap < len(rows):
            rows = np.sort(rng.permutation(rows)[:cap])
        keep.append(rows)
    return np.sort(np.concatenate(keep))


def _decode_rows(task: tuple[str, list[str], list[str], int, LmsSpec]) -> tuple[np.ndarray, np.ndarray]:
    root, image_paths, audio_paths, size, spec = task
    images = np.empty((len(image_paths), 3, size, size), np.uint8)
    audio = np.empty((len(audio_paths), spec.n_samples), np.float32)
    for i, (image_path, audio_path) in enumerate(zip(image_paths, audio_paths)):
        images[i] = _read_image(os.path.join(root, image_path), size)
        try:
            audio[i] = load_chunk(os.path.join(root, audio_path), spec, audio_path)[0]
        except FeatureInputError as e:
            raise DatasetError(str(e)) from None
    lms = batch_extractor(spec, "fast")(audio)
    return images, lms[:, None].astype(np.float16)


def _read_image(path: str, size: int) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (2 * size, 2 * size))  # JPEG DCT scaling: decode only what we keep
            img = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img).transpose(2, 0, 1)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read image ({e})") from None


def _pitch_position(class_names: list[str], mean_f0: np.ndarray, silent: np.ndarray) -> np.ndarray:
    low = np.array([BY_CLASS[c].low_midi for c in class_names], np.float64)
    high = np.array([BY_CLASS[c].high_midi for c in class_names], np.float64)
    voiced = (mean_f0 > 0) & ~silent
    midi = 69 + 12 * np.log2(np.where(voiced, mean_f0, 440.0) / 440.0)
    position = np.clip((midi - low) / (high - low), 0.0, 1.0)
    return np.where(voiced, position, np.nan).astype(np.float32)


def load_pairs(root: str | os.PathLike, options: LoadOptions, executor: Executor | None = None,
               progress: bool = False) -> Pairs:
    """Validate ``root``'s manifest, then decode its (subsampled) pairs into tensors."""
    check_lms_spec(options.lms)
    root = Path(root)
    path = root / "manifest.parquet"
    if not path.is_file():
        raise DatasetError(f"{path}: no manifest (is {root} a built Sub-URMP dataset?)")
    try:
        table = read_manifest(path)
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"{path}: cannot read manifest ({e})") from None
    validate_manifest(table, path)
    table = table.sort_by("id")  # row order of the file must not matter
    keep = _subsample(np.array(table.column("split").to_pylist()), options)
    table = table.take(pa.array(keep))
    image_paths = table.column("image_path").to_pylist()
    audio_paths = table.column("audio_path").to_pylist()
    tasks = [(str(root), image_paths[i:i + _DECODE_CHUNK], audio_paths[i:i + _DECODE_CHUNK],
              options.image_size, options.lms) for i in range(0, len(image_paths), _DECODE_CHUNK)]
    decoded = list(progress_map(_decode_rows, tasks, executor, desc="decode pairs", unit="chunk",
                                enabled=progress))
    class_names = table.column("class_name").to_pylist()
    return Pairs(
        ids=table.column("id").to_pylist(),
        split=np.array(table.column("split").to_pylist()),
        labels=torch.tensor(table.column("class_index").to_pylist(), dtype=torch.long),
        images=torch.from_numpy(np.concatenate([d[0] for d in decoded])),
        lms=torch.from_numpy(np.concatenate([d[1] for d in decoded])),
        pitch_position=torch.from_numpy(_pitch_position(
            class_names, table.column("mean_f0").to_numpy().astype(np.float64),
            table.column("silent").to_numpy(zero_copy_only=False))),
    )


def image_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in [-1, 1], the range of the generator's tanh."""
    return images.float() / 127.5 - 1.0


def augment_images(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Jitter a batch of images in [-1, 1], [B, 3, S, S], for training a classifier or regressor:
    per-channel gain (0.75-1.25) and offset (+-0.25), a mix of up to half toward grey, and a shift of
    up to S/16 px with the edge repeated. Backdrops and clothes vary by recording, not by instrument,
    so colour must not be what a judge learns; the shift moves the whole player, keeping where the
    bow or slide sits relative to the instrument (the pose target)."""
    b, _, size, _ = x.shape
    gain = 1 + 0.25 * (2 * torch.rand(b, 3, 1, 1, generator=generator) - 1)
    offset = 0.25 * (2 * torch.rand(b, 3, 1, 1, generator=generator) - 1)
    x = (x * gain + offset).clamp(-1, 1)
    grey = 0.5 * torch.rand(b, 1, 1, 1, generator=generator)
    x = x * (1 - grey) + x.mean(1, keepdim=True) * grey
    pad = max(1, size // 16)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = (torch.randint(0, 2 * pad + 1, (b,), generator=generator) for _ in range(2))
    steps = torch.arange(size)
    rows, cols = (dy[:, None] + steps)[:, :, None], (dx[:, None] + steps)[:, None, :]
    return padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()


def lms_to_unit(lms: torch.Tensor, top_db: float) -> torch.Tensor:
    """LMS in dB re full scale, [-top_db, 0], to float in [-1, 1] (the generator's tanh range).

    The floor (silence) maps to -1 and a full-scale 1 kHz sine's peak to 1; the rare values above
    0 dB (broadband sound near full scale) are clipped to 1 so real and generated LMS share a range.
    """
    return (lms.float() / (top_db / 2) + 1.0).clamp_(-1.0, 1.0)


def unit_to_lms(x: torch.Tensor, top_db: float) -> torch.Tensor:
    """Inverse of ``lms_to_unit`` on [-1, 1]: dB re full scale in [-top_db, 0]."""
    return (x.float() - 1.0) * (top_db / 2)

