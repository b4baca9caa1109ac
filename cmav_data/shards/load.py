"""Load the pairs of a built or a published/downloaded dataset as one pandas DataFrame.

Both give the PAIR_SCHEMA columns in the same row order (by split, then id); ``media=True`` adds
``image_bytes`` and ``audio_bytes`` (read from the shards, or from the media files of a built
dataset), so code downstream need not know which kind of copy it was given.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cmav_data.manifest import EMBEDDED_SCHEMA, PAIR_SCHEMA
from cmav_data.shards.index import INDEX_NAME, ShardsError, read_index
from cmav_data.shards.publish import MANIFEST_NAME, read_built_manifest


def load_pairs(root: str | os.PathLike, media: bool = False, split: str | None = None) -> pd.DataFrame:
    """Pairs of the dataset at ``root`` (only ``split`` if given); ``media`` adds the bytes columns."""
    root = Path(root)
    if (root / INDEX_NAME).is_file():
        table = _read_published(root, media, split)
    elif (root / MANIFEST_NAME).is_file():
        table = _read_built(root, media, split)
    else:
        raise ShardsError(f"{root}: neither {INDEX_NAME} (published/downloaded) nor {MANIFEST_NAME} (built)")
    return table.to_pandas()


def _read_published(root: Path, media: bool, split: str | None) -> pa.Table:
    schema = EMBEDDED_SCHEMA if media else PAIR_SCHEMA
    tables = []
    for f in read_index(root).shards:
        if split is not None and f.split != split:
            continue
        try:
            tables.append(pq.read_table(root / f.path, columns=schema.names, schema=EMBEDDED_SCHEMA))
        except (pa.ArrowException, OSError) as e:
            raise ShardsError(f"{root / f.path}: cannot read shard ({e}); run cmav-data verify") from None
    # Shards are written sorted by (split, id); sorting again keeps that true of any index order.
    return pa.concat_tables(tables).cast(schema).sort_by([("split", "ascending"), ("id", "ascending")]) \
        if tables else schema.empty_table()


def _read_built(root: Path, media: bool, split: str | None) -> pa.Table:
    rows, _meta = read_built_manifest(root)
    if split is not None:
        rows = rows.filter(pc.equal(rows.column("split"), split))
    if not media:
        return rows
    image = pa.array([(root / p).read_bytes() for p in rows.column("image_path").to_pylist()], pa.binary())
    audio = pa.array([(root / p).read_bytes() for p in rows.column("audio_path").to_pylist()], pa.binary())
    return rows.append_column(EMBEDDED_SCHEMA.field("image_bytes"), image).append_column(
        EMBEDDED_SCHEMA.field("audio_bytes"), audio)
