"""Known-answer tests of cmav_models.stats (intervals, cluster bootstrap, paired differences, tie rule)."""
import math

import numpy as np
import pytest

from cmav_models.stats import (NOT_RESOLVED, RESOLVED, Summary, best_or_tied, cluster_bootstrap,
                               format_summary, paired_difference, summarize)

# Student t quantile t(0.975, df=2) from a printed table (4.303) to more digits.
T_975_DF2 = 4.302652729749464


def test_summarize_three_values_known_interval():
    s = summarize([1.0, 2.0, 3.0])
    assert s.n == 3 and s.mean == 2.0 and s.std == pytest.approx(1.0)
    half = T_975_DF2 / math.sqrt(3.0)
    assert s.low == pytest.approx(2.0 - half, abs=1e-9)
    assert s.high == pytest.approx(2.0 + half, abs=1e-9)
    assert s.values == (1.0, 2.0, 3.0)


def test_summarize_std_is_sample_std_and_interval_narrows_with_confidence():
    values = [0.2, 0.4, 0.9, 0.5]
    s95, s80 = summarize(values), summarize(values, confidence=0.80)
    assert s95.std == pytest.approx(float(np.std(values, ddof=1)))
    assert s80.low > s95.low and s80.high < s95.high


def test_summarize_one_value_has_no_spread():
    s = summarize([0.385])
    assert (s.n, s.mean, s.std, s.low, s.high) == (1, 0.385, None, None, None)
    with pytest.raises(ValueError):
        summarize([])


def test_cluster_bootstrap_two_opposite_groups_spans_both():
    # Two recordings of 5 chunks each, all right / all wrong: a resample is {0, 0.5, 1} with
    # probabilities 1/4, 1/2, 1/4, so the 95% percentile interval is [0, 1].
    scores = [1.0] * 5 + [0.0] * 5
    groups = ["a"] * 5 + ["b"] * 5
    assert cluster_bootstrap(scores, groups, n_resamples=2000, seed=0) == (0.0, 1.0)


def test_cluster_bootstrap_constant_score_is_a_point():
    assert cluster_bootstrap([0.7] * 6, [1, 1, 2, 2, 3, 3], seed=3) == pytest.approx((0.7, 0.7))


def test_cluster_bootstrap_is_wider_than_chunk_bootstrap_for_correlated_chunks():
    rng = np.random.default_rng(0)
    per_recording = rng.uniform(0.0, 1.0, size=10)
    scores = np.repeat(per_recording, 20)  # 20 identical chunks per recording
    recordings = np.repeat(np.arange(10), 20)
    low_r, high_r = cluster_bootstrap(scores, recordings, seed=1)
    low_c, high_c = cluster_bootstrap(scores, np.arange(scores.size), seed=1)
    assert high_r - low_r > 3 * (high_c - low_c)
    assert low_r < scores.mean() < high_r


def test_cluster_bootstrap_deterministic_and_order_free():
    scores = [1, 0, 1, 1, 0, 1, 0, 0, 1]
    groups = ["x", "x", "y", "y", "z", "z", "w", "w", "w"]
    first = cluster_bootstrap(scores, groups, seed=7)
    assert cluster_bootstrap(scores, groups, seed=7) == first
    order = [8, 3, 0, 5, 1, 7, 2, 6, 4]
    assert cluster_bootstrap([scores[i] for i in order], [groups[i] for i in order], seed=7) == first


def test_cluster_bootstrap_refuses_one_group():
    with pytest.raises(ValueError, match="at least 2 groups"):
        cluster_bootstrap([1.0, 0.0], ["a", "a"])


def test_paired_difference_with_known_positive_sign_is_resolved():
    b = [0.30, 0.50, 0.20]
    a = [0.40, 0.62, 0.28]  # a - b = 0.10, 0.12, 0.08
    d = paired_difference(a, b)
    assert d.differences == pytest.approx((0.10, 0.12, 0.08))
    assert d.summary.mean == pytest.approx(0.10)
    assert d.summary.std == pytest.approx(0.02)
    assert d.summary.low == pytest.approx(0.10 - T_975_DF2 * 0.02 / math.sqrt(3))
    assert d.resolved and d.sentence == RESOLVED


def test_paired_difference_without_consistent_sign_is_not_resolved():
    # The S2I-C minus S2I-N: +0.10, +0.02, -0.01.
    d = paired_difference([0.385, 0.226, 0.577], [0.285, 0.206, 0.587])
    assert not d.resolved and d.sentence == NOT_RESOLVED
    one = paired_difference([0.9], [0.1])
    assert not one.resolved and one.summary.low is None
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def test_best_or_tied_separated_best():
    result = best_or_tied({"lms": summarize([0.80, 0.81, 0.79]), "cqt": summarize([0.50, 0.52, 0.51]),
                           "stft": summarize([0.40, 0.41, 0.42])})
    assert result.best == "lms" and result.tied == ("lms",) and result.resolved


def test_best_or_tied_overlap_lists_the_tied_cells():
    # The 5-seed table: MFCC separable, LMS/CQT/STFT not.
    result = best_or_tied({"lms": summarize([0.38, 0.33, 0.44]), "cqt": summarize([0.36, 0.30, 0.42]),
                           "stft": summarize([0.10, 0.11, 0.12])})
    assert result.best == "lms" and result.tied == ("lms", "cqt") and not result.resolved


def test_best_or_tied_lower_is_better_and_one_seed():
    fid = best_or_tied({"a": summarize([10.0, 11.0, 12.0]), "b": summarize([30.0, 31.0, 29.0])},
                       higher_is_better=False)
    assert fid.best == "a" and fid.resolved
    one_seed = best_or_tied({"a": summarize([0.9]), "b": summarize([0.1])})
    assert one_seed.best == "a" and one_seed.tied == ("a", "b") and not one_seed.resolved


def test_format_summary():
    s = Summary(3, 0.385, 0.048, 0.33, 0.44, (0.3, 0.4, 0.45))
    assert format_summary(s) == "0.385 ± 0.048 (95% CI 0.33–0.44, 3 seeds)"
    assert format_summary(summarize([0.385])) == "0.385 (1 seed, no interval)"
    constant = format_summary(summarize([0.5, 0.5, 0.5]))
    assert "± 0.000" not in constant and constant.startswith("0.500 ± <0.001")


def test_cluster_bootstrap_of_rows_keeps_pairs_together():
    # Rows (x, y) with y = 2x: any resample of whole recordings keeps the ratio exactly 2.
    x = np.arange(1.0, 13.0)
    rows = np.stack([x, 2 * x], axis=1)
    recordings = np.repeat([0, 1, 2, 3], 3)
    ratio = cluster_bootstrap(rows, recordings, statistic=lambda r: r[:, 1].sum() / r[:, 0].sum(), seed=0)
    assert ratio == pytest.approx((2.0, 2.0))


def test_format_summary_has_no_negative_zero():
    text = format_summary(summarize([-0.0004, 0.0001, -0.0002]))
    assert text.startswith("0.000 ± ") and "-0.00–" not in text and "–0.00," in text


def test_summary_round_trips_through_a_dict():
    s = summarize([0.2, 0.4, 0.9])
    assert Summary.from_dict(s.to_dict()) == s
    record = {**s.to_dict(), "per_seed": s.to_dict()["values"]}
    del record["values"]
    assert Summary.from_dict(record) == s
