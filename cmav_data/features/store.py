"""Feature extraction to Parquet shards, with a content-addressed cache.

Output layout under a built dataset root ``DIR`` (see ``cmav_data.manifest`` for DIR/manifest.parquet)::

    DIR/features/<kind>-<shortkey>/part-00000.parquet   one row per pair: id, features
    DIR/features/<kind>-<shortkey>/features.json        kind, backend, spec, shape, versions, cache_key,
                                                        shards: name, rows, size and sha256 of each

``features`` is a ``fixed_size_list<float32>`` of rows * frames values (C order, [rows, frames]);
the shape, the full spec, the backend and the library versions are in each shard's Parquet
metadata (key ``cmav``) and in ``features.json``. pandas reads the column as arrays.
Storage (``STORAGE``, recorded in ``features.json`` and the cache key): the float32 values are
written with Parquet's BYTE_STREAM_SPLIT encoding under zstd, which is lossless (values read back
bit for bit) and smaller than zstd alone (float16 would not hold the 1e-3 dB tolerance: its step
is 0.03 dB near -60 dB).

Training reads memory-mapped arrays, not shards: ``feature_array(DIR/features/<kind>-<shortkey>, ids)``
builds ``arrays/<key>.npy`` (float32 [N, rows, frames], the pairs in the order given) from the shards
on first use, shard by shard, and records its size and sha256 in ``arrays/<key>.json``; ``key`` hashes
the feature cache key and the ids. An array whose record is missing, or whose size or sha256 differs,
is rebuilt (with a notice when it had been recorded).

The cache key hashes the spec, the backend (and its device and FFT engine), the library versions and each
pair's id and audio checksum (manifest ``audio_sha256``), never paths or worker counts;
``shortkey`` is its first 12 hex digits. A run whose ``features.json`` holds the same key, and whose shards all
have the size and sha256 it records, does nothing; a shard that does not is recomputed, with a notice naming
it; a changed parameter gives a new key and folder. Each shard also carries its own key, so a killed run
resumes: a shard that ``features.json`` does not list yet is adopted only if it carries the key, reads back
whole (Parquet page checksums, the pairs' ids, finite values) and is then hashed; an unreadable
``features.json`` is a notice, and the folder is checked and recorded again that way.

Input chunks: their bytes must have the manifest's ``audio_sha256`` (an edited chunk is an error naming
the file, never featurised under the clean key); decoded from those bytes with soundfile (any channel
count: the mean of the channels), resampled with soxr (HQ) when their rate differs from
``spec.sample_rate``, then zero-padded or cut at the end to ``spec.n_samples``. A file that cannot be
read or holds NaN or infinite samples is an error naming the pair. A silent chunk is valid: its
features are the spec's floor (``floor_db``), never NaN.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import soundfile as sf
import soxr

from cmav_data.atomic import atomic_path, sweep_temporaries, write_text
from cmav_data.checksum import ContentError, read_verified, sha256_file
from cmav_data.features.specs import FeatureSpec, spec_from_dict
from cmav_data.locking import output_lock
from cmav_data.manifest import ManifestError, read_manifest, read_metadata, table_metadata, write_table
from cmav_data.progress import progress_map
from cmav_data.versions import package_versions

BACKENDS = ("reference", "fast")
SHARD_SIZE = 512  # pairs per shard: bounds each worker's memory (an STFT shard is ~90 MB)
MANIFEST_NAME = "manifest.parquet"
INFO_NAME = "features.json"
VERSIONED_PACKAGES = ("cmav", "librosa", "numba", "numpy", "pyfftw", "scipy", "soxr", "soundfile", "torch")
MANIFEST_COLUMNS = ["id", "audio_path", "audio_sha256"]
SHARD_NAME = re.compile(r"part-\d{5}\.parquet")
SHA256 = re.compile(r"[0-9a-f]{64}")
# Lossless: BYTE_STREAM_SPLIT groups the floats' bytes by significance, which zstd then packs better.
STORAGE = {"dtype": "float32", "encoding": "BYTE_STREAM_SPLIT", "compression": "zstd"}
ARRAYS_DIR = "arrays"
ARRAY_ROWS = 256  # pairs per copy when an array is built or streamed: bounds the memory it takes


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
    adopt: bool = True  # False: a shard already there is recomputed (its recorded checksum did not match)


@dataclass(frozen=True)
class ShardEntry:
    """A shard as ``features.json`` records it."""

    name: str
    rows: int
    size: int
    sha256: str


@dataclass(frozen=True)
class ShardReport:
    computed: bool  # False when an identical shard was already there
    n_pairs: int
    n_resampled: int
    n_resized: int  # padded or cut to n_samples
    entry: ShardEntry


@dataclass(frozen=True)
class ExtractResult:
    out_dir: Path
    cache_key: str
    n_pairs: int
    n_shards: int
    computed_shards: int  # 0 when everything was cached
    n_resampled: int
    n_resized: int
    warnings: tuple[str, ...] = ()  # one line each: a damaged shard or index, and what was done


def library_versions() -> dict[str, str]:
    """Versions of the packages that compute features ("absent" for the optional pyFFTW)."""
    return package_versions(VERSIONED_PACKAGES)


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_pairs(dataset_dir: str | os.PathLike) -> tuple[Pair, ...]:
    """The pairs of a built dataset's manifest, in manifest order."""
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FeatureInputError(f"{path}: no manifest (is {dataset_dir} a built dataset?)")
    try:
        table = read_manifest(path, columns=MANIFEST_COLUMNS)
    except ManifestError as err:
        raise FeatureInputError(str(err)) from None
    rows = table.to_pydict()
    return tuple(Pair(*values) for values in zip(*(rows[c] for c in MANIFEST_COLUMNS)))


