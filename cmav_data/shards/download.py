"""Download a published dataset over HTTP(S): resume, retries, mirrors, checksums, a local cache.

SOURCE is a name in ``manifests/datasets.json`` (its ``index`` path resolved against each mirror
base URL) or the URL of an ``index.json`` (each ``--mirror`` is then a base URL holding the same
files). Every file of the index is fetched from the folder of the index on the first mirror that
serves it, into ``<file>.<sha256[:16]>.part`` beside its final name: the part is keyed by the
expected hash, so a part left by a killed run resumes with a ``Range`` request, and a part of an
older version of the dataset (a changed index) is never glued to bytes of the new one.

A transient failure (connection dropped or refused, time-out, 5xx, 408, 429) is retried on the same
mirror with exponential back-off; any progress resets the count. Other 4xx, ``retries`` failures
in a row, or content that disagrees with the index (size or sha256) move on to the next mirror.
Each file has an overall deadline (all retries and mirrors; by default a minute plus the file at
64 KiB/s), so a server that trickles bytes fails the file instead of hanging; its part is kept for
the next run. The sha256 is computed while the bytes arrive (hash once); a file is renamed to its
final name only after its size and hash match, so a failure leaves every good file in place.

The index is validated in full (``validate_index``) before DEST is touched, and one process at a
time writes into DEST (``output_lock``). Already-verified files in DEST (per the hash state file)
are skipped without reading them; a file already at its final name with the index's size (left by
a killed run, or copied in) is hashed and kept when it matches. A cache (``$CMAV_CACHE`` or
``~/.cache/cmav``, blobs keyed by sha256) fills another DEST by hard link, or copy across file
systems, without network; it adopts a blob only after hashing it, and replaces a bad one (it also
keeps the last index fetched from each URL, used when no mirror answers). The standard library
does the HTTP.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import stat
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote, urljoin, urlsplit

from tqdm import tqdm

from cmav_data import __version__
from cmav_data.atomic import TMP_PREFIX, atomic_path, write_bytes
from cmav_data.checksum import sha256_file
from cmav_data.locking import output_lock
from cmav_data.manifests import reference_path
from cmav_data.shards.index import (
    INDEX_NAME, PART_SUFFIX, BadIndexError, HashState, IndexedFile, ShardIndex, ShardsError,
)

ENV_CACHE = "CMAV_CACHE"
REGISTRY_PATH = reference_path("datasets.json")
MISMATCH = "checksum mismatch: the mirror changed or the file is corrupt"


class DownloadError(ShardsError):
    pass


class UnknownDatasetError(ShardsError):
    pass


class ChecksumMismatchError(DownloadError):
    pass


class LocalWriteError(DownloadError):
    """A file in DEST cannot be written (disk full, file too large, permissions): not retried, and
    not blamed on the mirror."""


@contextlib.contextmanager
def _local_io(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise LocalWriteError(f"{path}: cannot write: {e.strerror or e}") from None


@dataclass(frozen=True)
class DownloadConfig:
    retries: int = 5  # failures in a row without progress before a mirror is given up
    backoff: float = 0.5  # seconds before the first retry; doubles per retry
    max_backoff: float = 30.0
    timeout: float = 30.0  # socket time-out for each read, seconds
    deadline: float | None = None  # seconds for one whole file, retries and mirrors included; None: by size
    max_index_bytes: int = 64 * 2**20
    chunk_size: int = 1 << 20

    def file_deadline(self, size: int) -> float:
        """Seconds allowed to fetch a file of ``size`` bytes: ``deadline``, or a minute plus the file
        at 64 KiB/s (slow links finish; a server trickling bytes does not hold a run forever)."""
        return self.deadline if self.deadline is not None else 60.0 + size / (64 * 1024)


@dataclass
class DownloadReport:
    index_url: str
    offline: bool = False  # the mirrors were unreachable: the index came from the cache
    present: list[str] = field(default_factory=list)  # already verified in DEST
    adopted: list[str] = field(default_factory=list)  # complete at their final names: hashed, kept
    from_cache: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    network_bytes: int = 0


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    index: str  # relative to a mirror base URL
    description: str
    mirrors: tuple[str, ...]


def default_cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "cmav")


def load_registry(path: str | os.PathLike = REGISTRY_PATH) -> dict[str, RegistryEntry]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))["datasets"]
    return {
        name: RegistryEntry(name, e["index"], e.get("description", ""), tuple(e.get("mirrors", ())))
        for name, e in raw.items()
    }


def resolve_source(source: str, mirrors: tuple[str, ...] = (), registry: dict[str, RegistryEntry] | None = None) -> list[str]:
    """Index URLs for ``source`` (registry name or index URL), in the order to try them."""
    if urlsplit(source).scheme in ("http", "https"):
        return [source] + [urljoin(_as_base(m), INDEX_NAME) for m in mirrors]
    registry = load_registry() if registry is None else registry
    if source not in registry:
        known = ", ".join(sorted(registry))
        raise UnknownDatasetError(f"unknown dataset {source!r} (known: {known}; or pass the URL of an index.json)")
    entry = registry[source]
    bases = list(mirrors) + list(entry.mirrors)
    if not bases:
        raise DownloadError(
            f"{source}: no mirror known (cmav hosts no official copy yet): pass --mirror BASE_URL, "
            f"a server holding {entry.index}"
        )
    return [urljoin(_as_base(b), entry.index) for b in bases]


def _as_base(url: str) -> str:
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"mirror {url!r}: not an http(s) URL")
    return url if url.endswith("/") else url + "/"


class _MirrorFailed(Exception):
    """This mirror cannot serve the file now (gave up after retries, or a permanent HTTP error)."""


class _WrongContent(Exception):
    """The mirror serves content that disagrees with the index."""


class _DeadlinePassed(Exception):
    """The file's overall deadline passed."""


