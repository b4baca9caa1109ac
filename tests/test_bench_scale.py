"""bench_scale.py's pure helpers: the cost-curve exponent and the piece selection give known answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_scale import LINEAR_SLACK, evenly_spaced, fit_exponent, growth  # noqa: E402


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
