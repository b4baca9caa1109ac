"""Content checksums (sha256) of files and bytes, streamed so large media never sit in memory."""

from __future__ import annotations

import hashlib
import os

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ContentError(Exception):
    """A file that cannot be read, or whose bytes are not the ones expected."""

    def __init__(self, path: str | os.PathLike, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


def read_verified(path: str | os.PathLike, sha256: str, mismatch: str) -> bytes:
    """The file's bytes if their sha256 is ``sha256``; else ContentError with ``mismatch`` as cause."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ContentError(path, f"cannot read ({e.strerror or e})") from None
    if sha256_bytes(data) != sha256:
        raise ContentError(path, mismatch)
    return data
