"""Publish a built dataset as Parquet shards with the media bytes embedded.

Layout of OUT_DIR (what ``datasets.load_dataset("parquet", data_dir=OUT_DIR/"data")``, the Hub's
automatic split detection and ``pandas.read_parquet`` read as they are)::

    data/<split>-00000-of-000NN.parquet   rows of EMBEDDED_SCHEMA, sorted by id within the split
    README.md                             dataset card: counts, sources' terms, citation
    index.json                            every file's size and sha256, build options and versions

Shards are cut by a byte budget over the media sizes (known from ``stat`` before anything is read),
so the plan, the names and every byte are fixed by the dataset and the budget alone: publishing
with any number of workers gives byte-identical output. Each shard is streamed in row groups of
at most ``ROW_GROUP_BYTES`` of media, so memory stays bounded whatever the dataset size.
``index.json`` is written last: its presence marks a complete publish.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from cmav_data import __version__
from cmav_data.atomic import atomic_path, write_bytes
from cmav_data.checksum import ContentError, read_verified, sha256_bytes, sha256_file
from cmav_data.locking import output_lock
from cmav_data.manifest import EMBEDDED_SCHEMA, METADATA_KEY, PAIR_SCHEMA, SCHEMA_VERSION
from cmav_data.shards.card import dataset_card
from cmav_data.shards.index import (
    INDEX_NAME,
    HashState,
    IndexedFile,
    ShardIndex,
    ShardsError,
)

DEFAULT_SHARD_SIZE = 256 * 10**6
ROW_GROUP_BYTES = 32 * 2**20
ROW_OVERHEAD = 512  # rough bytes of the non-media columns of a row, for the shard budget
SHARD_DIR = "data"
MANIFEST_NAME = "manifest.parquet"
BUILD_NAME = "build.json"
# What of build.json is published: provenance that says what the data are. Local paths, timings
# and warnings stay local (they would leak a machine's layout and make equal datasets differ).
PUBLISHED_BUILD_KEYS = ("versions", "recordings", "source_corpus")


class BadDatasetError(ShardsError):
    pass


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its rows (pair columns) and where their media live."""

    dataset_dir: Path
    out_dir: Path
    relpath: str
    split: str
    rows: pa.Table
    media_sizes: tuple[int, ...]  # image + audio bytes per row
    metadata: dict[bytes, bytes]


def shard_name(split: str, number: int, total: int) -> str:
    return f"{SHARD_DIR}/{split}-{number:05d}-of-{total:05d}.parquet"