class _Part:
    """A ``.part`` file and the running sha256 of its bytes. Its own I/O errors are LocalWriteError,
    so that they are never taken for the network's."""

    def __init__(self, path: Path):
        self.path = path
        with _local_io(path):
            path.touch()
        self.have = 0
        self.hasher = hashlib.sha256()
        self.sync()

    def sync(self) -> None:
        """Re-read the part from disk if it does not hold exactly the bytes hashed so far."""
        with _local_io(self.path):
            size = self.path.stat().st_size if self.path.exists() else 0
            if size != self.have:
                self.have, self.hasher = 0, hashlib.sha256()
                with open(self.path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        self.hasher.update(chunk)
                        self.have += len(chunk)

    def restart(self) -> None:
        with _local_io(self.path):
            self.path.write_bytes(b"")
        self.have, self.hasher = 0, hashlib.sha256()

    @contextlib.contextmanager
    def appender(self) -> Iterator[Callable[[bytes], None]]:
        """A function that appends bytes to the part (on disk at once, so a kill loses little)."""
        with _local_io(self.path):
            out = open(self.path, "ab", buffering=0)  # no buffer left to fail again at close

        def append(chunk: bytes) -> None:
            with _local_io(self.path):
                view = memoryview(chunk)
                while view:  # a raw write may be short
                    view = view[out.write(view):]
            self.hasher.update(chunk)
            self.have += len(chunk)

        with out:
            yield append


def _request(url: str, start: int, timeout: float):
    headers = {"User-Agent": f"cmav/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _read_timeout(config: DownloadConfig, deadline: float) -> float:
    # The deadline is checked after each read; a read itself may block at most this long.
    return max(min(config.timeout, deadline - time.monotonic()), 0.01)


def _fetch_once(url: str, part: _Part, size: int, config: DownloadConfig, deadline: float,
                on_bytes: Callable[[int], None]) -> int:
    """One request: append what the server sends to ``part``; returns bytes received."""
    received = 0
    with _request(url, part.have, _read_timeout(config, deadline)) as resp:
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range", ""))
            if start != part.have:
                raise http.client.HTTPException(f"asked for bytes from {part.have}, got from {start}")
        elif resp.status == 200:
            total = resp.length
            if part.have:  # the server ignores Range: start over
                on_bytes(-part.have)
                part.restart()
        else:
            raise http.client.HTTPException(f"unexpected HTTP status {resp.status}")
        if total is not None and total != size:
            raise _WrongContent(f"the server's file has {total} bytes, the index says {size}")
        with part.appender() as append:
            while chunk := resp.read1(config.chunk_size):  # what has arrived, so a kill loses little
                if part.have + len(chunk) > size:
                    raise _WrongContent(f"the server sends more than the {size} bytes the index says")
                append(chunk)
                received += len(chunk)
                on_bytes(len(chunk))
                if time.monotonic() > deadline:
                    raise _DeadlinePassed
        if resp.length:  # http.client returns b"" at an early EOF instead of raising
            raise http.client.IncompleteRead(b"", resp.length)
    return received


def _content_range(value: str) -> tuple[int, int | None]:
    # "bytes START-END/TOTAL" (TOTAL may be "*")
    try:
        unit, spec = value.split(" ", 1)
        span, total = spec.split("/")
        if unit != "bytes":
            raise ValueError
        return int(span.split("-")[0]), None if total == "*" else int(total)
    except ValueError:
        raise http.client.HTTPException(f"bad Content-Range {value!r}") from None


def _transient_http(code: int) -> bool:
    return code >= 500 or code in (408, 429)


def _fetch_from_mirror(url: str, part: _Part, size: int, config: DownloadConfig, deadline: float,
                       on_bytes, count) -> None:
    """Fill ``part`` up to ``size`` bytes from ``url``, retrying transient failures with back-off."""
    failures = 0
    while part.have < size:
        if time.monotonic() > deadline:
            raise _DeadlinePassed
        part.sync()
        before = part.have
        error = None
        try:
            _fetch_once(url, part, size, config, deadline, lambda n: (on_bytes(n), count(n)))
        except urllib.error.HTTPError as e:
            if e.code == 416:
                raise _WrongContent(f"the server's file is shorter than the {size} bytes the index says") from None
            if not _transient_http(e.code):
                raise _MirrorFailed(f"HTTP {e.code} {e.reason}") from None
            error = f"HTTP {e.code} {e.reason}"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            error = f"{type(e).__name__}: {e}"
        if part.have > before:
            failures = 0
        elif error is None:
            error = "the server sent no bytes"
        if error is None:
            continue
        failures += 1
        if failures > config.retries:
            raise _MirrorFailed(f"gave up after {config.retries} retries: {error}")
        time.sleep(max(min(config.backoff * 2 ** (failures - 1), config.max_backoff,
                           deadline - time.monotonic()), 0))


def fetch_file(
    f: IndexedFile, bases: list[str], dest: Path, config: DownloadConfig,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> int:
    """Fetch ``f`` into ``dest`` from the first mirror base that serves matching bytes; returns the
    bytes received over the network. Raises ChecksumMismatchError / DownloadError when none does."""
    final = dest / f.path
    final.parent.mkdir(parents=True, exist_ok=True)
    part_path = final.with_name(f"{final.name}.{f.sha256[:16]}{PART_SUFFIX}")
    _remove_parts(final, keep=part_path)
    received = 0

    def count(n: int) -> None:
        nonlocal received
        received += max(n, 0)

    part = _Part(part_path)
    if part.have > f.size:
        part.restart()
    errors, mismatch = [], False
    seconds = config.file_deadline(f.size)
    deadline = time.monotonic() + seconds
    for base in bases:  # a part left by one mirror is resumed from the next: same sha256, same bytes
        url = urljoin(base, quote(f.path))
        on_bytes(part.have)
        try:
            _fetch_from_mirror(url, part, f.size, config, deadline, on_bytes, count)
            digest = part.hasher.hexdigest()
            if digest == f.sha256:
                with _local_io(final):
                    os.replace(part_path, final)
                return received
            reason = f"sha256 {digest} instead of {f.sha256}"
        except _WrongContent as e:
            reason = str(e)
        except _DeadlinePassed:
            raise DownloadError(f"{final}: not complete within its {seconds:g} s deadline ({part.have} of "
                                f"{f.size} bytes; run again to resume, or raise --deadline)") from None
        except _MirrorFailed as e:
            errors.append(f"{url}: {e}")
            on_bytes(-part.have)
            continue
        mismatch = True
        errors.append(f"{url}: {reason}")
        on_bytes(-part.have)
        part.restart()
    if part.have == 0:
        part_path.unlink()
    detail = "; ".join(errors)
    if mismatch:
        raise ChecksumMismatchError(f"{final}: {MISMATCH} ({detail})")
    raise DownloadError(f"{final}: no mirror could serve it ({detail})")


def _remove_parts(final: Path, keep: Path | None = None) -> None:
    for stale in final.parent.glob(f"{final.name}.*{PART_SUFFIX}"):
        if stale != keep:
            stale.unlink()


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (a new name), or copy it across file systems."""
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(src, dst)


class BlobCache:
    """Verified files keyed by sha256 under ``root/sha256/<ab>/<sha256>``, with a hash state."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.state = HashState(self.root)

    @staticmethod
    def _rel(sha256: str) -> str:
        return f"sha256/{sha256[:2]}/{sha256}"

    def fill(self, f: IndexedFile, target: Path) -> bool:
        """Put the cached copy of ``f`` at ``target``; False when the cache lacks a good one."""
        rel = self._rel(f.sha256)
        blob = self.root / rel
        if not blob.is_file() or blob.stat().st_size != f.size:
            return False
        if self.state.sha256(rel) != f.sha256:  # corrupted in the cache (or through a hard link)
            blob.unlink()
            self.state.forget(rel)
            return False
        with atomic_path(target) as tmp:
            tmp.unlink()
            _link_or_copy(blob, tmp)
        return True

    def add(self, src: Path, sha256: str) -> bool:
        """Keep ``src`` as the blob of ``sha256`` once the bytes placed in the cache hash to it; a blob
        already there is replaced unless the hash state vouches for it. False: nothing adopted."""
        rel = self._rel(sha256)
        if self.state.known(rel, size=src.stat().st_size) == sha256:
            return True
        blob = self.root / rel
        blob.parent.mkdir(parents=True, exist_ok=True)
        tmp = blob.with_name(f"{TMP_PREFIX}{blob.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            tmp.unlink(missing_ok=True)
            _link_or_copy(src, tmp)
            if sha256_file(tmp) != sha256:  # what is hashed here is what the cache keeps
                return False
            os.replace(tmp, blob)
        finally:
            tmp.unlink(missing_ok=True)
        self.state.record(rel, sha256)
        return True

    def save(self) -> None:
        self.state.save()

    def _index_path(self, url: str) -> Path:
        return self.root / "index" / f"{hashlib.sha256(url.encode()).hexdigest()}.json"

    def put_index(self, url: str, data: bytes) -> None:
        write_bytes(self._index_path(url), data)

    def get_index(self, url: str) -> bytes | None:
        """The index last fetched from ``url``, for working offline."""
        path = self._index_path(url)
        return path.read_bytes() if path.is_file() else None


def fetch_index(urls: list[str], config: DownloadConfig) -> tuple[bytes, str]:
    """The first index any of ``urls`` serves (with retries), and its URL. An index larger than
    ``config.max_index_bytes`` is a BadIndexError at once (its Content-Length says so before the body)."""
    errors = []
    for url in urls:
        seconds = config.file_deadline(config.max_index_bytes)
        deadline = time.monotonic() + seconds
        for attempt in range(config.retries + 1):
            try:
                return _read_index(url, config, deadline), url
            except _DeadlinePassed:
                error = f"not complete within its {seconds:g} s deadline"
                break
            except urllib.error.HTTPError as e:
                error = f"HTTP {e.code} {e.reason}"
                if not _transient_http(e.code):
                    break
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                error = f"{type(e).__name__}: {e}"
            if attempt < config.retries:
                time.sleep(min(config.backoff * 2**attempt, config.max_backoff))
        errors.append(f"{url}: {error}")
    raise DownloadError("could not fetch the index: " + "; ".join(errors))


def _read_index(url: str, config: DownloadConfig, deadline: float) -> bytes:
    limit = config.max_index_bytes
    too_big = f"{url}: bad shard index: more than {limit} bytes, the most an index may have"
    with _request(url, 0, _read_timeout(config, deadline)) as resp:
        if resp.length is not None and resp.length > limit:
            raise BadIndexError(f"{too_big} (Content-Length {resp.length})")
        data = bytearray()
        while chunk := resp.read1(config.chunk_size):
            data += chunk
            if len(data) > limit:
                raise BadIndexError(too_big)
            if time.monotonic() > deadline:
                raise _DeadlinePassed
        if resp.length:  # an early EOF
            raise http.client.IncompleteRead(bytes(data), resp.length)
    return bytes(data)


def download(
    source: str,
    dest: str | os.PathLike,
    mirrors: tuple[str, ...] = (),
    cache_dir: str | os.PathLike | None = None,
    config: DownloadConfig = DownloadConfig(),
    executor: Executor | None = None,
    progress: bool = True,
) -> DownloadReport:
    """Make ``dest`` a verified copy of the published dataset ``source``; ``cache_dir`` None = no cache."""
    dest = Path(dest)
    index_urls = resolve_source(source, tuple(mirrors))
    cache = BlobCache(cache_dir) if cache_dir is not None else None
    try:
        data, index_url = fetch_index(index_urls, config)
        offline = False
    except DownloadError:
        cached = [(cache.get_index(u), u) for u in index_urls] if cache is not None else []
        data, index_url = next(((d, u) for d, u in cached if d is not None), (None, None))
        if data is None:
            raise
        offline = True
    index = ShardIndex.from_json(data, index_url)
    if cache is not None and not offline:
        cache.put_index(index_url, data)
    # The mirror that served the index first, then the others (each base = its index's folder).
    bases = [u.rsplit("/", 1)[0] + "/" for u in [index_url] + [u for u in index_urls if u != index_url]]

    with output_lock(dest, "download"):
        return _fill(dest, index, data, DownloadReport(index_url, offline=offline), bases, cache, config,
                     executor, progress)


def _fill(dest: Path, index: ShardIndex, data: bytes, report: DownloadReport, bases: list[str],
          cache: BlobCache | None, config: DownloadConfig, executor: Executor | None, progress: bool,
          ) -> DownloadReport:
    """Make the locked ``dest`` hold every file of ``index`` (whose bytes are ``data``)."""
    state = HashState(dest)
    _drop_unlisted(dest, index, state)
    if not (dest / INDEX_NAME).is_file() or (dest / INDEX_NAME).read_bytes() != data:
        write_bytes(dest / INDEX_NAME, data)
    todo = []
    for f in index.files:
        if state.known(f.path, size=f.size) == f.sha256:
            report.present.append(f.path)
        elif cache is not None and cache.fill(f, dest / f.path):
            state.record(f.path, f.sha256)
            report.from_cache.append(f.path)
        else:
            todo.append(f)

    bar = tqdm(total=sum(f.size for f in todo), unit="B", unit_scale=True, unit_divisor=1024,
               desc="download", disable=not progress)
    obtain = partial(_adopt_or_fetch, bases=bases, dest=dest, state=state, cache=cache, config=config,
                     on_bytes=bar.update)
    results = map(obtain, todo) if executor is None else executor.map(obtain, todo)
    failures = []
    for f, (adopted, received, error) in zip(todo, results):
        report.network_bytes += received
        if error is not None:
            failures.append(error)
            continue
        (report.adopted if adopted else report.fetched).append(f.path)
    bar.close()
    state.save()
    if cache is not None:
        cache.save()
    if failures:
        kind = ChecksumMismatchError if all(isinstance(e, ChecksumMismatchError) for e in failures) else DownloadError
        raise kind(f"{len(failures)} of {len(index.files)} files failed: " + " | ".join(map(str, failures)))
    return report


def _adopt_or_fetch(f: IndexedFile, dest: Path, state: HashState, cache: BlobCache | None,
                    on_bytes: Callable[[int], None], **fetch_args) -> tuple[bool, int, DownloadError | None]:
    """(adopted, bytes received, error) for ``f``: a regular file already at its final name with the
    index's size (a killed run renamed it, but did not save the state) is hashed and kept when it
    matches; else ``f`` is fetched. Errors are returned, not raised, so one bad file does not stop
    the others."""
    final = dest / f.path
    try:
        st = os.lstat(final)
        complete = stat.S_ISREG(st.st_mode) and st.st_size == f.size
    except FileNotFoundError:
        complete = False
    received = 0
    adopted = complete and state.sha256(f.path, rehash=True) == f.sha256
    if adopted:
        on_bytes(f.size)
    else:
        try:
            received = fetch_file(f, dest=dest, on_bytes=on_bytes, **fetch_args)
        except DownloadError as e:
            return False, 0, e
        state.record(f.path, f.sha256)
    if cache is not None and not cache.add(final, f.sha256):
        state.forget(f.path)
        return adopted, received, DownloadError(
            f"{final}: changed after its sha256 was checked (another program writing into {dest}?)")
    return adopted, received, None


def _drop_unlisted(dest: Path, index: ShardIndex, state: HashState) -> None:
    """Remove files (and parts) that an older index in ``dest`` listed and the new one does not."""
    try:
        old = ShardIndex.from_json((dest / INDEX_NAME).read_bytes(), str(dest / INDEX_NAME))
    except (OSError, ShardsError):
        return
    listed = {f.path for f in index.files}
    for f in old.files:
        if f.path not in listed:
            (dest / f.path).unlink(missing_ok=True)
            _remove_parts(dest / f.path)
            state.forget(f.path)
