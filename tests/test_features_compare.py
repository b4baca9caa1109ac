"""compare-features end to end on a tiny built dataset: the grid, its outputs, determinism."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from cmav_data.cli import main
from test_features_fixtures import build_dataset

ARGS = ["--fast", "--epochs", "1", "--max-train-per-class", "6", "--max-validation-per-class", "3", "--quiet"]


@pytest.mark.slow
def test_compare_features_fast_grid_outputs_and_determinism(tmp_path):
    build_dataset(tmp_path / "ds", train_per_class=6, validation_per_class=3)
    runs = []
    # The whole grid serially, then part of it in two worker processes.
    for name, jobs, grid in (("a", "1", []), ("b", "2", ["--kinds", "mfcc,lms", "--depths", "2,4"])):
        out = tmp_path / name
        result = CliRunner().invoke(main, ["compare-features", str(tmp_path / "ds"), "--out", str(out),
                                           "-j", jobs, *grid, *ARGS])
        assert result.exit_code == 0, result.output
        runs.append((out, result.output))
    out, printed = runs[0]
    results = json.loads((out / "results.json").read_text())
    cells = {(g["kind"], g["depth"]) for g in results["grid"]}
    assert cells == {(k, d) for k in ("stft", "cqt", "mfcc", "lms") for d in (2, 3, 4, 5)}
    assert all(len(g["accuracy"]) == 1 and 0 <= g["mean"] <= 1 for g in results["grid"])
    assert sorted(results["grid"][0]["per_class"]) == ["clarinet", "flute", "trumpet", "violin"]
    best = results["best"]
    assert best["mean"] == max(g["mean"] for g in results["grid"])
    assert sum(map(sum, best["confusion"])) == 4 * 3  # every validation pair scored once
    assert set(results["extraction_speed"]) == {"stft", "cqt", "mfcc", "lms"}
    table = (out / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "conv" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["stft", "cqt", "mfcc", "lms"]
    assert table.count("(best)") == 1 and f"| {best['kind']} |" in next(r for r in rows if "(best)" in r)
    assert "(best)" in printed and f"best: {best['kind']}" in printed
    for name in ("heatmap.png", "confusion_counts.png", "confusion_normalized.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 200
    # Same seed, different worker count: identical cells.
    other = json.loads((runs[1][0] / "results.json").read_text())["grid"]
    assert len(other) == 4 and all(cell in results["grid"] for cell in other)
