"""KID: the unbiased polynomial-kernel MMD^2 against a direct double loop, and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cmav_models.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel


def _direct_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """The estimator as written in Binkowski et al. (2018), eq. 3, one pair at a time."""
    d = a.shape[1]

    def k(x, y):
        return (sum(x[i] * y[i] for i in range(d)) / d + 1) ** 3

    m, n = len(a), len(b)
    within_a = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_b = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return within_a + within_b - 2 * across


def test_matches_a_direct_double_loop():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3)), rng.normal(0.5, 1.2, size=(9, 3))
    assert mmd2_unbiased(a, b) == pytest.approx(_direct_mmd2(a, b), rel=1e-12)


def test_a_hand_computed_value():
    # 1-d, d = 1: k(x, y) = (xy + 1)^3. a = {0, 1}: k(0, 1) = 1; b = {2, 3}: k(2, 3) = 343.
    # across: k(0, 2) = k(0, 3) = 1, k(1, 2) = 27, k(1, 3) = 64 -> mean 93 / 4.
    a, b = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    assert mmd2_unbiased(a, b) == pytest.approx(1 + 343 - 2 * 93 / 4)


def test_one_distribution_is_near_zero_and_shifted_gaussians_are_positive():
    rng = np.random.default_rng(1)
    same = kernel_inception_distance(rng.normal(size=(400, 16)), rng.normal(size=(400, 16)), n_subsets=20)
    shifted = kernel_inception_distance(rng.normal(size=(400, 16)), rng.normal(0.5, 1, size=(400, 16)),
                                        n_subsets=20)
    assert same.subset_size == 200 and same.std > 0
    assert abs(same.value) < 3 * same.std  # zero within its spread
    assert shifted.value > 10 * shifted.std > 0
    further = kernel_inception_distance(rng.normal(size=(400, 16)), rng.normal(1.0, 1, size=(400, 16)), n_subsets=20)
    assert further.value > shifted.value


def test_unbiased_where_the_plug_in_estimate_is_not():
    # One distribution, small samples: the mean over many draws of the unbiased estimate is ~0,
    # the biased V-statistic (diagonal kept) stays above it.
    rng = np.random.default_rng(2)
    pairs = [(rng.normal(size=(10, 4)), rng.normal(size=(10, 4))) for _ in range(300)]
    draws = [mmd2_unbiased(a, b) for a, b in pairs]
    plug_in = [polynomial_kernel(a, a).mean() + polynomial_kernel(b, b).mean() - 2 * polynomial_kernel(a, b).mean()
               for a, b in pairs]
    assert abs(np.mean(draws)) < 3 * np.std(draws) / np.sqrt(len(draws))
    assert np.mean(plug_in) > 10 * np.std(plug_in) / np.sqrt(len(plug_in))


def test_seeded_and_checked():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    assert kernel_inception_distance(a, b, seed=4) == kernel_inception_distance(a, b, seed=4)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(a, b, subset_size=51)
    with pytest.raises(ValueError, match="rows"):
        mmd2_unbiased(a[:1], b)
