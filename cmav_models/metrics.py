"""Scores of generated samples, in a registry looked up by name so users can add their own.

A metric is a function of a :class:`Scored` record (what was generated, from which conditions,
and the pretrained judges of that modality) returning a float, or None when it does not apply
(e.g. the pose measure on generated sounds). Register one with::

    @register_metric("my_metric", "what it measures", higher_is_better=True)
    def my_metric(scored: Scored) -> float | None: ...

and ask for it with ``cmav-bench run --metric my_metric`` (after importing its module) or in
``BenchConfig.metrics``.

A metric made of per-sample values (accuracy: one 0/1 per sample) registers with a ``statistic``
and returns :class:`ItemScores` (the values and the sample each one scores); the metric is
``statistic(values)``, and the bench also gives it an interval over validation recordings (a cluster
bootstrap, ``cmav_models.stats``). Set statistics such as the Fréchet distance stay plain floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from cmav_models.train import apply_batched


@dataclass
class Scored:
    """One row of the report: samples of one modality and everything needed to judge them."""

    modality: str  # "image" | "sound"
    samples: torch.Tensor  # model-space inputs of the modality's classifier ([-1, 1] scaled)
    labels: torch.Tensor  # class index of each sample's condition
    reference: torch.Tensor  # real samples of the modality to compare distributions with
    pitch_position: torch.Tensor  # pose target of each sample's condition, NaN when unvoiced
    classifier: nn.Module  # the pretrained classifier of the modality (has .embed)
    pose_regressor: nn.Module | None  # image modality only
    device: torch.device


@dataclass(frozen=True)
class ItemScores:
    """Per-sample values of a metric; the metric's ``statistic`` of any subset is its value there."""

    values: np.ndarray  # one row per scored sample: [n] or [n, k]
    rows: np.ndarray  # index into Scored.samples of the sample each row scores


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Scored], float | None]
    description: str
    higher_is_better: bool
    items: Callable[[Scored], ItemScores | None] | None = None  # per-item metrics only
    statistic: Callable[[np.ndarray], float] | None = None  # of ItemScores.values (per-item metrics)


METRICS: dict[str, Metric] = {}


class UnknownMetricError(KeyError):
    def __str__(self) -> str:
        return self.args[0]


def register_metric(name: str, description: str, higher_is_better: bool,
                    statistic: Callable[[np.ndarray], float] | None = None):
    """Register ``fn``; with a ``statistic`` it returns ItemScores (or None) and the metric is
    ``statistic(items.values)``."""
    def decorate(fn: Callable[[Scored], float | ItemScores | None]):
        if statistic is not None:
            def value(scored: Scored) -> float | None:
                items = fn(scored)
                return None if items is None else float(statistic(items.values))
            METRICS[name] = Metric(name, value, description, higher_is_better, items=fn, statistic=statistic)
        else:
            METRICS[name] = Metric(name, fn, description, higher_is_better)
        return fn
    return decorate


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetricError(f"unknown metric {name!r} (known: {', '.join(sorted(METRICS))})") from None


@register_metric("accuracy", "top-1 accuracy of the pretrained classifier of the output modality "
                 "(the paper's metric; on real rows: the classifier on real validation data)", True,
                 statistic=np.mean)
def accuracy(scored: Scored) -> ItemScores:
    predictions = apply_batched(scored.classifier, scored.samples, scored.device).argmax(1)
    correct = (predictions == scored.labels).double().numpy()
    return ItemScores(correct, np.arange(len(correct)))


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(cov)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows a and b (as FID, other features).

    tr sqrt(C_a C_b) is taken as tr sqrt(C_a^1/2 C_b C_a^1/2), a symmetric PSD matrix: exact, and
    stable when there are fewer samples than dimensions (singular covariances), unlike sqrtm.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean)


@register_metric("frechet", "Fréchet distance between samples and real validation data in the "
                 "classifier's embedding space (on real rows: real train vs real validation)", False)
def frechet(scored: Scored) -> float:
    a = apply_batched(scored.classifier.embed, scored.samples, scored.device).double().numpy()
    b = apply_batched(scored.classifier.embed, scored.reference, scored.device).double().numpy()
    return frechet_distance(a, b)


def _pearson(pairs: np.ndarray) -> float:
    """Pearson r of the two columns; NaN when either is constant."""
    if pairs[:, 0].std() == 0 or pairs[:, 1].std() == 0:
        return float("nan")
    return float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])


def _pose_pairs(scored: Scored) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows, [n, 2] read-out and target pitch positions) of the voiced samples, or None."""
    if scored.pose_regressor is None:
        return None
    voiced = ~torch.isnan(scored.pitch_position)
    if voiced.sum() < 2:
        return None
    predicted = apply_batched(scored.pose_regressor, scored.samples[voiced], scored.device).squeeze(1)
    pairs = np.stack([predicted.double().numpy(), scored.pitch_position[voiced].double().numpy()], axis=1)
    return np.flatnonzero(voiced.numpy()), pairs


@register_metric("pose_r", "Pearson r between the pitch position a pose regressor (trained on real "
                 "images) reads from each image and the pitch position of its conditioning sound", True,
                 statistic=_pearson)
def pose_r(scored: Scored) -> ItemScores | None:
    found = _pose_pairs(scored)
    if found is None or np.isnan(_pearson(found[1])):
        return None
    return ItemScores(found[1], found[0])


@register_metric("pose_mae", "mean absolute error of that read-out pitch position (0..1 of the "
                 "instrument's range) against the conditioning sound's", False,
                 statistic=np.mean)
def pose_mae(scored: Scored) -> ItemScores | None:
    found = _pose_pairs(scored)
    return None if found is None else ItemScores(np.abs(found[1][:, 0] - found[1][:, 1]), found[0])
