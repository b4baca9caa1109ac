"""Feature extraction to Parquet shards, with a content-addressed cache.

Output layout under a built dataset root ``DIR`` (see ``cmav_data.manifest`` for DIR/manifest.parquet)::

    DIR/features/<kind>-<shortkey>/part-00000.parquet   one row per pair: id, features
    DIR/features/<kind>-<shortkey>/features.json        kind, backend, spec, shape, versions, cache_key

``features`` is a ``fixed_size_list<float32>`` of rows * frames values (C order, [rows, frames]);
the shape, the full spec, the backend and the library versions are in each shard's Parquet
metadata (key ``cmav``) and in ``features.json``. pandas reads the column as arrays.

The cache key hashes the spec, the backend (and its device and FFT engine), the library versions and each
pair's id and audio checksum (manifest ``audio_sha256``), never paths or worker counts;
``shortkey`` is its first 12 hex digits. A run whose ``features.json`` holds the same key does nothing; a changed parameter
gives a new key and folder. Each shard also carries its own key, so a killed run resumes.

Input chunks: read with soundfile (any channel count: the mean of the channels), resampled with
soxr (HQ) when their rate differs from ``spec.sample_rate``, then zero-padded or cut at the end to
``spec.n_samples``. A file that cannot be read or holds NaN or infinite samples is an error naming
the pair. A silent chunk is valid: its features are constant (0 dB with ``db_ref=None``), never NaN.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import soundfile as sf
import soxr

from cmav_data.atomic import sweep_temporaries, write_text
from cmav_data.features.specs import FeatureSpec, spec_from_dict
from cmav_data.locking import output_lock
from cmav_data.manifest import read_manifest, read_metadata, table_metadata, write_table
from cmav_data.progress import progress_map

BACKENDS = ("reference", "fast")
SHARD_SIZE = 512  # pairs per shard: bounds each worker's memory (an STFT shard is ~90 MB)
MANIFEST_NAME = "manifest.parquet"
INFO_NAME = "features.json"
VERSIONED_PACKAGES = ("cmav", "librosa", "numba", "numpy", "pyfftw", "scipy", "soxr", "soundfile", "torch")
MANIFEST_COLUMNS = ["id", "audio_path", "audio_sha256"]


class FeatureInputError(ValueError):
    """Bad input to feature extraction: names the file or pair and what is wrong."""


@dataclass(frozen=True)
class Pair:
    id: str
    audio_path: str  # relative to the dataset root
    audio_sha256: str


@dataclass(frozen=True)
class ShardTask:
    dataset_dir: str
    shard_path: str
    shard_key: str
    pairs: tuple[Pair, ...]
    spec: dict[str, Any]
    backend: str
    versions: dict[str, str]


@dataclass(frozen=True)
class ShardReport:
    computed: bool  # False when an identical shard was already there
    n_pairs: int
    n_resampled: int
    n_resized: int  # padded or cut to n_samples


@dataclass(frozen=True)
class ExtractResult:
    out_dir: Path
    cache_key: str
    n_pairs: int
    n_shards: int
    computed_shards: int  # 0 when everything was cached
    n_resampled: int
    n_resized: int


def library_versions() -> dict[str, str]:
    """Versions of the packages that compute features ("absent" for the optional pyFFTW)."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_pairs(dataset_dir: str | os.PathLike) -> tuple[Pair, ...]:
    """The pairs of a built dataset's manifest, in manifest order."""
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FeatureInputError(f"{path}: no manifest (is {dataset_dir} a built dataset?)")
    try:
        table = read_manifest(path, columns=MANIFEST_COLUMNS)
    except (pa.ArrowInvalid, KeyError, OSError) as err:
        raise FeatureInputError(f"{path}: cannot read the columns {MANIFEST_COLUMNS}: {err}") from None
    rows = table.to_pydict()
    return tuple(Pair(*values) for values in zip(*(rows[c] for c in MANIFEST_COLUMNS)))