def read_built_manifest(dataset_dir: Path) -> tuple[pa.Table, dict[bytes, bytes]]:
    """The manifest's rows sorted by (split, id), and its raw ``cmav`` metadata."""
    path = dataset_dir / MANIFEST_NAME
    if not path.is_file():
        raise BadDatasetError(f"{path}: missing (not a built dataset)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise BadDatasetError(f"{path}: unreadable Parquet: {e}") from None
    missing = [n for n in PAIR_SCHEMA.names if n not in table.column_names]
    if missing:
        raise BadDatasetError(f"{path}: missing columns {', '.join(missing)}")
    meta = table.schema.metadata or {}
    table = table.select(PAIR_SCHEMA.names).cast(PAIR_SCHEMA)
    ids = table.column("id").to_pylist()
    if len(set(ids)) != len(ids):
        raise BadDatasetError(f"{path}: duplicate ids")
    bad = sorted(s for s in set(table.column("split").to_pylist()) if not re.fullmatch(r"[A-Za-z0-9_.]+", s))
    if bad:  # split names become shard file names
        raise BadDatasetError(f"{path}: split names must be letters, digits, '_' or '.': {bad}")
    sorted_rows = table.sort_by([("split", "ascending"), ("id", "ascending")])
    return sorted_rows, {METADATA_KEY: meta.get(METADATA_KEY, b"{}")}


def plan_shards(
    dataset_dir: Path, out_dir: Path, rows: pa.Table, metadata: dict[bytes, bytes], shard_size: int
) -> list[ShardJob]:
    """Cut each split's rows into consecutive shards of at most ``shard_size`` media bytes
    (a single larger row gets a shard of its own)."""
    sizes = []
    for img, aud in zip(rows.column("image_path").to_pylist(), rows.column("audio_path").to_pylist()):
        sizes.append(_media_size(dataset_dir, img) + _media_size(dataset_dir, aud))
    splits = rows.column("split").to_pylist()
    groups: list[tuple[str, int, int]] = []  # (split, start, stop)
    start, used = 0, 0
    for i, size in enumerate(sizes):
        new_split = i > 0 and splits[i] != splits[i - 1]
        if i > start and (new_split or used + size + ROW_OVERHEAD > shard_size):
            groups.append((splits[start], start, i))
            start, used = i, 0
        used += size + ROW_OVERHEAD
    groups.append((splits[start], start, len(sizes)))
    totals = {s: sum(1 for g in groups if g[0] == s) for s in {g[0] for g in groups}}
    jobs, numbers = [], dict.fromkeys(totals, 0)
    for split, a, b in groups:
        jobs.append(ShardJob(dataset_dir, out_dir, shard_name(split, numbers[split], totals[split]),
                             split, rows.slice(a, b - a), tuple(sizes[a:b]), metadata))
        numbers[split] += 1
    return jobs


def _media_size(dataset_dir: Path, rel: str) -> int:
    try:
        return (dataset_dir / rel).stat().st_size
    except FileNotFoundError:
        raise BadDatasetError(f"{dataset_dir / rel}: media file listed in the manifest is missing") from None


def _read_checked(dataset_dir: Path, rel: str, sha256: str) -> bytes:
    try:
        return read_verified(dataset_dir / rel, sha256, "sha256 differs from the manifest (file changed or corrupt)")
    except ContentError as e:
        raise BadDatasetError(str(e)) from None


def write_shard(job: ShardJob) -> IndexedFile:
    """Write one shard atomically, row group by row group; media are checked against the manifest."""
    path = job.out_dir / job.relpath
    schema = EMBEDDED_SCHEMA.with_metadata(job.metadata)
    with atomic_path(path, suffix=".parquet") as tmp:
        # Dictionary encoding and statistics are useless on unique media blobs: only on pair columns.
        with pq.ParquetWriter(tmp, schema, compression="zstd", use_dictionary=PAIR_SCHEMA.names,
                              write_statistics=PAIR_SCHEMA.names) as writer:
            for a, b in _row_groups(job.media_sizes):
                group = job.rows.slice(a, b - a)
                media = [
                    pa.array([_read_checked(job.dataset_dir, p, h) for p, h in
                              zip(group.column(f"{kind}_path").to_pylist(), group.column(f"{kind}_sha256").to_pylist())],
                             pa.binary())
                    for kind in ("image", "audio")
                ]
                writer.write_table(pa.Table.from_arrays(group.columns + media, schema=schema),
                                   row_group_size=group.num_rows)
        size, digest = tmp.stat().st_size, sha256_file(tmp)
    return IndexedFile(job.relpath, size, digest, split=job.split, rows=job.rows.num_rows)


def _row_groups(media_sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    groups, start, used = [], 0, 0
    for i, size in enumerate(media_sizes):
        if i > start and used + size > ROW_GROUP_BYTES:
            groups.append((start, i))
            start, used = i, 0
        used += size
    groups.append((start, len(media_sizes)))
    return groups


def publish(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard_size: int = DEFAULT_SHARD_SIZE,
    executor: Executor | None = None,
    progress: bool = True,
) -> ShardIndex:
    """Publish the built dataset at ``dataset_dir`` into ``out_dir``; returns the index written.

    Holds ``out_dir``'s write lock meanwhile: a second publish into it stops with ``OutputLocked``.
    """
    with output_lock(out_dir, "publish"):
        return publish_into_locked_folder(dataset_dir, out_dir, shard_size, executor, progress)


def publish_into_locked_folder(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard_size: int = DEFAULT_SHARD_SIZE,
    executor: Executor | None = None,
    progress: bool = True,
) -> ShardIndex:
    """``publish`` for a caller that holds ``out_dir``'s lock (a build embedding its own media)."""
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    if shard_size <= 0:
        raise ShardsError(f"shard size must be positive, got {shard_size}")
    rows, metadata = read_built_manifest(dataset_dir)
    if rows.num_rows == 0:
        raise BadDatasetError(f"{dataset_dir / MANIFEST_NAME}: no rows to publish")
    meta = json.loads(metadata[METADATA_KEY])
    build = _read_build(dataset_dir)
    jobs = plan_shards(dataset_dir, out_dir, rows, metadata, shard_size)

    total = sum(sum(j.media_sizes) for j in jobs)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="publish", disable=not progress)
    results = map(write_shard, jobs) if executor is None else executor.map(write_shard, jobs)
    shards = []
    for job, shard in zip(jobs, results):
        shards.append(shard)
        bar.update(sum(job.media_sizes))
    bar.close()

    index = ShardIndex(
        kind=str(meta.get("kind", "unknown")),
        schema_version=str(meta.get("schema_version", SCHEMA_VERSION)),
        options=dict(meta.get("options", {})),
        build={**{k: build[k] for k in PUBLISHED_BUILD_KEYS if k in build},
               "published_with": {"cmav": __version__, "pyarrow": pa.__version__}},
        files=shards,
    )
    card = dataset_card(index, rows).encode()
    write_bytes(out_dir / "README.md", card)
    index.files.append(IndexedFile("README.md", len(card), sha256_bytes(card)))
    _remove_stale_shards(out_dir, {f.path for f in shards})

    state = HashState(out_dir)  # publish hashed everything: a later verify need not
    for f in index.files:
        state.record(f.path, f.sha256)
    state.save()
    write_bytes(out_dir / INDEX_NAME, index.to_json())
    return index


def _read_build(dataset_dir: Path) -> dict:
    path = dataset_dir / BUILD_NAME
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_bytes())
    except ValueError as e:
        raise BadDatasetError(f"{path}: not valid JSON: {e}") from None


def _remove_stale_shards(out_dir: Path, keep: set[str]) -> None:
    # A previous publish with another budget leaves shards of other names that a glob would load.
    for path in (out_dir / SHARD_DIR).glob("*.parquet"):
        if f"{SHARD_DIR}/{path.name}" not in keep:
            path.unlink()
