"""Scores of generated samples, in a registry looked up by name so users can add their own.

A metric is a function of a :class:`Scored` record (what was generated, from which conditions,
and the pretrained judges of that modality) returning a float, or None when it does not apply
(e.g. the pose measure on generated sounds). Register one with::

    @register_metric("my_metric", "what it measures", higher_is_better=True)
    def my_metric(scored: Scored) -> float | None: ...

and ask for it with ``cmav-bench run --metric my_metric`` (after importing its module) or in
``BenchConfig.metrics``.
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
class Metric:
    name: str
    fn: Callable[[Scored], float | None]
    description: str
    higher_is_better: bool


METRICS: dict[str, Metric] = {}


class UnknownMetricError(KeyError):
    def __str__(self) -> str:
        return self.args[0]


def register_metric(name: str, description: str, higher_is_better: bool):
    def decorate(fn: Callable[[Scored], float | None]):
        METRICS[name] = Metric(name, fn, description, higher_is_better)
        return fn
    return decorate


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetricError(f"unknown metric {name!r} (known: {', '.join(sorted(METRICS))})") from None


@register_metric("accuracy", "top-1 accuracy of the pretrained classifier of the output modality "
                 "(the paper's metric; on real rows: the classifier on real validation data)", True)
def accuracy(scored: Scored) -> float:
    predictions = apply_batched(scored.classifier, scored.samples, scored.device).argmax(1)
    return float((predictions == scored.labels).float().mean())


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


def _pose_pairs(scored: Scored) -> tuple[np.ndarray, np.ndarray] | None:
    if scored.pose_regressor is None:
        return None
    voiced = ~torch.isnan(scored.pitch_position)
    if voiced.sum() < 2:
        return None
    predicted = apply_batched(scored.pose_regressor, scored.samples[voiced], scored.device).squeeze(1)
    return predicted.double().numpy(), scored.pitch_position[voiced].double().numpy()


@register_metric("pose_r", "Pearson r between the pitch position a pose regressor (trained on real "
                 "images) reads from each image and the pitch position of its conditioning sound", True)
def pose_r(scored: Scored) -> float | None:
    pairs = _pose_pairs(scored)
    if pairs is None or pairs[0].std() == 0 or pairs[1].std() == 0:
        return None
    return float(np.corrcoef(*pairs)[0, 1])


@register_metric("pose_mae", "mean absolute error of that read-out pitch position (0..1 of the "
                 "instrument's range) against the conditioning sound's", False)
def pose_mae(scored: Scored) -> float | None:
    pairs = _pose_pairs(scored)
    return None if pairs is None else float(np.abs(pairs[0] - pairs[1]).mean())