def cache_key(pairs: Sequence[Pair], spec: FeatureSpec, backend: str, versions: dict[str, str]) -> str:
    """Hash of what determines the output bytes: content checksums, config, backend, versions."""
    content = [[p.id, p.audio_sha256] for p in pairs]
    # The engine is part of the key: GPU, FFTW and pocketfft round differently (all within the tolerances).
    return _digest({"pairs": content, "spec": spec.to_dict(), "backend": backend,
                    "engine": compute_engine(backend), "versions": versions})


def features_dir(dataset_dir: str | os.PathLike, spec: FeatureSpec, key: str) -> Path:
    return Path(dataset_dir) / "features" / f"{spec.kind}-{key[:12]}"


def load_chunk(path: str | os.PathLike, spec: FeatureSpec, pair_id: str) -> tuple[np.ndarray, bool, bool]:
    """A chunk as float32 [spec.n_samples], and whether it was resampled / padded or cut."""
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise FeatureInputError(f"pair {pair_id}: cannot read {path}: {err}") from None
    # A product with equal weights: numpy's mean over the short channel axis is ~10x slower.
    audio = audio @ np.full(audio.shape[1], 1.0 / audio.shape[1], dtype=np.float32)
    if not np.isfinite(audio).all():
        raise FeatureInputError(f"pair {pair_id}: {path} holds NaN or infinite samples")
    resampled = rate != spec.sample_rate
    if resampled:
        audio = soxr.resample(audio, rate, spec.sample_rate, quality="HQ").astype(np.float32)
    resized = len(audio) != spec.n_samples
    if resized:
        audio = np.pad(audio[: spec.n_samples], (0, max(0, spec.n_samples - len(audio))))
    return audio, resampled, resized


def compute_device(backend: str) -> str:
    """Where a backend computes: the fast one uses a GPU when torch sees one."""
    if backend == "fast":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def compute_engine(backend: str) -> str:
    """Device and FFT engine of a backend, e.g. "cpu/fftw" (the reference: "cpu/librosa")."""
    if backend == "fast":
        from cmav_data.features.fast import default_fft

        return f"{compute_device(backend)}/{default_fft(compute_device(backend))}"
    return "cpu/librosa"


@functools.lru_cache(maxsize=8)
def batch_extractor(spec: FeatureSpec, backend: str):
    """The batch function of a backend (cached per process: the fast one holds filterbanks)."""
    if backend == "fast":
        from cmav_data.features.fast import FastFeatures

        return FastFeatures(spec, compute_device(backend))
    from cmav_data.features.reference import reference_features

    return functools.partial(reference_features, spec=spec)


def _shard_is_current(path: str, shard_key: str) -> bool:
    if not os.path.exists(path):
        return False
    try:
        return read_metadata(path).get("options", {}).get("shard_key") == shard_key
    except (pa.ArrowInvalid, OSError):
        return False  # a damaged shard is recomputed


def extract_shard(task: ShardTask) -> ShardReport:
    """Compute and write one shard (a top-level function, so process pools can run it)."""
    if _shard_is_current(task.shard_path, task.shard_key):
        return ShardReport(False, len(task.pairs), 0, 0)
    spec = spec_from_dict(task.spec)
    loaded = [load_chunk(Path(task.dataset_dir) / p.audio_path, spec, p.id) for p in task.pairs]
    audio = np.stack([chunk for chunk, _, _ in loaded]) if loaded else np.zeros((0, spec.n_samples), np.float32)
    features = batch_extractor(spec, task.backend)(audio)
    bad = ~np.isfinite(features).all(axis=(1, 2))
    if bad.any():  # a bug guard: the input checks above should make this impossible
        raise FeatureInputError(f"pair {task.pairs[int(np.argmax(bad))].id}: non-finite features")
    rows, frames = spec.shape
    column = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), rows * frames)
    table = pa.table({"id": pa.array([p.id for p in task.pairs], pa.string()), "features": column})
    options = {"spec": task.spec, "shape": [rows, frames], "backend": task.backend,
               "engine": compute_engine(task.backend), "versions": task.versions, "shard_key": task.shard_key}
    write_table(table, task.shard_path, table_metadata("features", options))
    return ShardReport(True, len(task.pairs), sum(r for _, r, _ in loaded), sum(z for _, _, z in loaded))


