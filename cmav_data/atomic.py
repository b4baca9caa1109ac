"""Atomic file output: write to a temporary file in the same folder, then rename.

A reader (or a build killed with SIGKILL) never sees a half-written file under the final name.
Temporary names start with ``.tmp-`` so that resume can sweep leftovers.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

TMP_PREFIX = ".tmp-"


def _umask() -> int:
    try:  # Linux says it without changing it (os.umask can only set it, racing other threads)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask (0o644 under umask 022)."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def _named(path: Path, tmp: Path) -> Iterator[None]:
    """Let an OSError out of a write name the final file, not our temporary nor nothing (Arrow's and
    ``write()``'s errors carry no file name): 'OUT/x.parquet: No space left on device'."""
    try:
        yield
    except OSError as e:
        if e.errno is None or e.filename not in (None, str(tmp), tmp):
            raise
        raise OSError(e.errno, os.strerror(e.errno), str(path)) from e


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` keeps an extension on the temporary name for tools that guess the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        with _named(path, tmp):
            yield tmp
        # mkstemp makes the file 0600 whatever the umask; a shard or a PNG must be readable by whoever
        # the umask lets read (a web server, colleagues on shared storage).
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically. Cheaper than ``atomic_path`` (no mkstemp): builds
    write one small file per pair, and each final name has a single writer."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with _named(path, tmp):
        try:
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as f:
                    f.write(data)
        except OSError:  # a full disk: leave no partial temporary behind
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def sweep_temporaries(root: str | os.PathLike) -> int:
    """Remove temporary files left by a killed run under ``root``; returns how many."""
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(TMP_PREFIX):
                os.unlink(os.path.join(dirpath, name))
                n += 1
    return n
