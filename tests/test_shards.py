"""Shards: publish, download (real HTTP server on 127.0.0.1), verify, load."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from click.testing import CliRunner
from PIL import Image

from cmav_data.cli import main
from cmav_data.manifest import EMBEDDED_SCHEMA, PAIR_SCHEMA, read_metadata, table_metadata, write_table
from cmav_data.shards import (
    BadDatasetError,
    BadIndexError,
    BlobCache,
    HashState,
    ChecksumMismatchError,
    DownloadConfig,
    DownloadError,
    UnknownDatasetError,
    download,
    load_pairs,
    parse_size,
    publish,
    read_index,
    resolve_source,
    verify,
)

CLASSES = ("cello", "flute", "violin")
PER_SPLIT = {"train": 4, "validation": 2}
SHARD_SIZE = 40_000  # a few rows of ~13 kB media per shard
FAST = DownloadConfig(retries=2, backoff=0.01, timeout=5)


# ---------------------------------------------------------------- a tiny built dataset


def make_built_dataset(root: Path, seed: int = 0) -> Path:
    """Real JPEGs and WAVs in the Sub-URMP layout, and their manifest, written in shuffled order."""
    rng = np.random.default_rng(seed)
    rows = []
    for ci, cls in enumerate(CLASSES):
        for si, (split, n) in enumerate(PER_SPLIT.items()):
            recording = f"{cls}{ci + 1 + 10 * si:02d}"
            for k in range(n):
                pair_id = f"{recording}_{500 + 100 * k}"
                img = f"img/{split}/{cls}/{pair_id}.jpg"
                aud = f"chunk/{split}/{cls}/{pair_id}.wav"
                for rel in (img, aud):
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(root / img, quality=90)
                sf.write(root / aud, rng.uniform(-0.5, 0.5, (2205, 2)), 44100, subtype="PCM_16")
                rows.append({
                    "id": pair_id, "split": split, "class_name": cls, "class_index": ci,
                    "recording": recording, "piece": "01_Demo", "part": 1,
                    "t_start": k / 10, "t_end": k / 10 + 0.5, "frame_index": 3 * k,
                    "image_path": img, "image_sha256": _sha(root / img),
                    "audio_path": aud, "audio_sha256": _sha(root / aud),
                    "note_coverage": 1.0, "mean_f0": 440.0, "silent": False,
                    "source_audio_sha256": "a" * 64, "source_video_sha256": "b" * 64,
                })
    order = rng.permutation(len(rows))
    table = pa.Table.from_pylist([rows[i] for i in order], schema=PAIR_SCHEMA)
    write_table(table, root / "manifest.parquet", table_metadata("suburmp", {"window_s": 0.5}))
    (root / "build.json").write_text(json.dumps({"versions": {"cmav": "test"}, "source": str(root), "seconds": 1.5}))
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return make_built_dataset(tmp_path_factory.mktemp("built"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory, built) -> Path:
    """A mirror's folder: HUB/suburmp-demo holds a published copy (the registry's index path)."""
    hub = tmp_path_factory.mktemp("hub")
    publish(built, hub / "suburmp-demo", SHARD_SIZE, progress=False)
    return hub


# ---------------------------------------------------------------- a real HTTP server


class ShardServer(ThreadingHTTPServer):
    """Serves ``root`` on 127.0.0.1; counts bytes served per path; can misbehave on purpose."""

    daemon_threads = True

    def __init__(self, root: Path, ranges=True, drop_after=None, corrupt=(), throttle=0.0, status=None,
                 trickle=(), gated=()):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.ranges, self.drop_after = root, ranges, drop_after
        self.corrupt, self.throttle, self.status = set(corrupt), throttle, status
        self.trickle = set(trickle)  # paths sent one byte every 0.1 s
        self.gated, self.gate = set(gated), threading.Event()  # paths answered once the gate is set
        self.served: Counter[str] = Counter()
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is no error
            super().handle_error(request, client_address)

    def __enter__(self):
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv: ShardServer = self.server
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((rel, rng))
        path = srv.root / rel
        if rel in srv.gated:
            srv.gate.wait(60)
        if srv.status or not path.is_file():
            self.send_error(srv.status or 404)
            return
        data = bytearray(path.read_bytes())
        if rel in srv.corrupt:
            data[len(data) // 2] ^= 0xFF
        start = 0
        if rng and srv.ranges:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = bytes(data[start:])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if rel in srv.trickle:
            with contextlib.suppress(OSError):  # until the client hangs up
                for i in range(len(body)):
                    self._send(rel, body[i:i + 1])
                    time.sleep(0.1)
            return
        for i in range(0, len(body), 4096):
            chunk = body[i:i + 4096]
            if srv.drop_after is not None and i + len(chunk) > srv.drop_after:
                self._send(rel, chunk[:max(srv.drop_after - i, 0)])
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self._send(rel, chunk)
            time.sleep(srv.throttle)

    def _send(self, rel: str, chunk: bytes) -> None:
        with self.server.lock:  # counted before the client can see the bytes, so never late
            self.server.served[rel] += len(chunk)
        self.wfile.write(chunk)
        self.wfile.flush()


def _shard_bytes(server: ShardServer) -> int:
    return sum(n for rel, n in server.served.items() if rel.endswith(".parquet"))


# ---------------------------------------------------------------- publish


def test_publish_layout_budget_order_and_embedded_media(built, hub):
    out = hub / "suburmp-demo"
    index = read_index(out)
    shards = index.shards
    names = [Path(f.path).name for f in shards]
    for split, n_rows in PER_SPLIT.items():
        mine = [n for n in names if n.startswith(split + "-")]
        assert mine == [f"{split}-{i:05d}-of-{len(mine):05d}.parquet" for i in range(len(mine))]
        assert sum(f.rows for f in shards if f.split == split) == n_rows * len(CLASSES)
    assert len(shards) > len(PER_SPLIT), "the budget should cut splits into several shards"

    manifest = pq.read_table(built / "manifest.parquet").to_pandas()
    for f in index.files:
        data = (out / f.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256)
    for f in shards:
        t = pq.read_table(out / f.path)
        assert t.schema.remove_metadata() == EMBEDDED_SCHEMA
        assert read_metadata(out / f.path)["kind"] == "suburmp"
        ids = t.column("id").to_pylist()
        assert ids == sorted(ids) and set(t.column("split").to_pylist()) == {f.split}
        media = sum(len(b) for c in ("image_bytes", "audio_bytes") for b in t.column(c).to_pylist())
        assert media <= SHARD_SIZE or t.num_rows == 1
        for r in t.select(["image_path", "image_bytes", "audio_path", "audio_bytes"]).to_pylist():
            assert r["image_bytes"] == (built / r["image_path"]).read_bytes()
            assert r["audio_bytes"] == (built / r["audio_path"]).read_bytes()
    # Shards concatenated in index order are the manifest sorted by (split, id).
    all_ids = [i for f in shards for i in pq.read_table(out / f.path, columns=["id"]).column("id").to_pylist()]
    assert all_ids == manifest.sort_values(["split", "id"])["id"].tolist()
    # pandas reads the data folder as it is.
    assert len(pd.read_parquet(out / "data")) == len(manifest)
    assert index.options == {"window_s": 0.5} and index.build["versions"] == {"cmav": "test"}
    assert str(built) not in (out / "index.json").read_text()  # no local paths published


def test_publish_card_counts_and_citation(hub):
    card = (hub / "suburmp-demo" / "README.md").read_text()
    assert card.startswith("---\nconfigs:")
    for split in PER_SPLIT:
        assert f"path: data/{split}-*.parquet" in card
    for cls in CLASSES:
        assert f"| {cls} | {PER_SPLIT['train']} | {PER_SPLIT['validation']} | {sum(PER_SPLIT.values())} |" in card
    assert "Deep Cross-Modal Audio-Visual Generation" in card and "terms" in card


def test_publish_is_deterministic_whatever_the_workers(built, tmp_path):
    publish(built, tmp_path / "serial", SHARD_SIZE, progress=False)
    with ThreadPoolExecutor(2) as ex:
        publish(built, tmp_path / "threads", SHARD_SIZE, executor=ex, progress=False)
    serial = _tree(tmp_path / "serial")
    assert serial == _tree(tmp_path / "threads") and any(k.endswith(".parquet") for k in serial)


def test_republish_with_other_budget_leaves_no_stale_shards(built, tmp_path):
    publish(built, tmp_path, SHARD_SIZE, progress=False)
    publish(built, tmp_path, 10**9, progress=False)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]


def test_publish_bad_input_is_one_clear_line(tmp_path):
    root = make_built_dataset(tmp_path / "ds")
    victim = next((root / "chunk").rglob("*.wav"))
    victim.write_bytes(victim.read_bytes()[:-2] + b"\0\1")
    with pytest.raises(BadDatasetError, match=re.escape(str(victim)) + ".*sha256"):
        publish(root, tmp_path / "out", SHARD_SIZE, progress=False)
    victim.unlink()
    result = CliRunner().invoke(main, ["publish", str(root), str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{victim}: media file listed in the manifest is missing" in result.output
    assert not (tmp_path / "out" / "index.json").exists()


def test_parse_size():
    assert parse_size("256MB") == 256 * 10**6 and parse_size("1.5GiB") == 3 * 2**29
    assert parse_size("4096") == 4096
    for bad in ("", "12XB", "-3MB", "0"):
        with pytest.raises(ValueError):
            parse_size(bad)


# ---------------------------------------------------------------- registry


def test_registry_names_need_a_mirror_and_unknown_names_list_known_ones():
    with pytest.raises(UnknownDatasetError, match="known: .*suburmp-demo"):
        resolve_source("no-such-set")
    with pytest.raises(DownloadError, match="--mirror"):
        resolve_source("suburmp-demo")
    assert resolve_source("suburmp-demo", ("http://h:1/base",)) == ["http://h:1/base/suburmp-demo/index.json"]
    result = CliRunner().invoke(main, ["download", "no-such-set", "x"])
    assert result.exit_code == 1 and "unknown dataset 'no-such-set'" in result.output


# ---------------------------------------------------------------- download


def test_full_download_by_name_then_instant_and_cache_fills_another_dest(built, hub, tmp_path):
    cache = tmp_path / "cache"
    with ShardServer(hub) as server:
        args = ["download", "suburmp-demo", str(tmp_path / "a"), "--mirror", server.url,
                "--cache-dir", str(cache), "-q"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        published = read_index(hub / "suburmp-demo")
        assert _tree(tmp_path / "a") == _tree(hub / "suburmp-demo")
        assert _shard_bytes(server) == sum(f.size for f in published.shards)

        server.served.clear()
        again = download("suburmp-demo", tmp_path / "a", (server.url,), cache, FAST, progress=False)
        assert again.fetched == [] and len(again.present) == len(published.files)
        other = download("suburmp-demo", tmp_path / "b", (server.url,), cache, FAST, progress=False)
        assert len(other.from_cache) == len(published.files) and other.network_bytes == 0
        index_size = (hub / "suburmp-demo/index.json").stat().st_size
        assert dict(server.served) == {"suburmp-demo/index.json": 2 * index_size}  # the index only
    # The server is gone: a third DEST is still filled, index included, from the cache.
    offline = download("suburmp-demo", tmp_path / "c", (server.url,), cache, FAST, progress=False)
    assert offline.offline and len(offline.from_cache) == len(published.files)
    assert _tree(tmp_path / "c") == _tree(hub / "suburmp-demo")
    assert os.stat(tmp_path / "c" / published.shards[0].path).st_ino == os.stat(
        tmp_path / "a" / published.shards[0].path).st_ino  # hard links, no copies
    assert verify(tmp_path / "b", deep=True, progress=False).ok
    pd.testing.assert_frame_equal(load_pairs(tmp_path / "b", media=True), load_pairs(built, media=True))


@pytest.mark.slow  # two CLI start-ups
def test_killed_download_resumes_with_only_the_missing_bytes(hub, tmp_path):
    dest = tmp_path / "dest"
    cli = Path(sys.executable).parent / "cmav-data"
    cmd = [str(cli), "download", "suburmp-demo", str(dest), "--no-cache", "-j", "1", "-q"]
    first = read_index(hub / "suburmp-demo").shards[0]
    with ShardServer(hub, throttle=0.02) as slow:  # ~200 kB/s: a shard takes a few tenths of a second
        proc = subprocess.Popen(cmd + ["--mirror", slow.url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        part = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            parts = list(dest.rglob("*.part"))
            if parts and 0 < parts[0].stat().st_size < first.size // 2:
                part = parts[0]
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert part is not None, proc.stderr.read().decode()
    have = part.stat().st_size
    assert part.name.startswith(Path(first.path).name) and 0 < have < first.size
    with ShardServer(hub) as server:
        subprocess.run(cmd + ["--mirror", server.url], check=True, timeout=60)
        assert server.served[f"suburmp-demo/{first.path}"] == first.size - have
        assert (f"suburmp-demo/{first.path}", f"bytes={have}-") in server.requests
    assert verify(dest, deep=True, progress=False).ok and not list(dest.rglob("*.part"))


def test_dropped_connections_are_resumed_without_refetching(hub, tmp_path):
    index = read_index(hub / "suburmp-demo")
    with ShardServer(hub, drop_after=9000) as server:
        download(server.url + "suburmp-demo/index.json", tmp_path, (), None, FAST, progress=False)
        for f in index.files:
            assert server.served[f"suburmp-demo/{f.path}"] == f.size  # no byte served twice
        biggest = max(index.files, key=lambda f: f.size)
        assert sum(1 for rel, _ in server.requests if rel.endswith(biggest.path)) > 1
    assert verify(tmp_path, deep=True, progress=False).ok


def test_server_without_range_support_restarts_a_part(hub, tmp_path):
    index = read_index(hub / "suburmp-demo")
    shard = index.shards[0]
    part = tmp_path / (shard.path + f".{shard.sha256[:16]}.part")
    part.parent.mkdir(parents=True)
    part.write_bytes((hub / "suburmp-demo" / shard.path).read_bytes()[:5000])
    with ShardServer(hub, ranges=False) as server:
        download(server.url + "suburmp-demo/index.json", tmp_path, (), None, FAST, progress=False)
        assert (f"suburmp-demo/{shard.path}", "bytes=5000-") in server.requests
        assert server.served[f"suburmp-demo/{shard.path}"] == shard.size
    assert verify(tmp_path, deep=True, progress=False).ok


def test_corrupt_shard_fails_clearly_and_keeps_good_ones(hub, tmp_path):
    index = read_index(hub / "suburmp-demo")
    bad = index.shards[1]
    with ShardServer(hub, corrupt={f"suburmp-demo/{bad.path}"}) as server:
        with pytest.raises(ChecksumMismatchError, match="checksum mismatch: the mirror changed or the file is corrupt"):
            download(server.url + "suburmp-demo/index.json", tmp_path, (), None, FAST, progress=False)
    assert not (tmp_path / bad.path).exists() and not list(tmp_path.rglob("*.part"))
    report = verify(tmp_path, progress=False)
    assert report.problems == [f"{bad.path}: missing"]
    # Again with a good second mirror: it serves the bad shard, and nothing else is fetched again.
    with ShardServer(hub, corrupt={f"suburmp-demo/{bad.path}"}) as server, ShardServer(hub) as good:
        download("suburmp-demo", tmp_path, (server.url, good.url), None, FAST, progress=False)
        assert _shard_bytes(server) == bad.size and _shard_bytes(good) == bad.size
    assert verify(tmp_path, deep=True, progress=False).ok


def test_second_mirror_takes_over_and_resumes(hub, tmp_path):
    index = read_index(hub / "suburmp-demo")
    with ShardServer(hub, ranges=False, drop_after=3000) as flaky, ShardServer(hub) as good:
        download(flaky.url + "suburmp-demo/index.json", tmp_path, (good.url + "suburmp-demo/",), None,
                 FAST, progress=False)
        for f in index.files:
            if f.size > 3000:  # the flaky mirror left 3000 bytes in the part; the good one sent the rest
                assert good.served[f"suburmp-demo/{f.path}"] == f.size - 3000
    assert verify(tmp_path, deep=True, progress=False).ok


def test_dead_mirror_is_skipped(hub, tmp_path):
    with ShardServer(hub, status=503) as dead, ShardServer(hub) as good:
        download("suburmp-demo", tmp_path, (dead.url, good.url), None, FAST, progress=False)
    assert verify(tmp_path, progress=False).ok


def test_changed_index_fetches_only_changed_shards_and_drops_stale_parts(tmp_path):
    built = make_built_dataset(tmp_path / "built")
    hub = tmp_path / "hub"
    publish(built, hub / "ds", SHARD_SIZE, progress=False)
    dest = tmp_path / "dest"
    with ShardServer(hub) as server:
        download(server.url + "ds/index.json", dest, (), None, FAST, progress=False)
        old = read_index(dest)
        # New version: one validation recording re-rendered; a killed run had left a part of the old shard.
        victim = next((built / "chunk" / "validation" / "flute").glob("*.wav"))
        sf.write(victim, np.zeros((2205, 2)), 44100, subtype="PCM_16")
        table = pq.read_table(built / "manifest.parquet")
        shas = [_sha(victim) if p == str(victim.relative_to(built)) else s for p, s in
                zip(table.column("audio_path").to_pylist(), table.column("audio_sha256").to_pylist())]
        table = table.set_column(table.schema.get_field_index("audio_sha256"), "audio_sha256", pa.array(shas))
        write_table(table, built / "manifest.parquet", table.schema.metadata)
        publish(built, hub / "ds", SHARD_SIZE, progress=False)
        new = read_index(hub / "ds")
        changed = [f for f in new.files if f not in old.files]
        assert changed and len(changed) < len(new.files)
        stale_part = dest / (changed[0].path + f".{[f for f in old.files if f.path == changed[0].path][0].sha256[:16]}.part")
        stale_part.write_bytes(b"old bytes")
        server.served.clear()
        download(server.url + "ds/index.json", dest, (), None, FAST, progress=False)
        assert {rel for rel in server.served if rel != "ds/index.json"} == {f"ds/{f.path}" for f in changed}
    assert not stale_part.exists()
    assert verify(dest, deep=True, progress=False).ok
    pd.testing.assert_frame_equal(load_pairs(dest, media=True), load_pairs(built, media=True))


# ---------------------------------------------------------------- verify and load


def test_verify_published_trusts_state_unless_deep(hub, tmp_path):
    out = tmp_path / "pub"
    shutil.copytree(hub / "suburmp-demo", out)
    shard = read_index(out).shards[0]
    path = out / shard.path
    assert verify(out, progress=False).ok  # hashes and records (the copy has new mtimes)
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # bit rot: same size, mtime put back
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert verify(out, progress=False).ok
    deep = CliRunner().invoke(main, ["verify", str(out), "--deep", "-q"])
    assert deep.exit_code == 1 and f"{shard.path}: sha256" in deep.output
    path.write_bytes(bytes(data[:-10]))
    (out / "README.md").unlink()
    problems = verify(out, progress=False).problems
    assert f"{shard.path}: {shard.size - 10} bytes, the index says {shard.size}" in problems
    assert "README.md: missing" in problems


def test_verify_built_dataset(tmp_path):
    root = make_built_dataset(tmp_path)
    assert verify(root, deep=True, progress=False).ok
    images = sorted((root / "img").rglob("*.jpg"))
    images[0].unlink()
    data = bytearray(images[1].read_bytes())
    data[-3] ^= 0xFF
    images[1].write_bytes(bytes(data))
    assert verify(root, progress=False).problems == [f"{images[0].relative_to(root)}: missing"]
    deep = verify(root, deep=True, progress=False).problems
    assert len(deep) == 2 and deep[1].startswith(f"{images[1].relative_to(root)}: sha256")
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "img"), "-q"])
    assert result.exit_code == 1 and "neither index.json" in result.output


def test_verify_deep_covers_the_feature_folders(tmp_path):
    from cmav_data.features.specs import make_spec
    from cmav_data.features.store import extract_features

    root = make_built_dataset(tmp_path / "built")
    out = extract_features(root, make_spec("mfcc"), "fast", shard_size=6, progress=False).out_dir
    assert verify(root, deep=True, progress=False).ok
    shard = out / "part-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only a hash sees it
    shard.write_bytes(bytes(data))
    assert verify(root, progress=False).ok
    rel = shard.relative_to(root)
    result = CliRunner().invoke(main, ["verify", str(root), "--deep", "-q"])
    assert result.exit_code == 1 and f"{rel}: sha256 " in result.output and "features.json says" in result.output
    (out / "part-00002.parquet").write_bytes(b"short")
    assert verify(root, progress=False).problems[0].startswith(f"{out.relative_to(root)}/part-00002.parquet: 5 bytes")
    (out / "features.json").write_text('{"cache_key": [')
    result = CliRunner().invoke(main, ["verify", str(root), "--deep", "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{out.relative_to(root)}/features.json: not a feature index" in result.output


def test_load_pairs_same_for_built_and_published(built, hub):
    pub = hub / "suburmp-demo"
    plain = load_pairs(pub)
    assert list(plain.columns) == PAIR_SCHEMA.names
    pd.testing.assert_frame_equal(plain, load_pairs(built))
    media = load_pairs(pub, media=True, split="validation")
    assert list(media.columns) == EMBEDDED_SCHEMA.names
    assert set(media["split"]) == {"validation"} and len(media) == PER_SPLIT["validation"] * len(CLASSES)
    pd.testing.assert_frame_equal(media, load_pairs(built, media=True, split="validation"))


# ---------------------------------------------------------------- hostile indexes


def _index_bytes(files: list, **fields) -> bytes:
    payload = {"format": "cmav-shards", "format_version": 1, "kind": "suburmp", "schema_version": "1",
               "options": {}, "build": {}, "files": files, **fields}
    return json.dumps(payload).encode()


def _entry(path: str, size: int = 3, sha256: str = hashlib.sha256(b"abc").hexdigest()) -> dict:
    return {"path": path, "size": size, "sha256": sha256}


def _nested(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


HOSTILE_INDEXES = {
    "negative size": (_index_bytes([_entry("README.md", size=-5)]), "size must be an integer >= 0, not -5"),
    "size as text": (_index_bytes([_entry("README.md", size="3")]), "'size' must be a JSON integer, not a string"),
    "size as bool": (_index_bytes([_entry("README.md", size=True)]), "size must be an integer >= 0, not true"),
    "short sha256": (_index_bytes([_entry("README.md", sha256="ab" * 31)]), "is not 64 lowercase hex digits"),
    "state file": (_index_bytes([_entry(".cmav-state.json")]), "'.cmav-state.json' is the name of one of cmav's own files"),
    "lock file": (_index_bytes([_entry("data/.cmav-lock")]), "'.cmav-lock' is the name of one of cmav's own files"),
    "part file": (_index_bytes([_entry("data/a.parquet.0123456789abcdef.part")]), "is the name of one of cmav's own files"),
    "the index": (_index_bytes([_entry("index.json")]), "'index.json' is the name of one of cmav's own files"),
    "array": (b"[]", "a JSON object expected, not an array"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "JSON nested deeper than 32 levels"),
    "deep options": (_index_bytes([], options={"x": _nested(40)}), "JSON nested deeper than 32 levels"),
    "garbage": (b"\x00{garbage", "not valid JSON"),
    "not utf-8": (b"\xff\xfe{}", "not valid JSON"),
    "files not an array": (_index_bytes({"README.md": 3}), "'files' must be a JSON array, not an object"),
    "entry not an object": (_index_bytes(["README.md"]), "files[0]: a JSON object expected, not a string"),
    "file and folder": (_index_bytes([_entry("data"), _entry("data/x.bin")]),
                        '"data" is listed both as a file and as the folder of "data/x.bin"'),
    "300-character name": (_index_bytes([_entry("data/" + "n" * 300)]), "a name longer than 255 bytes"),
    "NUL byte": (_index_bytes([_entry("data/a\0b.parquet")]), "a NUL, control character or backslash"),
    "lone surrogate": (_index_bytes([_entry("data/\ud800.parquet")]), "not valid Unicode"),
    "traversal": (_index_bytes([_entry("data/../../x")]), "'..' leaves the dataset folder"),
    "absolute": (_index_bytes([_entry("/tmp/x")]), "an absolute path"),
    "not canonical": (_index_bytes([_entry("data//x")]), "not a canonical relative path"),
    "listed twice": (_index_bytes([_entry("README.md"), _entry("README.md")]), '"README.md" is listed twice'),
    "same file when case-folded": (_index_bytes([_entry("README.md"), _entry("readme.md")]),
                                   '"readme.md" is the same file as "README.md" on some file systems'),
    "shard without rows": (_index_bytes([{**_entry("data/a.parquet"), "split": "train"}]), "'rows' is missing"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_INDEXES))
def test_hostile_index_is_one_clear_line_and_touches_nothing(tmp_path, case):
    data, cause = HOSTILE_INDEXES[case]
    hub = tmp_path / "hub"
    (hub / "ds").mkdir(parents=True)
    (hub / "ds" / "index.json").write_bytes(data)
    for name in (".cmav-state.json", "README.md", "data/x.bin", "index.json"):  # what a listing would name
        if not (hub / "ds" / name).exists():
            (hub / "ds" / name).parent.mkdir(parents=True, exist_ok=True)
            (hub / "ds" / name).write_bytes(b"abc")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / ".cmav-state.json").write_bytes(b'{"version": 1, "files": {}}')
    before = {p: p.read_bytes() for p in dest.rglob("*")}
    with ShardServer(hub) as server:
        url = server.url + "ds/index.json"
        result = CliRunner().invoke(main, ["download", url, str(dest), "--no-cache", "-q"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and result.output.startswith(f"Error: {url}: bad shard index: ")
    assert cause in result.output
    assert {p: p.read_bytes() for p in dest.rglob("*")} == before  # nothing written, nothing removed
    checked = CliRunner().invoke(main, ["verify", str(hub / "ds"), "-q"])  # the same check on a local copy
    assert isinstance(checked.exception, SystemExit) and checked.exit_code == 1
    assert checked.output == f"Error: {hub / 'ds' / 'index.json'}: bad shard index: {result.output.split(': bad shard index: ', 1)[1]}"


def test_oversized_index_is_refused_at_once(hub, tmp_path):
    size = (hub / "suburmp-demo" / "index.json").stat().st_size
    config = DownloadConfig(retries=3, backoff=0.01, timeout=5, max_index_bytes=size - 1)
    with ShardServer(hub) as server:
        with pytest.raises(BadIndexError, match=f"more than {size - 1} bytes, the most an index may have "
                                                f"\\(Content-Length {size}\\)"):
            download(server.url + "suburmp-demo/index.json", tmp_path / "dest", (), None, config, progress=False)
        assert server.requests == [("suburmp-demo/index.json", None)]  # asked once, not once per retry
    assert not (tmp_path / "dest").exists()


# ---------------------------------------------------------------- deadlines, the cache, reruns, two writers


def test_trickling_server_fails_the_file_within_its_deadline(hub, tmp_path):
    index = read_index(hub / "suburmp-demo")
    slow = index.shards[0]
    dest = tmp_path / "dest"
    with ShardServer(hub, trickle={f"suburmp-demo/{slow.path}"}) as server:  # one byte every 0.1 s
        start = time.monotonic()
        result = CliRunner().invoke(main, ["download", server.url + "suburmp-demo/index.json", str(dest),
                                           "--no-cache", "--deadline", "1.5", "--timeout", "5", "-q"])
        elapsed = time.monotonic() - start
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert result.output.count("\n") == 1
    assert (f"1 of {len(index.files)} files failed: {dest / slow.path}: not complete within its 1.5 s deadline"
            in result.output)
    assert elapsed < 15  # not a speed goal: without a deadline this file takes over an hour
    part = dest / f"{slow.path}.{slow.sha256[:16]}.part"
    assert 0 < part.stat().st_size < slow.size  # kept: the next run resumes it
    report = verify(dest, progress=False)
    assert report.problems == [f"{slow.path}: missing"]


def test_trickling_index_fails_within_its_deadline(hub, tmp_path):
    config = DownloadConfig(retries=2, backoff=0.01, timeout=5, deadline=1.0)
    with ShardServer(hub, trickle={"suburmp-demo/index.json"}) as server:
        url = server.url + "suburmp-demo/index.json"
        with pytest.raises(DownloadError, match=re.escape(f"{url}: not complete within its 1 s deadline")):
            download(url, tmp_path / "dest", (), None, config, progress=False)
        assert len(server.requests) == 1  # a deadline is not retried


def test_cache_adopts_only_checked_blobs_and_replaces_a_bad_one(hub, tmp_path):
    cache_dir = tmp_path / "cache"
    shard = read_index(hub / "suburmp-demo").shards[0]
    good = (hub / "suburmp-demo" / shard.path).read_bytes()
    wrong = tmp_path / "wrong.parquet"
    wrong.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # the size is right, the bytes are not
    cache = BlobCache(cache_dir)
    assert cache.add(wrong, shard.sha256) is False
    blob = cache_dir / "sha256" / shard.sha256[:2] / shard.sha256
    assert not blob.exists() and not list(blob.parent.iterdir())  # nothing adopted, no temporary left
    # A bad blob already in the cache (here: cut short) is replaced by the next download that fetches it.
    blob.write_bytes(good[:1000])
    with ShardServer(hub) as server:
        download("suburmp-demo", tmp_path / "a", (server.url,), cache_dir, FAST, progress=False)
        assert blob.read_bytes() == good
        server.served.clear()
        other = download("suburmp-demo", tmp_path / "b", (server.url,), cache_dir, FAST, progress=False)
        assert other.fetched == [] and _shard_bytes(server) == 0
    assert verify(tmp_path / "b", deep=True, progress=False).ok


def test_rerun_hashes_files_at_their_final_names_instead_of_fetching(hub, tmp_path):
    index = read_index(hub / "suburmp-demo")
    dest = tmp_path / "dest"
    for f in index.files:  # complete, as a killed run leaves them: renamed, not in the state file
        (dest / f.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(hub / "suburmp-demo" / f.path, dest / f.path)
    bad = index.shards[1]
    data = bytearray((dest / bad.path).read_bytes())
    data[100] ^= 0xFF  # right size, wrong bytes: fetched again
    (dest / bad.path).write_bytes(bytes(data))
    with ShardServer(hub) as server:
        report = download(server.url + "suburmp-demo/index.json", dest, (), None, FAST, progress=False)
        assert {rel for rel, _ in server.requests} == {"suburmp-demo/index.json", f"suburmp-demo/{bad.path}"}
    assert report.fetched == [bad.path] and len(report.adopted) == len(index.files) - 1
    assert verify(dest, deep=True, progress=False).ok


def _wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


@pytest.mark.slow  # two CLI start-ups
def test_killed_download_rerun_keeps_the_complete_shards(hub, tmp_path):
    dest = tmp_path / "dest"
    cli = Path(sys.executable).parent / "cmav-data"
    cmd = [str(cli), "download", "suburmp-demo", str(dest), "--no-cache", "-j", "1", "-q"]
    shards = read_index(hub / "suburmp-demo").shards
    with ShardServer(hub, throttle=0.02) as slow:
        proc = subprocess.Popen(cmd + ["--mirror", slow.url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Killed once two shards are complete at their final names and a third is under way.
        mid = _wait_for(lambda: (dest / shards[1].path).is_file() and list(dest.rglob("*.part")))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert mid, proc.stderr.read().decode()
    complete = [f for f in shards if (dest / f.path).is_file()]
    assert len(complete) >= 2 and not (dest / ".cmav-state.json").exists()  # nothing recorded them
    with ShardServer(hub) as server:
        out = subprocess.run(cmd + ["--mirror", server.url], check=True, timeout=60, capture_output=True, text=True)
        asked = {rel for rel, _ in server.requests}
    assert not asked & {f"suburmp-demo/{f.path}" for f in complete}  # hashed locally, not fetched again
    assert f"{len(complete)} found complete and hashed" in out.stdout
    assert verify(dest, deep=True, progress=False).ok and not list(dest.rglob("*.part"))


@pytest.mark.slow  # two CLI start-ups
def test_second_download_into_one_dest_is_refused_while_the_first_runs(hub, tmp_path):
    dest = tmp_path / "dest"
    cli = Path(sys.executable).parent / "cmav-data"
    held = read_index(hub / "suburmp-demo").shards[-1]
    with ShardServer(hub, gated={f"suburmp-demo/{held.path}"}) as server:  # the first waits there
        cmd = [str(cli), "download", "suburmp-demo", str(dest), "--mirror", server.url, "--no-cache", "-j", "1", "-q"]
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert _wait_for(lambda: (f"suburmp-demo/{held.path}", None) in server.requests), first.stderr.read()
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        still_running = first.poll() is None
        server.gate.set()
        out, err = first.communicate(timeout=60)
    assert still_running, "the first download ended before the second one was started: nothing was tested"
    assert second.returncode == 1 and second.stdout == ""
    assert second.stderr == (f"Error: {dest} is being written by another cmav process (pid {first.pid}, download); "
                             "wait for it to finish or stop it, then run this again\n")
    assert first.returncode == 0, err
    assert verify(dest, deep=True, progress=False).ok  # the first one's bytes, and only them
    assert _shard_bytes(server) == sum(f.size for f in read_index(dest).shards)  # each byte served once


@pytest.mark.parametrize("state", [b"[]", b'{"files": []}', b'{"files": {"README.md": 5}}', b"[" * 100_000, b"\xff"])
def test_damaged_state_file_only_costs_a_rehash(hub, tmp_path, state):
    out = tmp_path / "pub"
    shutil.copytree(hub / "suburmp-demo", out)
    (out / ".cmav-state.json").write_bytes(state)
    result = CliRunner().invoke(main, ["verify", str(out), "-q"])
    assert result.exit_code == 0 and result.output == f"{out}: OK (published, {len(read_index(out).files)} files checked)\n"
    assert json.loads((out / ".cmav-state.json").read_bytes())["version"] == 1  # rewritten whole


def test_a_state_vouching_for_a_file_of_the_wrong_size_is_not_believed(hub, tmp_path):
    """As left by the race of two downloads on one .part before DEST was locked: a file longer than
    the index says, in DEST and hard-linked into the cache, recorded as good in both hash states."""
    shard = read_index(hub / "suburmp-demo").shards[0]
    good = (hub / "suburmp-demo" / shard.path).read_bytes()
    dest, cache_dir = tmp_path / "dest", tmp_path / "cache"
    rel = f"sha256/{shard.sha256[:2]}/{shard.sha256}"
    for root, name in ((dest, shard.path), (cache_dir, rel)):
        (root / name).parent.mkdir(parents=True)
        (root / name).write_bytes(good + good[:1000])
        state = HashState(root)
        state.record(name, shard.sha256)
        state.save()
    with ShardServer(hub) as server:
        report = download("suburmp-demo", dest, (server.url,), cache_dir, FAST, progress=False)
    assert shard.path in report.fetched
    assert (dest / shard.path).read_bytes() == good and (cache_dir / rel).read_bytes() == good
    assert verify(dest, deep=True, progress=False).ok


@pytest.mark.slow  # a CLI start-up
def test_file_too_large_is_one_line_and_not_blamed_on_the_mirror(hub, tmp_path):
    import resource

    dest = tmp_path / "dest"
    index = read_index(hub / "suburmp-demo")
    limit = 20_000  # files may not grow past this (ulimit -f): the shards do, the rest does not
    big = [f for f in index.files if f.size > limit]
    cli = Path(sys.executable).parent / "cmav-data"
    with ShardServer(hub) as server:
        proc = subprocess.run(
            [str(cli), "download", "suburmp-demo", str(dest), "--mirror", server.url, "--no-cache", "-j", "1", "-q"],
            capture_output=True, text=True, timeout=120,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
        asked = Counter(rel for rel, _ in server.requests)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"Error: {len(big)} of {len(index.files)} files failed: ")
    for f in big:
        assert f"{dest / f.path}.{f.sha256[:16]}.part: cannot write: File too large" in proc.stderr
        assert asked[f"suburmp-demo/{f.path}"] == 1, (asked, proc.stderr)  # not retried
    assert "mirror" not in proc.stderr and "retries" not in proc.stderr
