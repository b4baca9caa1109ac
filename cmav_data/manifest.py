"""The pair manifest: one schema module owns the columns; readers and writers import it.

A manifest is a Parquet table with one row per image/sound pair. Its key/value metadata holds the
schema version and the build options that change bytes (never paths or worker counts), so two
builds with the same inputs and options give byte-identical files.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from cmav_data.atomic import atomic_path

SPLITS = ("train", "validation")  # the values of the split column, in the order builds count them
SCHEMA_VERSION = "2"  # 2: note_coverage and mean_f0 may be null (their annotation file is empty)

PAIR_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # "<class><NN>_<t>", t = window end in ms
        pa.field("split", pa.string(), nullable=False),  # "train" | "validation"
        pa.field("class_name", pa.string(), nullable=False),  # Sub-URMP class folder
        pa.field("class_index", pa.int32(), nullable=False),  # index into instruments.CLASS_NAMES
        pa.field("recording", pa.string(), nullable=False),  # "<class><NN>"
        pa.field("piece", pa.string(), nullable=False),  # URMP piece folder
        pa.field("part", pa.int32(), nullable=False),  # 1-based part (player) index in the piece
        pa.field("t_start", pa.float64(), nullable=False),  # window start, seconds
        pa.field("t_end", pa.float64(), nullable=False),  # window end, seconds (the name's t)
        pa.field("frame_index", pa.int64(), nullable=False),  # video frame the image was cut from
        pa.field("image_path", pa.string(), nullable=False),  # relative to the dataset root
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("audio_path", pa.string(), nullable=False),
        pa.field("audio_sha256", pa.string(), nullable=False),
        pa.field("note_coverage", pa.float32()),  # fraction of the window with notes; null: no Notes_ data
        pa.field("mean_f0", pa.float32()),  # mean voiced F0 in Hz, 0 when unvoiced; null: no F0s_ data
        pa.field("silent", pa.bool_(), nullable=False),
        pa.field("source_audio_sha256", pa.string(), nullable=False),
        pa.field("source_video_sha256", pa.string(), nullable=False),
    ]
)

# Extra columns of an embedded manifest / published shard: the media bytes themselves.
MEDIA_FIELDS = [pa.field("image_bytes", pa.binary()), pa.field("audio_bytes", pa.binary())]
EMBEDDED_SCHEMA = pa.schema(list(PAIR_SCHEMA) + MEDIA_FIELDS)

# INIS (cmav_data.recipes.inis): one row per photo/sound pair; paths relative to the INIS root.
INIS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # "<class>_<first 12 hex of source sha256>_<k>"
        pa.field("split", pa.string(), nullable=False),  # "train" | "validation"
        pa.field("class_name", pa.string(), nullable=False),  # Sub-URMP class folder
        pa.field("class_index", pa.int32(), nullable=False),  # index into instruments.CLASS_NAMES
        pa.field("wnid", pa.string(), nullable=False),  # ImageNet / WordNet 3.0 synset id
        pa.field("source_path", pa.string(), nullable=False),  # relative to the ImageNet root
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("source_width", pa.int32(), nullable=False),  # after EXIF orientation
        pa.field("source_height", pa.int32(), nullable=False),
        pa.field("image_path", pa.string(), nullable=False),
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("sound_id", pa.string(), nullable=False),  # Sub-URMP pair id of the sound window
        pa.field("audio_path", pa.string(), nullable=False),  # the copied chunk, relative to the INIS root
        pa.field("audio_sha256", pa.string(), nullable=False),
    ]
)

# INIS's rejected.parquet: every source photo the cleaning rules left out, and why.
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("wnid", pa.string(), nullable=False),
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("source_path", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),  # "" when the file cannot be read
        pa.field("reason", pa.string(), nullable=False),  # a rule name, see recipes/inis.py
        pa.field("detail", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),  # kept source path, "" unless a duplicate
    ]
)

METADATA_KEY = b"cmav"


def table_metadata(kind: str, options: Mapping[str, Any]) -> dict[bytes, bytes]:
    """Parquet key/value metadata: schema version, dataset kind, byte-changing build options."""
    payload = {"schema_version": SCHEMA_VERSION, "kind": kind, "options": dict(options)}
    return {METADATA_KEY: json.dumps(payload, sort_keys=True).encode()}


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


def write_table(table: pa.Table, path: str | os.PathLike, metadata: Mapping[bytes, bytes],
                page_checksums: bool = False) -> None:
    """Write ``table`` atomically with fixed writer settings, so equal tables give equal bytes.

    ``page_checksums``: a CRC32 per data page, so a reader can tell damaged pages from data.
    """
    table = table.replace_schema_metadata(dict(metadata))
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=65536, write_statistics=True,
                       write_page_checksum=page_checksums)


class ManifestError(ValueError):
    """A manifest that cannot be read: the message names the file and the cause, in one line."""


def read_manifest(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """The manifest's table (only ``columns`` if given); ManifestError if it is missing, not Parquet
    (truncated, garbage) or lacks a column asked for."""
    try:
        schema = pq.read_schema(path)
        missing = [c for c in columns or () if c not in schema.names]
        if missing:
            raise ManifestError(f"{path}: not a cmav manifest (no column {', '.join(missing)})")
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing") from None
    except (pa.ArrowException, OSError) as e:
        cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ManifestError(f"{path}: unreadable Parquet (truncated or not a manifest: {cause})") from None
