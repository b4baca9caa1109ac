"""One writer per output folder: an advisory lock file inside it.

The lock is an ``flock`` on ``FOLDER/.cmav-lock``; the kernel drops it when its holder exits, however
it exits, so a lock left by a killed process is taken over without a word. The file holds the
holder's pid and command, only so that the refusal can say who holds it. Processes forked while the
lock is held (worker pools) close their copy, so that they never keep the lock alive on their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".cmav-lock"

_held_fds: set[int] = set()


def _close_inherited_locks() -> None:
    # A forked child shares the parent's open file description: closing its copy keeps the lock the
    # parent's alone (flock is released when the last copy is closed).
    for fd in _held_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_fds.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class OutputLocked(Exception):
    """Another live process writes into this folder."""

    def __init__(self, folder: str | os.PathLike, holder: str):
        self.folder = Path(folder)
        self.holder = holder
        super().__init__(f"{self.folder} is being written by another cmav process ({holder}); "
                         "wait for it to finish or stop it, then run this again")


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").split("\n")[0].strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "pid unknown"
    return f"pid {pid}" + (f", {command}" if command else "")


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold the write lock of ``folder`` (created if missing) for the block; raise ``OutputLocked``
    at once if a live process holds it. Yields the lock file's path (writers must leave it alone).
    A folder made here that is still empty on release (a command refused before writing) is removed."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLocked(folder, _holder(path)) from None
        # The holder before us unlinks the file as it releases it: a lock on an unlinked file locks
        # nothing, so try again on the file now at the path.
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    _held_fds.add(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {command}\n".encode("utf-8"))
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        _held_fds.discard(fd)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):  # not empty: something was written, keep it
                folder.rmdir()
