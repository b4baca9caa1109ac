"""Shared builders for the feature tests: a small real built dataset (WAV files + manifest).

No tests here; test_features*.py import ``build_dataset``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf

from cmav_data.instruments import BY_CLASS
from cmav_data.manifest import PAIR_SCHEMA, table_metadata, write_table

RATE, FRAMES = 44100, 22050
# Harmonic amplitude profiles that differ per class: what a sound classifier can learn.
PROFILES = {
    "flute": lambda n: 1.0 / n**3,  # nearly sinusoidal
    "clarinet": lambda n: (n % 2) / n,  # odd harmonics
    "violin": lambda n: 1.0 / n,  # sawtooth-like
    "trumpet": lambda n: np.exp(-((n - 5) ** 2) / 8.0),  # strong upper harmonics
}
SAMPLES = {"violin": "phenicx_beethoven_violin1.wav", "flute": "phenicx_beethoven_flute1.wav",
           "clarinet": "phenicx_beethoven_clarinet1.wav"}


def harmonic_tone(class_name: str, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.uniform(200.0, 600.0)
    t = np.arange(FRAMES) / RATE
    n = np.arange(1, 16)
    n = n[n * f0 < RATE / 2]
    amps = PROFILES[class_name](n)
    tone = (amps[:, None] * np.sin(2 * np.pi * f0 * n[:, None] * t + rng.uniform(0, 6.3, (len(n), 1)))).sum(0)
    tone = tone / np.abs(tone).max() * rng.uniform(0.1, 0.7) + rng.normal(0, 1e-3, FRAMES)
    return np.clip(tone, -1, 1)


def _row(root: Path, pair_id: str, split: str, class_name: str, rel: str) -> dict:
    return {
        "id": pair_id, "split": split, "class_name": class_name,
        "class_index": BY_CLASS[class_name].class_index, "recording": pair_id.split("_")[0],
        "piece": "00_Test", "part": 1, "t_start": 0.0, "t_end": 0.5, "frame_index": 0,
        "image_path": f"img/{pair_id}.jpg", "image_sha256": "0" * 64, "audio_path": rel,
        "audio_sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
        "note_coverage": 1.0, "mean_f0": 0.0, "silent": False,
        "source_audio_sha256": "0" * 64, "source_video_sha256": "0" * 64,
    }


def write_manifest(root: Path, rows: list[dict]) -> None:
    """The manifest of ``rows``, with the audio checksums of the chunk files as they are now."""
    rows = [dict(r, audio_sha256=hashlib.sha256((root / r["audio_path"]).read_bytes()).hexdigest()) for r in rows]
    table = pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)
    write_table(table, root / "manifest.parquet", table_metadata("suburmp", {}))


def build_dataset(root: Path, train_per_class: int = 12, validation_per_class: int = 4,
                  samples_dir: Path | None = None, seed: int = 0, train_recordings: int = 1,
                  silent_per_class: int = 0) -> list[dict]:
    """Write a tiny built dataset under ``root``: 16-bit stereo 44.1 kHz 0.5 s chunks + manifest.

    Training pairs of a class are spread over ``train_recordings`` recordings (01, 04, 05, ...; the
    validation recording is 02); ``silent_per_class`` more training pairs per class are digital
    silence flagged ``silent``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    train_numbers = [1, *range(4, 3 + train_recordings)]  # 03 is the real recordings' (samples_dir)
    for class_name in PROFILES:
        for split, count in (("train", train_per_class + silent_per_class), ("validation", validation_per_class)):
            for k in range(count):
                number = train_numbers[k % len(train_numbers)] if split == "train" else 2
                pair_id = f"{class_name}{number:02d}_{500 + 100 * k}"
                rel = f"chunk/{split}/{class_name}/{pair_id}.wav"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                silent = split == "train" and k >= train_per_class
                tone = np.zeros(FRAMES) if silent else harmonic_tone(class_name, rng)
                sf.write(root / rel, np.stack([tone, tone], axis=1), RATE, subtype="PCM_16")
                rows.append({**_row(root, pair_id, split, class_name, rel), "silent": silent})
    if samples_dir is not None:  # real recordings, 0.5 s chunks, as extra training pairs
        for class_name, name in SAMPLES.items():
            audio, rate = sf.read(samples_dir / "samples" / name, dtype="float32")
            for k in range(len(audio) // FRAMES):
                pair_id = f"{class_name}03_{500 + 500 * k}"
                rel = f"chunk/train/{class_name}/{pair_id}.wav"
                sf.write(root / rel, audio[k * FRAMES : (k + 1) * FRAMES], rate, subtype="PCM_16")
                rows.append(_row(root, pair_id, "train", class_name, rel))
    write_manifest(root, rows)
    return rows
