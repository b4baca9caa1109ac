"""compare-features end to end on a tiny built dataset: the tables, the statistics, reuse, the device.

Also: ``cmav_data`` imports no ``cmav_models`` (compare-features plugs in through an entry point).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from cmav_data.cli import main
from cmav_models import stats
from test_features_fixtures import build_dataset

ARGS = ["--fast", "--epochs", "1", "--max-train-per-class", "8", "--max-validation-per-class", "4",
        "--kinds", "mfcc,cqt", "--depths", "2,3", "-j", "1", "--quiet"]


def _run(*args: str):
    result = CliRunner().invoke(main, ["compare-features", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare") / "ds"
    build_dataset(root, train_per_class=12, validation_per_class=4, train_recordings=4, silent_per_class=2)
    return root


@pytest.mark.slow
def test_compare_features_tables_statistics_and_reuse(dataset, tmp_path):
    out = tmp_path / "out"
    printed = _run(str(dataset), "--out", str(out), "--device", "cpu", *ARGS)
    results = json.loads((out / "results.json").read_text())
    assert results["device"] == "cpu" and results["amp"] is None
    assert results["run"] == {**results["run"], "cells_trained": 2 * 2 * 2 * 3, "cells_reused": 0}
    # Silent pairs left out and counted; selection carved from training recordings, held out apart.
    counts = results["counts"]
    assert counts["silent_left_out"] == {"train": 4 * 2, "validation": 0}
    assert counts["pairs"] == {"fit": 4 * 8, "selection": 4 * 3, "heldout": 4 * 4}
    assert all(r.endswith("01") or r[-2:] in ("04", "05", "06") for r in counts["selection_recordings"])
    # Standardisation per row, fitted on the fit pairs, recorded; the level reference recorded.
    for kind, rows in (("mfcc", 20), ("cqt", 96)):
        record = results["standardisation"][kind]
        assert record["fitted_on_pairs"] == 32 and len(record["mean"]) == len(record["std"]) == rows
        assert results["level_reference"][kind] == {"db_ref": "full_scale", "floor_db": -120.0, "top_db": None}
    # Both poolings, each named in its caption; 3 seeds with intervals; marks follow the tie rule.
    table_md = (out / "results.md").read_text()
    results_html = (out / "results.html").read_text()  # the same tables, and the figures beside it
    assert '<img src="heatmap_pool.png"' in results_html and '<img src="confusion_counts.png"' in results_html
    assert "<table>" in results_html and "http" not in results_html
    assert set(results["tables"]) == {"pool", "keep"}
    for pooling, table in results["tables"].items():
        assert table["caption"] in table_md and f"keep_frequency={pooling == 'keep'}" in table["caption"]
        summaries = {f"{g['kind']}, {g['depth']} conv": stats.summarize(g["selection"]["values"])
                     for g in table["grid"]}
        assert all("3 seeds" in g["text"] and "95% CI" in g["text"] for g in table["grid"])
        verdict = stats.best_or_tied(summaries)
        assert table["best"] == (verdict.best if verdict.resolved else None)
        assert table["tied"] == ([] if verdict.resolved else list(verdict.tied))
        chosen = table["chosen"]
        assert f"{chosen['kind']}, {chosen['depth']} conv" == verdict.best  # chosen on selection
        assert chosen["heldout"]["n"] == 3 and "3 seeds" in chosen["heldout_text"]
        assert sum(map(sum, chosen["confusion"])) == 3 * 16  # every held-out pair, every seed
    assert table_md.count("(best)") + table_md.count("(tied)") >= 2 and "± 0.000" not in table_md
    assert "held-out accuracy (16 pairs)" in printed
    for name in ("heatmap_pool.png", "heatmap_keep.png", "confusion_counts.png", "confusion_normalized.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 200
    # The same command again trains nothing and gives the same tables.
    again = _run(str(dataset), "--out", str(out), "--device", "cpu", *ARGS)
    assert "0 model(s) trained, 24 reused" in again
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["tables"] == results["tables"] and rerun["standardisation"] == results["standardisation"]
    # Another recipe is another cell: one more epoch trains again.
    assert "24 model(s) trained" in _run(str(dataset), "--out", str(out), *ARGS, "--epochs", "2")


@pytest.mark.slow
def test_one_seed_says_no_interval_and_names_no_best(dataset, tmp_path):
    out = tmp_path / "one"
    printed = _run(str(dataset), "--out", str(out), "--seeds", "1", "--poolings", "keep", "--include-silent",
                   "--device", "auto", *ARGS)
    results = json.loads((out / "results.json").read_text())
    assert results["device"] == "cpu"  # auto on a machine without a GPU
    assert results["counts"]["silent_left_out"] is None and results["counts"]["pairs"]["fit"] == 4 * 8
    table = results["tables"]["keep"]
    assert all(g["text"].endswith("(1 seed, no interval)") for g in table["grid"])
    assert table["best"] is None and len(table["tied"]) == 4  # one seed: nothing can be told apart
    assert "no single best" in printed and "(best)" not in printed and printed.count("(tied)") == 4
    assert "1 seed, no interval" in table["chosen"]["heldout_text"]


def test_unknown_pooling_is_one_clear_line(dataset, tmp_path):
    result = CliRunner().invoke(main, ["compare-features", str(dataset), "--poolings", "max", "--quiet"])
    assert result.exit_code != 0 and "unknown pooling(s) ['max']" in result.output
    assert "Traceback" not in result.output


def test_cmav_data_imports_no_cmav_models():
    code = """
import importlib, pkgutil, sys
import cmav_data
for module in pkgutil.walk_packages(cmav_data.__path__, "cmav_data."):
    if module.name != "cmav_data.cli.__main__":
        importlib.import_module(module.name)
from cmav_data.cli import main
main.list_commands(None)  # lists plugin commands without importing them
leaked = sorted(m for m in sys.modules if m.split(".")[0] == "cmav_models")
print(len([m for m in sys.modules if m.startswith("cmav_data.")]), leaked)
assert not leaked, leaked
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) > 20  # every module was imported
