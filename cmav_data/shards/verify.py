"""Check a downloaded/published dataset against its ``index.json``, or a built one against its manifest.

Published or downloaded (``index.json``): every listed file exists with the listed size, every shard
is a readable Parquet file with the listed row count, and its sha256 matches: taken from the hash
state file while size and mtime are unchanged (files hashed before are not read again), hashed and
recorded otherwise; ``deep`` re-hashes everything regardless, which also catches bit rot that left
the mtime alone.

Built (``manifest.parquet``): every media file the manifest lists exists and is not empty; ``deep``
also compares its sha256 with the manifest's. Its feature folders (``features/*/``) likewise: a
readable ``features.json``, and every shard it lists with the listed size (and, ``deep``, sha256).
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from cmav_data.checksum import sha256_file
from cmav_data.features.store import INFO_NAME, FeatureInputError, ShardEntry, read_info, shard_problem
from cmav_data.shards.index import (
    INDEX_NAME,
    HashState,
    IndexedFile,
    ShardsError,
    read_index,
)
from cmav_data.shards.publish import MANIFEST_NAME, read_built_manifest


class NotADatasetError(ShardsError):
    pass


@dataclass
class VerifyReport:
    root: Path
    layout: str  # "published" (index.json) or "built" (manifest.parquet)
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    root: str | os.PathLike, deep: bool = False, executor: Executor | None = None, progress: bool = True
) -> VerifyReport:
    root = Path(root)
    if (root / INDEX_NAME).is_file():
        return _verify_published(root, deep, executor, progress)
    if (root / MANIFEST_NAME).is_file():
        return _verify_built(root, deep, executor, progress)
    raise NotADatasetError(f"{root}: neither {INDEX_NAME} (published/downloaded) nor {MANIFEST_NAME} (built)")


def _map(fn, items, executor: Executor | None, bar: tqdm, weight):
    results = map(fn, items) if executor is None else executor.map(fn, items)
    for item, result in zip(items, results):
        bar.update(weight(item))
        yield result


def _check_published(f: IndexedFile, root: Path, state: HashState, deep: bool) -> list[str]:
    path = root / f.path
    if not path.is_file():
        return [f"{f.path}: missing"]
    size = path.stat().st_size
    if size != f.size:
        return [f"{f.path}: {size} bytes, the index says {f.size}"]
    problems = []
    if f.is_shard:
        try:
            rows = pq.read_metadata(path).num_rows
            if rows != f.rows:
                problems.append(f"{f.path}: {rows} rows, the index says {f.rows}")
        except (pa.ArrowException, OSError) as e:
            problems.append(f"{f.path}: not a readable Parquet file ({e})")
    digest = state.sha256(f.path, rehash=deep)
    if digest != f.sha256:
        problems.append(f"{f.path}: sha256 {digest}, the index says {f.sha256}")
    return problems


def _verify_published(root: Path, deep: bool, executor, progress: bool) -> VerifyReport:
    index = read_index(root)
    state = HashState(root)
    report = VerifyReport(root, "published", checked=len(index.files))
    bar = tqdm(total=sum(f.size for f in index.files), unit="B", unit_scale=True, desc="verify",
               disable=not progress)
    check = partial(_check_published, root=root, state=state, deep=deep)
    for problems in _map(check, index.files, executor, bar, lambda f: f.size):
        report.problems += problems
    bar.close()
    state.save()
    return report


def _check_media(item: tuple[str, str], root: Path, deep: bool) -> list[str]:
    rel, sha = item
    path = root / rel
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [f"{rel}: missing"]
    if size == 0:
        return [f"{rel}: empty"]
    if deep and (digest := sha256_file(path)) != sha:
        return [f"{rel}: sha256 {digest}, the manifest says {sha}"]
    return []


def _check_feature_shard(item: tuple[Path, ShardEntry], root: Path, deep: bool) -> list[str]:
    path, entry = item
    problem = shard_problem(path, entry, check_sha256=deep)
    return [f"{path.relative_to(root)}: {problem}"] if problem else []


def _feature_shards(root: Path, report: VerifyReport) -> list[tuple[Path, ShardEntry]]:
    """Every shard the feature folders' indexes list; an unreadable or missing index is a problem."""
    shards = []
    for folder in sorted(p for p in (root / "features").glob("*") if p.is_dir()):
        if not (folder / INFO_NAME).is_file():
            report.problems.append(f"{folder.relative_to(root)}: no {INFO_NAME} (an unfinished extract-features; "
                                   "run it again)")
            continue
        try:
            _info, entries = read_info(folder)
        except FeatureInputError as e:
            report.problems.append(str(e).replace(f"{root}/", "", 1))
            continue
        shards += [(folder / entry.name, entry) for entry in entries]
    return shards


def _verify_built(root: Path, deep: bool, executor, progress: bool) -> VerifyReport:
    rows, _meta = read_built_manifest(root)
    items = list(zip(rows.column("image_path").to_pylist(), rows.column("image_sha256").to_pylist()))
    items += zip(rows.column("audio_path").to_pylist(), rows.column("audio_sha256").to_pylist())
    report = VerifyReport(root, "built")
    shards = _feature_shards(root, report)
    report.checked = len(items) + len(shards)
    bar = tqdm(total=report.checked, unit="file", desc="verify", disable=not progress)
    for problems in _map(partial(_check_media, root=root, deep=deep), items, executor, bar, lambda _: 1):
        report.problems += problems
    for problems in _map(partial(_check_feature_shard, root=root, deep=deep), shards, executor, bar, lambda _: 1):
        report.problems += problems
    bar.close()
    return report
