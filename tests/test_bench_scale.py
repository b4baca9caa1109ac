"""bench_scale.py's helpers: the cost-curve exponent and the piece selection give known answers, and the
ledger of finished steps survives a rerun and forgets exactly what an option change makes stale."""

from __future__ import annotations

import collections
import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_scale import (LINEAR_SLACK, Ledger, Measure, SizeRun, choose_pieces, evenly_spaced,  # noqa: E402
                         fit_exponent, growth, in_step_order, with_extract_total)

INDEX = Path(__file__).resolve().parent.parent / "manifests" / "urmp_index.csv"


@pytest.mark.parametrize("k", [0.5, 1.0, 1.5, 2.0])
def test_fit_exponent_recovers_a_power_law(k):
    pairs = [600, 1650, 3300, 6600]
    assert fit_exponent(pairs, [3.0 * p**k for p in pairs]) == pytest.approx(k, abs=1e-9)


def test_fit_exponent_is_least_squares_on_log_log():
    # log2 pairs 0, 1, 2 and log2 values 0, 1, 3: the least-squares slope is 1.5.
    assert fit_exponent([1, 2, 4], [1, 2, 8]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="two distinct sizes"):
        fit_exponent([100, 100], [1.0, 2.0])


def test_growth_names_worse_than_linear_beyond_the_slack():
    assert growth(1.0) == growth(1 + LINEAR_SLACK) == growth(1 - LINEAR_SLACK) == "linear"
    assert growth(1.3) == "worse than linear" and growth(0.5) == "better than linear"


def test_evenly_spaced_pieces_include_both_ends():
    assert evenly_spaced(4, 44) == [0, 14, 29, 43]
    assert evenly_spaced(11, 44)[:3] == [0, 4, 9] and len(set(evenly_spaced(22, 44))) == 22
    assert evenly_spaced(44, 44) == list(range(44)) and evenly_spaced(1, 44) == [0]


def _instrument_counts(n: int) -> tuple[list[str], collections.Counter]:
    folders = sorted({row["folder"] for row in csv.DictReader(INDEX.open())})
    chosen = choose_pieces(n, folders)
    assert len(chosen) == len(set(chosen)) == n
    return folders, collections.Counter(code for i in chosen for code in folders[i].split("_")[2:])


@pytest.mark.parametrize("n", [11, 22])
def test_chosen_pieces_give_every_instrument_two_recordings_when_n_allows(n):
    _, counts = _instrument_counts(n)
    assert len(counts) == 13 and min(counts.values()) >= 2


def test_chosen_pieces_fall_short_only_when_n_is_too_small_and_take_all_at_44():
    folders, counts = _instrument_counts(4)  # at most 20 tracks: 13 instruments twice is 26
    assert sum(counts.values()) <= 20
    assert choose_pieces(44, folders) == list(range(44))


def test_choose_pieces_greedy_on_a_known_case():
    folders = ["01_A_vn_vn", "02_B_vn_fl", "03_C_fl_fl", "04_D_vn_vc", "05_E_vc_vc"]
    # Each piece cuts the shortfall by two at first, so the earliest (01, vn vn) goes first; then 03 (fl fl)
    # and 05 (vc vc) each still cut two, the others one.
    assert choose_pieces(3, folders) == [0, 2, 4]
    assert choose_pieces(4, folders) == [0, 1, 2, 4]  # no shortfall left: the rest evenly spaced


def _run_with(steps: dict[str, float]) -> SizeRun:
    return SizeRun(4, pairs=100, video_seconds=10.0, steps={k: Measure(v, 1.0) for k, v in steps.items()})


def test_the_ledger_keeps_finished_steps_and_drops_those_an_option_change_makes_stale(tmp_path):
    path = tmp_path / "ledger.json"
    options = {"time_scale": 0.05, "size": "480x270", "jobs": 2, "kinds": ["lms"], "compare_args": "--fast",
               "bench_suite": "fast"}
    ledger = Ledger(path, options, fresh=False)
    ledger.set_corpus(Measure(12.0, 300.0))
    ledger.record(_run_with({"build": 5.0, "extract lms": 3.0, "compare": 7.0, "bench": 9.0}))

    again = Ledger(path, options, fresh=False).size(4)
    assert {k: m.seconds for k, m in again.steps.items()} == {"build": 5.0, "extract lms": 3.0, "compare": 7.0,
                                                              "bench": 9.0}
    assert again.pairs == 100 and again.steps["build"].commit  # each measure says where it was taken

    stale = Ledger(path, {**options, "compare_args": "--fast --depths 2"}, fresh=False)
    assert set(stale.size(4).steps) == {"build", "extract lms", "bench"}
    assert stale.corpus().seconds == 12.0  # the corpus did not change
    Ledger(path, options, fresh=False).record(_run_with({"build": 5.0, "compare": 7.0}))
    assert Ledger(path, {**options, "jobs": 1}, fresh=False).size(4).steps == {}  # a new build: all stale
    assert Ledger(path, options, fresh=True).size(4).steps == {}
    assert json.loads(path.read_text())["corpus"]["seconds"] == 12.0


def test_steps_are_reported_in_the_order_they_run():
    assert in_step_order(["bench", "extract", "extract lms", "build", "compare", "extract cqt"]) == [
        "build", "extract cqt", "extract lms", "extract", "compare", "bench"]


def test_the_extract_total_is_derived_once_every_kind_is_measured():
    run = SizeRun(4, pairs=100, steps={"extract lms": Measure(2.0, 500.0), "extract cqt": Measure(3.0, 700.0)})
    total = with_extract_total(run, ["lms", "cqt"]).steps["extract"]
    assert (total.seconds, total.rss_mb) == (5.0, 700.0) and total.note.startswith("40.0 chunks/s")
    assert "extract" not in with_extract_total(run, ["lms", "cqt", "stft"]).steps