def extract_features(
    dataset_dir: str | os.PathLike,
    spec: FeatureSpec,
    backend: str = "fast",
    executor: concurrent.futures.Executor | None = None,
    shard_size: int = SHARD_SIZE,
    progress: bool = True,
) -> ExtractResult:
    """Write ``spec``'s features for every pair of a built dataset, shard by shard (cached)."""
    if backend not in BACKENDS:
        raise FeatureInputError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    pairs = read_pairs(dataset_dir)
    versions = library_versions()
    key = cache_key(pairs, spec, backend, versions)
    out_dir = features_dir(dataset_dir, spec, key)
    with output_lock(out_dir, "extract-features"):  # taken before the sweep of a killed run's temporaries
        return _extract_into(out_dir, dataset_dir, pairs, spec, backend, key, versions, executor, shard_size, progress)


def _extract_into(out_dir: Path, dataset_dir: str | os.PathLike, pairs: tuple[Pair, ...], spec: FeatureSpec, backend: str,
                  key: str, versions: dict[str, str], executor: concurrent.futures.Executor | None,
                  shard_size: int, progress: bool) -> ExtractResult:
    info_path = out_dir / INFO_NAME
    n_shards = max(1, -(-len(pairs) // shard_size))
    shard_names = [f"part-{i:05d}.parquet" for i in range(n_shards)]
    if info_path.is_file() and json.loads(info_path.read_text()).get("cache_key") == key:
        if all((out_dir / name).is_file() for name in shard_names):
            return ExtractResult(out_dir, key, len(pairs), n_shards, 0, 0, 0)
    if out_dir.is_dir():
        sweep_temporaries(out_dir)
    tasks = []
    for i, name in enumerate(shard_names):
        shard_pairs = pairs[i * shard_size : (i + 1) * shard_size]
        shard_key = cache_key(shard_pairs, spec, backend, versions)
        tasks.append(ShardTask(str(dataset_dir), str(out_dir / name), shard_key, shard_pairs,
                               spec.to_dict(), backend, versions))
    reports = list(progress_map(extract_shard, tasks, executor, desc=f"{spec.kind} features", unit="shard",
                                enabled=progress))
    info = {"cache_key": key, "kind": spec.kind, "backend": backend, "engine": compute_engine(backend),
            "spec": spec.to_dict(),
            "shape": list(spec.shape), "versions": versions, "n_pairs": len(pairs), "shards": shard_names}
    write_text(info_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return ExtractResult(out_dir, key, len(pairs), n_shards, sum(r.computed for r in reports),
                         sum(r.n_resampled for r in reports), sum(r.n_resized for r in reports))


def read_features(
    out_dir: str | os.PathLike, ids: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """Pairs of an extraction folder: ids, float32 [N, rows, frames], and its features.json.

    With ``ids``, only those pairs are read, shard by shard, in the order given (memory stays
    proportional to the selection, not to the dataset).
    """
    out_dir = Path(out_dir)
    info_path = out_dir / INFO_NAME
    if not info_path.is_file():
        raise FeatureInputError(f"{out_dir}: no {INFO_NAME} (not a finished feature extraction)")
    info = json.loads(info_path.read_text())
    rows, frames = info["shape"]
    wanted = None if ids is None else pa.array(list(ids), pa.string())
    parts = []
    for name in info["shards"]:
        shard = pq.read_table(out_dir / name)
        if wanted is not None:
            shard = shard.filter(pc.is_in(shard.column("id"), value_set=wanted))
        parts.append(shard)
    table = pa.concat_tables(parts)
    if wanted is not None:
        found = table.column("id").to_pylist()
        missing = set(ids) - set(found)
        if missing:
            raise FeatureInputError(f"pair {sorted(missing)[0]}: not in the features at {out_dir}")
        position = {pair_id: i for i, pair_id in enumerate(found)}
        table = table.take(pa.array([position[pair_id] for pair_id in ids], pa.int64()))
    values = table.column("features").combine_chunks().values.to_numpy(zero_copy_only=False)
    return table.column("id").to_pylist(), values.reshape(-1, rows, frames), info
