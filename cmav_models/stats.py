"""Statistics for reported numbers: seeds, intervals, paired differences and the tie rule.

Pure functions on plain numbers (numpy/scipy only), shared by ``cmav-bench`` and
``cmav-data compare-features`` so that every table states its n, its seeds and an interval the same way.

- :func:`summarize`: mean, sample standard deviation (ddof 1) and a Student-t interval over seeds.
- :func:`cluster_bootstrap`: an interval that also accounts for the validation set's size, resampling
  whole groups (validation *recordings*: chunks of one recording are correlated, so resampling chunks
  would understate the spread).
- :func:`paired_difference`: per-seed differences of two variants trained with the same seeds.
- :func:`best_or_tied`: a "best" cell only when its interval overlaps no other cell's.
- :func:`format_summary`: ``0.385 ± 0.048 (95% CI 0.33–0.44, 3 seeds)``; one seed is written
  ``0.385 (1 seed, no interval)``, never ``± 0.000``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

RESOLVED = "resolved at this sample size"
NOT_RESOLVED = "not resolved at this sample size"


@dataclass(frozen=True)
class Summary:
    """Values over seeds with their mean, sample std (ddof 1) and Student-t interval.

    With one value ``std``, ``low`` and ``high`` are None: one seed has no spread to report.
    """

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None
    values: tuple[float, ...]
    confidence: float = 0.95

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "std": self.std, "low": self.low, "high": self.high,
                "confidence": self.confidence, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Summary":
        """The inverse of :meth:`to_dict`; the values may also be under ``per_seed``."""
        values = data["values"] if "values" in data else data.get("per_seed", ())
        return cls(data["n"], data["mean"], data["std"], data["low"], data["high"], tuple(values),
                   data.get("confidence", 0.95))


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, std (ddof 1) and the two-sided Student-t interval ``mean ± t * std / sqrt(n)``."""
    data = np.asarray(values, dtype=float).ravel()
    if data.size == 0:
        raise ValueError("summarize needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(data.mean())
    kept = tuple(float(v) for v in data)
    if data.size == 1:
        return Summary(1, mean, None, None, None, kept, confidence)
    std = float(data.std(ddof=1))
    half = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, data.size - 1)) * std / math.sqrt(data.size)
    return Summary(int(data.size), mean, std, mean - half, mean + half, kept, confidence)


def cluster_bootstrap(scores_per_item: Sequence[float], groups: Sequence, *,
                      statistic: Callable[[np.ndarray], float] = np.mean, n_resamples: int = 1000,
                      seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic`` when whole groups are resampled with replacement.

    ``groups[i]`` names the group (e.g. the validation recording) of ``scores_per_item[i]``, a number
    or a row of numbers (``statistic`` then receives the [n, k] rows, e.g. pairs for a correlation). Each
    resample draws as many groups as there are, with replacement, and pools all their items, so items
    of one group stay together. Deterministic for a ``seed``; group order does not matter (groups are
    sorted first). Needs at least two groups: one group has nothing to resample.
    """
    scores = np.asarray(scores_per_item, dtype=float)
    labels = np.asarray(groups).ravel()
    if scores.ndim == 0 or len(scores) != labels.size:
        raise ValueError(f"{scores.size} scores but {labels.size} group labels")
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    names, inverse = np.unique(labels, return_inverse=True)
    if names.size < 2:
        raise ValueError(f"cluster_bootstrap needs at least 2 groups, got {names.size}")
    members = [np.flatnonzero(inverse == g) for g in range(names.size)]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, names.size, size=(n_resamples, names.size))
    estimates = np.array([statistic(scores[np.concatenate([members[g] for g in row])]) for row in draws])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` seed by seed (both trained with the same seeds), summarised over seeds."""

    differences: tuple[float, ...]
    summary: Summary
    resolved: bool
    sentence: str

    def to_dict(self) -> dict:
        return {"differences": list(self.differences), "summary": self.summary.to_dict(),
                "resolved": self.resolved, "sentence": self.sentence}


def paired_difference(a_per_seed: Sequence[float], b_per_seed: Sequence[float],
                      confidence: float = 0.95) -> PairedDifference:
    """Per-seed differences ``a - b``; resolved when their interval excludes 0 (never with one seed)."""
    a = np.asarray(a_per_seed, dtype=float).ravel()
    b = np.asarray(b_per_seed, dtype=float).ravel()
    if a.size != b.size:
        raise ValueError(f"paired values need the same seeds: {a.size} against {b.size}")
    summary = summarize(a - b, confidence)
    resolved = summary.has_interval and (summary.low > 0.0 or summary.high < 0.0)
    return PairedDifference(summary.values, summary, resolved, RESOLVED if resolved else NOT_RESOLVED)


@dataclass(frozen=True)
class BestOrTied:
    """``best`` has the best mean; ``tied`` are the names whose interval overlaps the best's (best
    included, best first). ``resolved`` is True only when nothing is tied with the best."""

    best: str
    tied: tuple[str, ...]

    @property
    def resolved(self) -> bool:
        return len(self.tied) == 1


def _overlap(a: Summary, b: Summary) -> bool:
    # A cell without an interval (one seed) cannot be told apart from anything.
    if not (a.has_interval and b.has_interval):
        return True
    return a.low <= b.high and b.low <= a.high


def best_or_tied(summaries: Mapping[str, Summary], higher_is_better: bool = True) -> BestOrTied:
    """The best cell by mean, and every cell whose interval overlaps it.

    The best is declared (``resolved``) only when its interval overlaps no other cell's interval; a
    cell with one seed has no interval and so is tied with the best. NaN means are left out.
    """
    cells = {name: s for name, s in summaries.items() if not math.isnan(s.mean)}
    if not cells:
        raise ValueError("best_or_tied needs at least one summary with a mean")
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(cells, key=lambda name: -sign * cells[name].mean)
    best = order[0]
    tied = tuple(name for name in order if name == best or _overlap(cells[best], cells[name]))
    return BestOrTied(best, tied)


def _fixed(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0.0 else text  # no "-0.000"


def format_interval(low: float, high: float, digits: int = 2) -> str:
    """``0.33–0.44`` (an en dash between the bounds)."""
    return f"{_fixed(low, digits)}–{_fixed(high, digits)}"


def format_summary(s: Summary, digits: int = 3, unit: str = "seed") -> str:
    """``0.385 ± 0.048 (95% CI 0.33–0.44, 3 seeds)``: mean ± sample std, then the Student-t interval.

    One value gives ``0.385 (1 seed, no interval)``. A std that rounds to zero is written ``± <0.001``,
    so ``± 0.000`` never appears. The interval has one digit fewer than the mean.
    """
    mean = _fixed(s.mean, digits)
    if not s.has_interval:
        return f"{mean} ({s.n} {unit}{'' if s.n == 1 else 's'}, no interval)"
    spread = f"{s.std:.{digits}f}"
    if float(spread) == 0.0:
        spread = f"<{10.0 ** -digits:.{digits}f}"
    level = f"{100 * s.confidence:g}%"
    ci = format_interval(s.low, s.high, max(digits - 1, 0))
    return f"{mean} ± {spread} ({level} CI {ci}, {s.n} {unit}s)"
