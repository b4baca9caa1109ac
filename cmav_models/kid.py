"""Kernel inception distance (KID; Binkowski et al. 2018) between two sets of feature rows.

KID is the squared maximum mean discrepancy (MMD^2) with the cubic polynomial kernel
k(x, y) = (x . y / d + 1)^3, d the feature dimension, estimated without bias: the within-set sums
leave out the diagonal (i = j). Unlike the Frechet distance, whose plug-in estimate is biased
upwards by an amount that shrinks with n (so two models scored on different n cannot be compared),
its expectation does not depend on the sample size; it can be slightly negative when the two
sets come from one distribution.

As in the paper and its reference code, the estimate is averaged over ``n_subsets`` random subsets
of ``subset_size`` rows drawn without replacement from each set, and their standard deviation is
reported with it. The default subset size is half the smaller set (at most 1000), so the subsets
differ and the spread says something; features here are the judges' embeddings, not Inception's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SUBSET_SIZE = 1000


@dataclass(frozen=True)
class KidEstimate:
    value: float  # mean MMD^2 over the subsets
    std: float  # standard deviation over the subsets (ddof 1)
    subset_size: int
    n_subsets: int


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a . b / d + 1)^3 for every pair of rows of a [m, d] and b [n, d] -> [m, n]."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased MMD^2 estimate of the polynomial kernel between rows a [m, d] and b [n, d] (m, n >= 2)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m, n = len(a), len(b)
    if m < 2 or n < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two sets of at least 2 rows of one dimension, not {a.shape} and {b.shape}")
    k_aa, k_bb = polynomial_kernel(a, a), polynomial_kernel(b, b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2 * polynomial_kernel(a, b).mean())


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, n_subsets: int = 100, subset_size: int | None = None,
                              seed: int = 0) -> KidEstimate:
    """KID of feature rows a [m, d] against b [n, d]: mean and std of :func:`mmd2_unbiased` over
    seeded random subsets (see the module docstring for the default subset size)."""
    size = min(MAX_SUBSET_SIZE, min(len(a), len(b)) // 2) if subset_size is None else subset_size
    if not 2 <= size <= min(len(a), len(b)):
        raise ValueError(f"subset_size must be in 2..{min(len(a), len(b))} (the smaller set), not {size}")
    if n_subsets < 2:
        raise ValueError(f"n_subsets must be at least 2 for a standard deviation, not {n_subsets}")
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(n_subsets)]
    return KidEstimate(float(np.mean(values)), float(np.std(values, ddof=1)), size, n_subsets)
