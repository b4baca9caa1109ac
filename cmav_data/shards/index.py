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
untrusted input: ``validate_index`` checks every field before any file is touched). Serialisation is canonical (sorted keys, fixed indent) so equal datasets give
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
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cmav_data.atomic import TMP_PREFIX, write_bytes
from cmav_data.checksum import sha256_file
from cmav_data.locking import LOCK_NAME

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
        except RecursionError:
            raise BadIndexError(f"{origin}: bad shard index: JSON nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as e:  # also UnicodeDecodeError
            raise BadIndexError(f"{origin}: bad shard index: not valid JSON ({e})") from None
        try:
            return validate_index(payload)
        except ValueError as e:
            raise BadIndexError(f"{origin}: bad shard index: {e}") from None


# An index from a mirror is untrusted: every field is checked before any file is touched.
MAX_DEPTH = 32  # of nested JSON containers (ours need 4)
MAX_NAME_BYTES = 255  # a path component, as most file systems allow
MAX_PATH_BYTES = 4096
PART_SUFFIX = ".part"  # download's partial files: <name>.<sha256[:16]>.part
_OWN_NAMES = {STATE_NAME, LOCK_NAME}  # names of our own state files, at any depth
_OWN_ROOT_NAMES = {INDEX_NAME}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def validate_index(payload: Any) -> "ShardIndex":
    """The ShardIndex that parsed JSON ``payload`` describes, after checking every field.

    Raises ValueError naming the first bad field: a wrong type, a size or row count that is not an
    int >= 0, a sha256 that is not 64 lowercase hex digits, a path that is not a safe relative
    path (see ``_check_path``), a path listed twice (also once case-folded: one file on macOS and
    Windows) or both as a file and as a folder, JSON nested deeper than ``MAX_DEPTH``.
    """
    _check_depth(payload)
    if not isinstance(payload, dict):
        raise ValueError(f"a JSON object expected, not {_json_type(payload)}")
    if payload.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} index (format={_show(payload.get('format'))})")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported format_version {_show(payload.get('format_version'))}")
    kind = _field(payload, "kind", str)
    schema_version = _field(payload, "schema_version", str)
    options = _field(payload, "options", dict, default={})
    build = _field(payload, "build", dict, default={})
    entries = _field(payload, "files", list)
    files = []
    for i, entry in enumerate(entries):
        where = f"files[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: a JSON object expected, not {_json_type(entry)}")
        path = _field(entry, "path", str, where)
        where = f"{where} ({_show(path)})"
        _check_path(path, where)
        sha256 = _field(entry, "sha256", str, where)
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"{where}: sha256 {_show(sha256)} is not 64 lowercase hex digits")
        split = _field(entry, "split", str, where, default=None)
        rows = _count(entry, "rows", where) if split is not None or "rows" in entry else None
        files.append(IndexedFile(path, _count(entry, "size", where), sha256, split, rows))
    _check_tree([f.path for f in files])
    return ShardIndex(kind, schema_version, options, build, files)


_MISSING = object()


def _field(obj: dict, key: str, kind: type, where: str = "", default: Any = _MISSING) -> Any:
    value = obj.get(key, default)
    if value is _MISSING:
        raise ValueError(f"{where + ': ' if where else ''}{key!r} is missing")
    if value is not default and not isinstance(value, kind):
        raise ValueError(f"{where + ': ' if where else ''}{key!r} must be a JSON {_JSON_NAMES[kind]}, "
                         f"not {_json_type(value)}")
    return value


def _count(entry: dict, key: str, where: str) -> int:
    value = _field(entry, key, int, where)
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: {key} must be an integer >= 0, not {_show(value)}")
    return value


def _check_path(path: str, where: str) -> None:
    """A POSIX path relative to the dataset root, in canonical form, that stays inside it and names
    none of our own files (the hash state, the index, partial or temporary files)."""
    if not path or path != str(PurePosixPath(path)) or path == ".":
        raise ValueError(f"{where}: not a canonical relative path (empty, '.', '//', './' or a trailing '/')")
    if path.startswith("/"):
        raise ValueError(f"{where}: an absolute path")
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in path):
        raise ValueError(f"{where}: a NUL, control character or backslash in the path")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON) names no file
        raise ValueError(f"{where}: not valid Unicode") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise ValueError(f"{where}: path longer than {MAX_PATH_BYTES} bytes")
    parts = path.split("/")
    for part in parts:
        if part == "..":
            raise ValueError(f"{where}: '..' leaves the dataset folder")
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise ValueError(f"{where}: a name longer than {MAX_NAME_BYTES} bytes")
        if part in _OWN_NAMES or part.startswith(TMP_PREFIX):
            raise ValueError(f"{where}: {part!r} is the name of one of cmav's own files")
    if path in _OWN_ROOT_NAMES or parts[-1].endswith(PART_SUFFIX):
        raise ValueError(f"{where}: {parts[-1]!r} is the name of one of cmav's own files")


def _check_tree(paths: list[str]) -> None:
    seen: dict[str, str] = {}  # case-folded, NFC path -> path: one file on macOS and Windows
    folders: dict[str, str] = {}  # folder -> a path under it
    for path in paths:
        key = unicodedata.normalize("NFC", path).casefold()
        if key in seen:
            same = "listed twice" if seen[key] == path else f"the same file as {_show(seen[key])} on some file systems"
            raise ValueError(f"{_show(path)} is {same}")
        seen[key] = path
        parts = path.split("/")
        for n in range(1, len(parts)):
            folders.setdefault("/".join(parts[:n]), path)
    for path in paths:
        if path in folders:
            raise ValueError(f"{_show(path)} is listed both as a file and as the folder of {_show(folders[path])}")


def _check_depth(payload: Any) -> None:
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "integer"}


def _json_type(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", dict: "an object", list: "an array", str: "a string",
             int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 60) -> str:
    """``value`` for an error line, as JSON (so NUL and newlines stay visible), shortened if long."""
    text = json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace").decode()  # lone surrogates
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} characters)"


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
            files = json.loads(self._path.read_bytes())["files"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            files = {}
        # Entries of another shape (a damaged or foreign file) are dropped: they only cost a re-hash.
        self._entries: dict[str, list] = {
            rel: entry for rel, entry in (files.items() if isinstance(files, dict) else ())
            if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], str)
        }

    def known(self, rel: str, size: int | None = None) -> str | None:
        """The recorded sha256 of ``rel`` if its size and mtime are unchanged since (and its size is
        ``size``, when given: a state written by an older cmav may vouch for a file of the wrong
        size), else None."""
        try:
            st = (self.root / rel).stat()
        except FileNotFoundError:
            return None
        with self._lock:
            entry = self._entries.get(rel)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns and size in (None, st.st_size):
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
