"""Joining raters' CSVs (exported by a run's ``rate.html``) with its hidden key, and summarising.

- Mean score per variant (and kind) with a 95% interval from a cluster bootstrap over *samples*
  (``stats.cluster_bootstrap``: the ratings of one sample stay together, so the interval speaks of
  other samples of the same model, not only other raters of these ones), with n ratings, samples and
  raters; a variant with one sample gets no interval.
- Rater agreement: Krippendorff's alpha with the interval metric, over the samples that at least two
  raters scored (1 = perfect agreement, 0 = no better than chance; missing scores are allowed).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmav_data.view.rate import KEY_FORMAT, KEY_NAME
from cmav_models.stats import cluster_bootstrap

CSV_HEADER = ["page", "rater", "item", "score"]
CONFIDENCE = 0.95


class RatingsError(ValueError):
    """A key or ratings file that cannot be used; ``str`` names the file and the cause."""


@dataclass(frozen=True)
class Rating:
    rater: str
    item: str
    score: int


@dataclass(frozen=True)
class VariantScore:
    kind: str
    variant: str
    n_ratings: int
    n_samples: int
    n_raters: int
    mean: float
    low: float | None  # None: fewer than 2 samples, no interval
    high: float | None


@dataclass(frozen=True)
class RatingsSummary:
    scores: list[VariantScore]
    alpha: dict[str, float | None]  # per kind; None when fewer than 2 samples have 2+ ratings
    n_alpha_samples: dict[str, int]
    raters: list[str]

    def to_dict(self) -> dict:
        return {"scores": [vars(s) for s in self.scores], "agreement": {
            "statistic": "Krippendorff's alpha, interval metric", "alpha": self.alpha,
            "samples": self.n_alpha_samples}, "raters": self.raters,
            "interval": f"{CONFIDENCE:.0%} cluster bootstrap over samples (1000 resamples, seed 0)"}


def read_key(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / KEY_NAME
    try:
        key = json.loads(path.read_bytes())
    except OSError as e:
        raise RatingsError(f"{path}: cannot read ({e.strerror or e}); write the rating page first") from None
    except ValueError as e:
        raise RatingsError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT:
        raise RatingsError(f"{path}: not a rating key ({KEY_FORMAT})")
    return key


def read_ratings(paths: list[str | os.PathLike], key: dict) -> list[Rating]:
    """Every rating of the CSVs, checked against the key (page, item, scale); one rater per
    (rater, item) pair across all files."""
    items = {i["item"]: i for i in key["items"]}
    out: dict[tuple[str, str], Rating] = {}
    for path in map(Path, paths):
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError) as e:
            raise RatingsError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
        if not rows or rows[0] != CSV_HEADER:
            raise RatingsError(f"{path}: not a ratings CSV of rate.html (header {','.join(CSV_HEADER)} expected)")
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != 4:
                raise RatingsError(f"{path}:{line}: {len(row)} fields, 4 expected")
            page, rater, item, score = row
            if page != key["page"]:
                raise RatingsError(f"{path}:{line}: ratings of another rate.html (page {page}, the key's is {key['page']})")
            if item not in items:
                raise RatingsError(f"{path}:{line}: unknown item {item!r}")
            scale = key["scale"][items[item]["kind"]]
            if score not in scale:
                raise RatingsError(f"{path}:{line}: score {score!r} is not on the scale ({', '.join(scale)})")
            if (rater, item) in out:
                raise RatingsError(f"{path}:{line}: rater {rater!r} scored {item} twice (in one or two files)")
            out[(rater, item)] = Rating(rater, item, int(score))
    if not out:
        raise RatingsError(f"{', '.join(map(str, paths))}: no ratings")
    return sorted(out.values(), key=lambda r: (r.rater, r.item))


def krippendorff_alpha_interval(units: list[list[float]]) -> float | None:
    """Krippendorff's alpha, interval metric, from the values given to each unit (any number of
    raters per unit; units with fewer than 2 values are not pairable and left out)."""
    pairable = [np.asarray(u, float) for u in units if len(u) >= 2]
    if len(pairable) < 2:
        return None
    values = np.concatenate(pairable)
    n = values.size
    observed = sum(((u[:, None] - u[None, :]) ** 2).sum() / (u.size - 1) for u in pairable) / n
    expected = ((values[:, None] - values[None, :]) ** 2).sum() / (n * (n - 1))
    return 1.0 if expected == 0 else float(1.0 - observed / expected)


def summarize_ratings(key: dict, ratings: list[Rating]) -> RatingsSummary:
    items = {i["item"]: i for i in key["items"]}
    groups: dict[tuple[str, str], list[Rating]] = {}
    for r in ratings:
        groups.setdefault((items[r.item]["kind"], items[r.item]["variant"]), []).append(r)
    scores = []
    # Real samples first (the reference), then the variants by name.
    for kind, variant in sorted(groups, key=lambda g: (g[0], g[1] != "real", g[1])):
        rs = groups[(kind, variant)]
        values, samples = [r.score for r in rs], [r.item for r in rs]
        low = high = None
        if len(set(samples)) >= 2:
            low, high = cluster_bootstrap(values, samples, confidence=CONFIDENCE)
        scores.append(VariantScore(kind, variant, len(rs), len(set(samples)), len({r.rater for r in rs}),
                                   float(np.mean(values)), low, high))
    alpha, n_alpha = {}, {}
    for kind in sorted({i["kind"] for i in items.values()}):
        per_item: dict[str, list[float]] = {}
        for r in ratings:
            if items[r.item]["kind"] == kind:
                per_item.setdefault(r.item, []).append(r.score)
        alpha[kind] = krippendorff_alpha_interval(list(per_item.values()))
        n_alpha[kind] = sum(len(v) >= 2 for v in per_item.values())
    return RatingsSummary(scores, alpha, n_alpha, sorted({r.rater for r in ratings}))


def format_summary(summary: RatingsSummary) -> str:
    lines = ["| kind | variant | mean score (95% CI, bootstrap over samples) | ratings | samples | raters |",
             "|---|---|---|---|---|---|"]
    for s in summary.scores:
        interval = f"{s.low:.2f}–{s.high:.2f}" if s.low is not None else "1 sample, no interval"
        lines.append(f"| {s.kind} | {s.variant} | {s.mean:.2f} ({interval}) | {s.n_ratings} | {s.n_samples} | {s.n_raters} |")
    lines.append("")
    for kind, a in summary.alpha.items():
        text = f"{a:.3f}" if a is not None else "not defined (fewer than 2 samples scored by 2+ raters)"
        lines.append(f"Rater agreement ({kind}): Krippendorff's alpha (interval metric) = {text}, over "
                     f"{summary.n_alpha_samples[kind]} samples scored by 2+ of {len(summary.raters)} raters.")
    return "\n".join(lines) + "\n"
