"""Shards throughput: publish, download, cached download and verify, against floors measured here.

References measured in the same run on the same files:
- publish  vs reading + sha256-hashing every media file once (the work publish cannot avoid);
- download vs a bare urllib GET of every shard into memory from the same local server;
- second DEST from the cache, and shallow verify (hash state), vs the first download / deep verify.

Run:  .venv/bin/python benchmarks/bench_shards.py [--rows 400] [--kb 120]
It rewrites its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa

from cmav_data.manifest import PAIR_SCHEMA, table_metadata, write_table
from cmav_data.shards import DownloadConfig, download, publish, read_index, verify

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section  # noqa: E402



def make_dataset(root: Path, rows: int, kb: int) -> int:
    """``rows`` pairs of incompressible media (~kb kB each), like JPEG/WAV; returns media bytes."""
    rng = np.random.default_rng(0)
    records, total = [], 0
    for i in range(rows):
        split = "train" if i % 8 else "validation"
        rel = {"image": f"img/{split}/violin/violin01_{500 + 100 * i}.jpg",
               "audio": f"chunk/{split}/violin/violin01_{500 + 100 * i}.wav"}
        sha = {}
        for kind, path in rel.items():
            data = rng.bytes(kb * 1000 // 2)
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
            sha[kind] = hashlib.sha256(data).hexdigest()
            total += len(data)
        records.append({
            "id": f"violin01_{500 + 100 * i}", "split": split, "class_name": "violin", "class_index": 12,
            "recording": "violin01", "piece": "01_Bench", "part": 1, "t_start": i / 10, "t_end": i / 10 + 0.5,
            "frame_index": 3 * i, "image_path": rel["image"], "image_sha256": sha["image"],
            "audio_path": rel["audio"], "audio_sha256": sha["audio"], "note_coverage": 1.0,
            "mean_f0": 440.0, "silent": False, "source_audio_sha256": "0" * 64, "source_video_sha256": "0" * 64,
        })
    write_table(pa.Table.from_pylist(records, schema=PAIR_SCHEMA), root / "manifest.parquet",
                table_metadata("suburmp", {}))
    return total


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def best_of(n: int, fn) -> float:
    return min(timed(fn) for _ in range(n))


def read_and_hash(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.suffix in (".jpg", ".wav"):
            hashlib.sha256(p.read_bytes()).hexdigest()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def bare_get(urls: list[str]) -> None:
    for u in urls:
        with urllib.request.urlopen(u) as r:
            io.BytesIO(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--kb", type=int, default=120, help="media kB per pair")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        media = make_dataset(tmp / "built", args.rows, args.kb)
        pa.array([b"warm-up"], pa.binary())  # Arrow's first array costs ~1 s of one-time set-up
        t_ref_pub = best_of(2, partial(read_and_hash, tmp / "built"))
        t_pub = best_of(2, partial(publish, tmp / "built", tmp / "hub" / "ds", 8 * 10**6, progress=False))
        with ThreadPoolExecutor(2) as ex:
            t_pub2 = best_of(2, partial(publish, tmp / "built", tmp / "hub" / "ds2", 8 * 10**6, executor=ex,
                                        progress=False))
        index = read_index(tmp / "hub" / "ds")
        shard_bytes = sum(f.size for f in index.files)

        handler = partial(QuietHandler, directory=str(tmp / "hub"))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}/ds/"
        t_ref_get = best_of(2, partial(bare_get, [base + f.path for f in index.files]))
        cfg = DownloadConfig()
        t_dl = timed(partial(download, base + "index.json", tmp / "a", (), tmp / "cache", cfg, progress=False))
        with ThreadPoolExecutor(2) as ex:
            t_dl2 = timed(partial(download, base + "index.json", tmp / "a2", (), None, cfg, executor=ex, progress=False))
        t_again = timed(partial(download, base + "index.json", tmp / "a", (), tmp / "cache", cfg, progress=False))
        t_cache = timed(partial(download, base + "index.json", tmp / "b", (), tmp / "cache", cfg, progress=False))
        server.shutdown()
        t_deep = timed(partial(verify, tmp / "a", deep=True, progress=False))
        t_shallow = timed(partial(verify, tmp / "a", progress=False))

    mb = shard_bytes / 1e6
    lines = [
        f"{args.rows} pairs, {media / 1e6:.1f} MB media -> {len(index.shards)} shards, {mb:.1f} MB",
        f"publish serial        {t_pub:6.2f} s  {mb / t_pub:7.1f} MB/s  {t_pub / t_ref_pub:5.2f}x read+hash floor ({t_ref_pub:.2f} s)",
        f"publish 2 threads     {t_pub2:6.2f} s  {mb / t_pub2:7.1f} MB/s  {t_pub2 / t_ref_pub:5.2f}x read+hash floor",
        f"download -j1          {t_dl:6.2f} s  {mb / t_dl:7.1f} MB/s  {t_dl / t_ref_get:5.2f}x bare urllib GET ({t_ref_get:.2f} s)",
        f"download -j2          {t_dl2:6.2f} s  {mb / t_dl2:7.1f} MB/s  {t_dl2 / t_ref_get:5.2f}x bare urllib GET",
        f"download again (same DEST, verified)  {t_again:6.3f} s  {t_again / t_dl:6.3f}x first download",
        f"download other DEST from cache        {t_cache:6.3f} s  {t_cache / t_dl:6.3f}x first download",
        f"verify (hash state)   {t_shallow:6.3f} s  {t_shallow / t_deep:6.3f}x verify --deep ({t_deep:.2f} s)",
    ]
    print("\n".join(lines))
    update_section("bench_shards", ("python benchmarks/bench_shards.py " + " ".join(sys.argv[1:])).strip(),
                   "\n".join(lines))


if __name__ == "__main__":
    main()