def cache_key(pairs: Sequence[Pair], spec: FeatureSpec, backend: str, versions: dict[str, str]) -> str:
    """Hash of what determines the output bytes: content checksums, config, backend, versions."""
    content = [[p.id, p.audio_sha256] for p in pairs]
    # The engine is part of the key: GPU, FFTW and pocketfft round differently (all within the tolerances).
    return _digest({"pairs": content, "spec": spec.to_dict(), "backend": backend,
                    "engine": compute_engine(backend), "versions": versions, "storage": STORAGE})


def features_dir(dataset_dir: str | os.PathLike, spec: FeatureSpec, key: str) -> Path:
    return Path(dataset_dir) / "features" / f"{spec.kind}-{key[:12]}"


def load_chunk(path: str | os.PathLike, spec: FeatureSpec, pair_id: str,
               sha256: str | None = None) -> tuple[np.ndarray, bool, bool]:
    """A chunk as float32 [spec.n_samples], and whether it was resampled / padded or cut.

    With ``sha256`` (the manifest's), the file's bytes must have it, and the samples are decoded
    from the very bytes checked.
    """
    source: str | os.PathLike | io.BytesIO = path
    if sha256 is not None:
        try:
            source = io.BytesIO(read_verified(path, sha256, "sha256 differs from the manifest's audio_sha256 "
                                                             "(edited or damaged since the build)"))
        except ContentError as err:
            raise FeatureInputError(f"pair {pair_id}: {err}") from None
    try:
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
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


def _shard_entry(path: str | os.PathLike, rows: int) -> ShardEntry:
    return ShardEntry(Path(path).name, rows, os.path.getsize(path), sha256_file(path))


