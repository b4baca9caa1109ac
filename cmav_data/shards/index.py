"""The shard index (``index.json``), the hash state file, and the errors of the shards package.

``index.json`` is written by ``publish`` beside the shards and copied verbatim by ``download``; it is
the single list of what a published dataset holds::

    {"format": "cmav-shards", "format_version": 1, "kind": "suburmp", "schema_version": "1",
     "options": {...build options...}, "build": {...build.json...},
     "splits": {"train": {"rows": 71230, "shards": 12}, ...},
     "files": [{"path": "data/train-00000-of-00012.parquet", "size": 255998811,
                "sha256": "...", "split": "train", "rows": 6012}, ...,
               {"path": "README.md", "size": 2310, "sha256": "..."}]}

Paths are POSIX, relative to the dataset root, and never leave it (an index from a mirror is
untrusted input). Serialisation is canonical (sorted keys, fixed indent) so equal datasets give
byte-identical indexes.

The hash state file (``.cmav-state.json``) maps a relative path to the (size, mtime_ns, sha256) it
had when last hashed: a later run trusts the hash while size and mtime are unchanged, so every
file is hashed once (the same trade-off git's index makes).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cmav_data.atomic import write_bytes
from cmav_data.checksum import sha256_file

INDEX_NAME = "index.json"
STATE_NAME = ".cmav-state.json"
FORMAT = "cmav-shards"
FORMAT_VERSION = 1


class ShardsError(Exception):
    """Base of every error the shards package raises on bad input; the CLI prints it on one line."""


class BadIndexError(ShardsError):
    pass


@dataclass(frozen=True)
class IndexedFile:
    path: str  # POSIX, relative to the dataset root
    size: int
    sha256: str
    split: str | None = None  # shards only
    rows: int | None = None  # shards only

    @property
    def is_shard(self) -> bool:
        return self.split is not None


@dataclass
class ShardIndex:
    kind: str
    schema_version: str
    options: dict[str, Any]
    build: dict[str, Any]
    files: list[IndexedFile] = field(default_factory=list)

    @property
    def shards(self) -> list[IndexedFile]:
        return [f for f in self.files if f.is_shard]

    def splits(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for f in self.shards:
            s = out.setdefault(f.split, {"rows": 0, "shards": 0})
            s["rows"] += f.rows
            s["shards"] += 1
        return out

    def to_json(self) -> bytes:
        files = [{k: v for k, v in asdict(f).items() if v is not None} for f in self.files]
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "schema_version": self.schema_version,
            "options": self.options,
            "build": self.build,
            "splits": self.splits(),
            "files": files,
        }
        return (json.dumps(payload, sort_keys=True, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, origin: str) -> "ShardIndex":
        """Parse and validate an index; ``origin`` (file or URL) names it in errors."""
        try:
            payload = json.loads(data)
            if payload.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} index (format={payload.get('format')!r})")
            if payload.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"unsupported format_version {payload.get('format_version')!r}")
            files = [
                IndexedFile(
                    path=_safe_relpath(f["path"]),
                    size=int(f["size"]),
                    sha256=_sha256_hex(f["sha256"]),
                    split=f.get("split"),
                    rows=None if f.get("rows") is None else int(f["rows"]),
                )
                for f in payload["files"]
            ]
            if len({f.path for f in files}) != len(files):
                raise ValueError("a path is listed twice")
            return cls(
                kind=str(payload["kind"]),
                schema_version=str(payload["schema_version"]),
                options=dict(payload.get("options", {})),
                build=dict(payload.get("build", {})),
                files=files,
            )
        except (ValueError, KeyError, TypeError) as e:
            raise BadIndexError(f"{origin}: bad shard index: {e}") from None


def _safe_relpath(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or ".." in p.parts or "\\" in path:
        raise ValueError(f"unsafe path {path!r}")
    return str(p)


def _sha256_hex(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"bad sha256 {value!r}")
    return value


def read_index(root: str | os.PathLike) -> ShardIndex:
    path = Path(root) / INDEX_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadIndexError(f"{path}: no shard index") from None
    return ShardIndex.from_json(data, str(path))


class HashState:
    """The (size, mtime_ns, sha256) of files under ``root``, persisted in ``root/.cmav-state.json``.

    Thread-safe; ``save`` writes atomically and only when something changed. A lost or unreadable
    state file only costs re-hashing.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._path = self.root / STATE_NAME
        self._lock = threading.Lock()
        self._dirty = False
        try:
            self._entries: dict[str, list] = json.loads(self._path.read_bytes())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            self._entries = {}

    def known(self, rel: str) -> str | None:
        """The recorded sha256 of ``rel`` if its size and mtime are unchanged since, else None."""
        try:
            st = (self.root / rel).stat()
        except FileNotFoundError:
            return None
        with self._lock:
            entry = self._entries.get(rel)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2]
        return None

    def sha256(self, rel: str, rehash: bool = False) -> str:
        """sha256 of ``rel``: from the state when fresh (and not ``rehash``), else hashed and recorded."""
        known = None if rehash else self.known(rel)
        if known is not None:
            return known
        st = (self.root / rel).stat()
        digest = sha256_file(self.root / rel)
        self._set(rel, st, digest)
        return digest

    def record(self, rel: str, sha256: str) -> None:
        """Record a hash computed elsewhere (e.g. while downloading) for the file as it is now."""
        self._set(rel, (self.root / rel).stat(), sha256)

    def forget(self, rel: str) -> None:
        with self._lock:
            if self._entries.pop(rel, None) is not None:
                self._dirty = True

    def _set(self, rel: str, st: os.stat_result, digest: str) -> None:
        with self._lock:
            self._entries[rel] = [st.st_size, st.st_mtime_ns, digest]
            self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            data = json.dumps({"version": 1, "files": self._entries}, sort_keys=True).encode()
            self._dirty = False
        write_bytes(self._path, data)


def parse_size(text: str) -> int:
    """Bytes from "256MB", "1.5GB", "512KiB" or "1000000" (KB/MB/GB decimal, KiB/MiB/GiB binary,
    as ``datasets``' ``max_shard_size`` reads them)."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in units:
        raise ValueError(f"bad size {text!r} (examples: 256MB, 1GB, 512MiB)")
    n = int(float(m.group(1)) * units[m.group(2).upper()])
    if n <= 0:
        raise ValueError(f"bad size {text!r}: must be positive")
    return n
