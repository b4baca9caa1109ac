"""`cmav-bench judges`: fixed judges saved with sha256 and the dataset's hash, verified and fetched like
published shards (real HTTP on 127.0.0.1), used by `cmav-bench run --judges`, refused for another dataset."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from cmav_data.checksum import sha256_file
from cmav_data.shards import download, verify
from cmav_data.shards.index import read_index
from cmav_models.bench import SUITES, make_judges
from cmav_models.cli import main
from cmav_models.judges import JUDGE_NAMES, JudgesError, load_judges
from test_bench import _assert_one_line_error
from test_bench_data import rewrite_manifest, tiny_dataset  # noqa: F401 (fixture)

torch.set_num_threads(1)
LMS = SUITES["smoke"].load.lms.to_dict()


def _judges(data: Path, out: Path):
    return CliRunner().invoke(main, ["judges", "--suite", "smoke", "--data", str(data), "--out", str(out),
                                     "--quiet", "--device", "cpu"])


@pytest.fixture(scope="module")
def judges_dir(tiny_dataset, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("judges") / "J"
    result = _judges(tiny_dataset, out)
    assert result.exit_code == 0, result.output
    return out


def test_judges_folder_is_a_verifiable_index_with_the_dataset_hash(judges_dir, tiny_dataset):  # noqa: F811
    names = sorted(p.name for p in judges_dir.iterdir())
    assert names == sorted([*(f"{n}.pt" for n in JUDGE_NAMES), "judges.json", "index.json"])  # no training state
    record = json.loads((judges_dir / "judges.json").read_text())
    assert record["manifest_sha256"] == sha256_file(tiny_dataset / "manifest.parquet")
    for name in JUDGE_NAMES:
        assert record["files"][name]["sha256"] == sha256_file(judges_dir / f"{name}.pt")
    index = read_index(judges_dir)
    assert index.kind == "judges"
    assert {f.path for f in index.files} == {*(f"{n}.pt" for n in JUDGE_NAMES), "judges.json"}
    report = verify(judges_dir, deep=True, progress=False)
    assert report.ok and report.checked == 4

    # Rerunning the command trains nothing and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in judges_dir.glob("*.pt")}
    assert _judges(tiny_dataset, judges_dir).exit_code == 0
    assert before == {p: p.stat().st_mtime_ns for p in judges_dir.glob("*.pt")}


def test_run_with_judges_scores_with_them(judges_dir, tiny_dataset, tmp_path):  # noqa: F811
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--suite", "smoke", "--data", str(tiny_dataset), "--out", str(out),
                                       "--quiet", "--device", "cpu", "--judges", str(judges_dir), "--metric",
                                       "accuracy"])
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()  # no judges trained beside the run
    payload = json.loads((run_dir / "metrics.json").read_text())
    judges = load_judges(judges_dir, payload["data"]["manifest_sha256"], 32, LMS)
    assert payload["judges"]["sha256"] == judges.sha256
    # The report says how many pairs the judges learnt from: the smoke suite's judges, uncapped, take
    # every non-silent training pair of the dataset.
    train = pq.read_table(tiny_dataset / "manifest.parquet", columns=["split", "silent"]).to_pylist()
    n_train = sum(r["split"] == "train" and not r["silent"] for r in train)
    assert payload["judges"]["train_pairs"] == judges.train_pairs == n_train
    assert f"on {n_train} training pairs, silent pairs left out" in (run_dir / "report.md").read_text()


def test_judges_train_on_their_capped_sample_and_record_its_size(judges_dir, tiny_dataset, tmp_path):  # noqa: F811
    # A cap on the judges' pairs (the fast suite's JUDGE_MAX_TRAIN) bounds what they decode and learn
    # from, and judges.json says how many pairs that was.
    uncapped = json.loads((judges_dir / "judges.json").read_text())["train_pairs"]
    cap = uncapped // 2
    config = replace(SUITES["smoke"], judge_max_train=cap)
    judges = make_judges(tiny_dataset, tmp_path / "J", config, 0, False, "cpu", None, False)
    record = json.loads((tmp_path / "J" / "judges.json").read_text())
    assert record["spec"]["max_train"] == cap
    # The cap is on training rows; the silent ones among them are then left out.
    assert 0 < judges.train_pairs == record["train_pairs"] <= cap < uncapped
    assert judges.sha256 != load_judges(judges_dir, judges.manifest_sha256, 32, LMS).sha256


def test_judges_of_another_dataset_are_refused_naming_both_hashes(judges_dir, tiny_dataset, tmp_path):  # noqa: F811
    other = rewrite_manifest(tiny_dataset, tmp_path / "other", lambda r: r["frame_index"] != 0)
    ours, theirs = sha256_file(other / "manifest.parquet"), sha256_file(tiny_dataset / "manifest.parquet")
    result = CliRunner().invoke(main, ["run", "--suite", "smoke", "--data", str(other), "--out",
                                       str(tmp_path / "runs"), "--quiet", "--device", "cpu", "--judges",
                                       str(judges_dir)])
    _assert_one_line_error(result, str(judges_dir), ours, theirs)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(JudgesError, match="64 px"):
        load_judges(judges_dir, theirs, 64, LMS)


def test_a_damaged_judge_is_refused(judges_dir, tiny_dataset, tmp_path):  # noqa: F811
    damaged = tmp_path / "J"
    shutil.copytree(judges_dir, damaged)
    path = damaged / "pose_regressor.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(JudgesError, match="pose_regressor.pt: sha256"):
        load_judges(damaged, sha256_file(tiny_dataset / "manifest.parquet"), 32, LMS)
    assert not verify(damaged, deep=True, progress=False).ok
    with pytest.raises(JudgesError, match="no judges.json"):
        load_judges(tmp_path, "0" * 64, 32, LMS)


def test_judges_download_over_http_like_shards(judges_dir, tiny_dataset, tmp_path):  # noqa: F811
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(judges_dir.parent))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{judges_dir.name}/index.json"
        download(url, tmp_path / "fetched", cache_dir=None, progress=False)
    finally:
        server.shutdown()
        server.server_close()
    manifest_sha256 = sha256_file(tiny_dataset / "manifest.parquet")
    fetched = load_judges(tmp_path / "fetched", manifest_sha256, 32, LMS)
    assert fetched.sha256 == load_judges(judges_dir, manifest_sha256, 32, LMS).sha256