def shard_problem(path: Path, entry: ShardEntry, check_sha256: bool = True) -> str | None:
    """What is wrong with a shard against its ``features.json`` entry (None: nothing)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size != entry.size:
        return f"{size} bytes, features.json says {entry.size}"
    if check_sha256 and (digest := sha256_file(path)) != entry.sha256:
        return f"sha256 {digest}, features.json says {entry.sha256}"
    return None


def _adoptable(task: ShardTask) -> bool:
    """Whether a shard already at the path (a killed run's, not yet in features.json) is this task's, whole."""
    if not os.path.exists(task.shard_path):
        return False
    try:
        if read_metadata(task.shard_path).get("options", {}).get("shard_key") != task.shard_key:
            return False
        table = pq.read_table(task.shard_path, page_checksum_verification=True)
        values = table.column("features").combine_chunks().values.to_numpy(zero_copy_only=False)
    except (pa.ArrowException, OSError, KeyError, ValueError):
        return False  # damaged: recomputed
    rows, frames = spec_from_dict(task.spec).shape
    return (table.column("id").to_pylist() == [p.id for p in task.pairs]
            and len(values) == len(task.pairs) * rows * frames and bool(np.isfinite(values).all()))


def extract_shard(task: ShardTask) -> ShardReport:
    """Compute and write one shard (a top-level function, so process pools can run it)."""
    if task.adopt and _adoptable(task):
        return ShardReport(False, len(task.pairs), 0, 0, _shard_entry(task.shard_path, len(task.pairs)))
    spec = spec_from_dict(task.spec)
    loaded = [load_chunk(Path(task.dataset_dir) / p.audio_path, spec, p.id, p.audio_sha256) for p in task.pairs]
    audio = np.stack([chunk for chunk, _, _ in loaded]) if loaded else np.zeros((0, spec.n_samples), np.float32)
    features = batch_extractor(spec, task.backend)(audio)
    bad = ~np.isfinite(features).all(axis=(1, 2))
    if bad.any():  # a bug guard: the input checks above should make this impossible
        raise FeatureInputError(f"pair {task.pairs[int(np.argmax(bad))].id}: non-finite features")
    rows, frames = spec.shape
    column = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), rows * frames)
    table = pa.table({"id": pa.array([p.id for p in task.pairs], pa.string()), "features": column})
    options = {"spec": task.spec, "shape": [rows, frames], "backend": task.backend, "storage": STORAGE,
               "engine": compute_engine(task.backend), "versions": task.versions, "shard_key": task.shard_key}
    write_table(table, task.shard_path, table_metadata("features", options), page_checksums=True,
                column_encoding={"features.list.element": STORAGE["encoding"]})
    return ShardReport(True, len(task.pairs), sum(r for _, r, _ in loaded), sum(z for _, _, z in loaded),
                       _shard_entry(task.shard_path, len(task.pairs)))


def read_info(out_dir: str | os.PathLike) -> tuple[dict[str, Any], list[ShardEntry]]:
    """An extraction folder's ``features.json`` and its shard entries; FeatureInputError naming it if
    it is missing or not a feature index (garbage, truncated, or without checksums)."""
    path = Path(out_dir) / INFO_NAME
    if not path.is_file():
        raise FeatureInputError(f"{out_dir}: no {INFO_NAME} (not a finished feature extraction)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: hostile nesting
        cause = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FeatureInputError(f"{path}: not a feature index ({cause})") from None
    problem = _index_problem(info)
    if problem:
        raise FeatureInputError(f"{path}: not a feature index ({problem})")
    return info, [ShardEntry(e["name"], e["rows"], e["size"], e["sha256"]) for e in info["shards"]]


def _index_problem(info: Any) -> str | None:
    if not isinstance(info, dict):
        return f"a JSON {type(info).__name__}, not an object"
    shape, shards = info.get("shape"), info.get("shards")
    if not isinstance(info.get("cache_key"), str):
        return "no cache_key"
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(n) is int and n > 0 for n in shape)):
        return f"shape {str(shape)[:40]} is not two positive integers"
    if not (isinstance(shards, list) and shards):
        return "no shards"
    if not all(isinstance(e, dict) for e in shards):
        return "shards without sizes and sha256 (an older cmav wrote it)"
    for e in shards:
        name, rows, size, sha = (e.get(k) for k in ("name", "rows", "size", "sha256"))
        if not (isinstance(name, str) and SHARD_NAME.fullmatch(name) and type(rows) is int and rows >= 0
                and type(size) is int and size >= 0 and isinstance(sha, str) and SHA256.fullmatch(sha)):
            return f"bad shard entry {json.dumps(e)[:100]}"
    return None


def _checked_shards(out_dir: Path, key: str, shard_names: list[str],
                    warnings: list[str]) -> tuple[dict[str, ShardEntry], set[str]]:
    """The shards ``features.json`` records for ``key`` that have its size and sha256, and the names
    of those that do not (each named in ``warnings``). Nothing when there is no index of this key."""
    if not (out_dir / INFO_NAME).is_file():
        return {}, set()
    try:
        info, entries = read_info(out_dir)
    except FeatureInputError as err:
        warnings.append(f"{err}; rewritten from the shards that read back whole, the others recomputed")
        return {}, set()
    if info["cache_key"] != key or [e.name for e in entries] != shard_names:
        return {}, set()  # another shard size: shards are adopted by their own keys or recomputed
    good, damaged = {}, set()
    for entry in entries:
        problem = shard_problem(out_dir / entry.name, entry)
        if problem is None:
            good[entry.name] = entry
        else:
            damaged.add(entry.name)
            warnings.append(f"{out_dir / entry.name}: {problem}; recomputing it")
    return good, damaged


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
    warnings: list[str] = []
    entries, damaged = _checked_shards(out_dir, key, shard_names, warnings)
    if len(entries) == n_shards:
        return ExtractResult(out_dir, key, len(pairs), n_shards, 0, 0, 0)
    if out_dir.is_dir():
        sweep_temporaries(out_dir)
    tasks = []
    for i, name in enumerate(shard_names):
        if name in entries:
            continue
        shard_pairs = pairs[i * shard_size : (i + 1) * shard_size]
        shard_key = cache_key(shard_pairs, spec, backend, versions)
        tasks.append(ShardTask(str(dataset_dir), str(out_dir / name), shard_key, shard_pairs,
                               spec.to_dict(), backend, versions, adopt=name not in damaged))
    reports = list(progress_map(extract_shard, tasks, executor, desc=f"{spec.kind} features", unit="shard",
                                enabled=progress))
    entries.update((r.entry.name, r.entry) for r in reports)
    info = {"cache_key": key, "kind": spec.kind, "backend": backend, "engine": compute_engine(backend),
            "spec": spec.to_dict(), "shape": list(spec.shape), "storage": STORAGE, "versions": versions,
            "n_pairs": len(pairs),
            "shards": [vars(entries[name]) for name in shard_names]}
    write_text(info_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return ExtractResult(out_dir, key, len(pairs), n_shards, sum(r.computed for r in reports),
                         sum(r.n_resampled for r in reports), sum(r.n_resized for r in reports), tuple(warnings))


def _read_shard(out_dir: Path, entry: ShardEntry) -> pa.Table:
    """A shard checked against its entry's size and its page checksums (the sha256 is checked where
    the cache is believed: extract_features); FeatureInputError naming it if it is damaged."""
    path = out_dir / entry.name
    problem = shard_problem(path, entry, check_sha256=False)
    try:
        if not problem:
            return pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as err:
        problem = f"unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    raise FeatureInputError(f"{path}: {problem}; run extract-features again")


def _values(table: pa.Table, rows: int, frames: int) -> np.ndarray:
    return table.column("features").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, rows, frames)


def read_features(
    out_dir: str | os.PathLike, ids: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """Pairs of an extraction folder: ids, float32 [N, rows, frames], and its features.json.

    With ``ids``, only those pairs are read, shard by shard, in the order given (memory stays
    proportional to the selection, not to the dataset). For training, ``feature_array`` reads
    the same values memory-mapped.
    """
    out_dir = Path(out_dir)
    info, entries = read_info(out_dir)
    rows, frames = info["shape"]
    wanted = None if ids is None else pa.array(list(ids), pa.string())
    parts = []
    for entry in entries:
        shard = _read_shard(out_dir, entry)
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
    return table.column("id").to_pylist(), _values(table, rows, frames), info


@dataclass(frozen=True)
class FeatureArray:
    """A memory-mapped float32 [N, rows, frames] of chosen pairs, in the order asked for."""

    path: Path  # DIR/features/<kind>-<shortkey>/arrays/<key>.npy
    values: np.ndarray  # read-only np.memmap: rows are read from disk when indexed
    rebuilt: bool  # False when an array with the recorded size and sha256 was already there
    warnings: tuple[str, ...] = ()  # a recorded array that was damaged, and that it was rebuilt


def array_problem(path: Path, record: dict[str, Any], check_sha256: bool = True) -> str | None:
    """What is wrong with a built array against its record (None: nothing)."""
    return shard_problem(path, ShardEntry(path.name, record.get("n_pairs", 0), record.get("size", -1),
                                          record.get("sha256", "")), check_sha256)


def feature_array(out_dir: str | os.PathLike, ids: Sequence[str], check_sha256: bool = True) -> FeatureArray:
    """The features of ``ids`` (unique pair ids) as a memory-mapped array, built from the shards on
    first use and reused while its recorded size and sha256 hold (see the module docstring)."""
    out_dir = Path(out_dir)
    info, entries = read_info(out_dir)
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise FeatureInputError(f"{out_dir}: a feature array needs unique pair ids")
    key = _digest({"cache_key": info["cache_key"], "ids": ids})[:16]
    path, record_path = out_dir / ARRAYS_DIR / f"{key}.npy", out_dir / ARRAYS_DIR / f"{key}.json"
    warnings: list[str] = []
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        record = None
    except (OSError, ValueError, RecursionError):
        record, problem = None, f"{record_path}: unreadable record"
        warnings.append(f"{problem}; rebuilt from the shards")
    if isinstance(record, dict) and record.get("cache_key") == info["cache_key"]:
        problem = array_problem(path, record, check_sha256)
        if problem is None:
            return FeatureArray(path, np.load(path, mmap_mode="r"), False)
        warnings.append(f"{path}: {problem}; rebuilt from the shards")
    rows, frames = info["shape"]
    position = {pair_id: i for i, pair_id in enumerate(ids)}
    with atomic_path(path) as tmp:  # renamed onto path only when whole; the umask applies
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(ids), rows, frames))
        missing = set(ids)
        for entry in entries:  # one shard in memory at a time
            shard = _read_shard(out_dir, entry)
            shard_ids = shard.column("id").to_pylist()
            chosen = [j for j, pair_id in enumerate(shard_ids) if pair_id in position]
            if chosen:
                array[[position[shard_ids[j]] for j in chosen]] = _values(shard, rows, frames)[chosen]
                missing.difference_update(shard_ids[j] for j in chosen)
        if missing:
            raise FeatureInputError(f"pair {sorted(missing)[0]}: not in the features at {out_dir}")
        array.flush()
        del array
    record = {"cache_key": info["cache_key"], "n_pairs": len(ids), "shape": [len(ids), rows, frames],
              "ids_sha256": _digest(ids), "size": path.stat().st_size, "sha256": sha256_file(path)}
    write_text(record_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return FeatureArray(path, np.load(path, mmap_mode="r"), True, tuple(warnings))
