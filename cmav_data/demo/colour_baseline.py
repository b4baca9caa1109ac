"""The colour-leak check of an image set: a nearest-centroid classifier on each image's mean colour.

If classes can be told apart by the mean colour of a picture (and its spread), an image classifier's
accuracy measures colour, not instruments. Features: per-channel mean and standard deviation of the
RGB pixels, standardised with the training set's mean and spread; each test image goes to the class
of the nearest training centroid (Euclidean). The interval is a percentile bootstrap over recordings
(a recording's images are resampled together: they share one player, one room and one light).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def colour_features(images: np.ndarray) -> np.ndarray:
    """[N, 6] RGB means and standard deviations of uint8 images [N, H, W, 3] (channels last)."""
    pixels = np.asarray(images).reshape(len(images), -1, 3).astype(np.float64)
    return np.concatenate([pixels.mean(axis=1), pixels.std(axis=1)], axis=1)


def nearest_centroid(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Predicted labels of ``test_x``: the class of the nearest centroid of the standardised training features."""
    centre, spread = train_x.mean(axis=0), train_x.std(axis=0) + 1e-12
    train_z, test_z = (train_x - centre) / spread, (test_x - centre) / spread
    classes = np.unique(train_y)
    centroids = np.stack([train_z[train_y == c].mean(axis=0) for c in classes])
    distances = ((test_z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return classes[distances.argmin(axis=1)]


def bootstrap_accuracy(correct: np.ndarray, groups: Sequence[str], n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """(accuracy, low, high): pooled accuracy and its percentile interval, resampling whole groups."""
    correct = np.asarray(correct, dtype=np.float64)
    names, group_of = np.unique(np.asarray(groups), return_inverse=True)
    hits = np.bincount(group_of, weights=correct, minlength=len(names))
    sizes = np.bincount(group_of, minlength=len(names)).astype(np.float64)
    draws = np.random.default_rng(seed).integers(0, len(names), size=(n_boot, len(names)))
    resampled = hits[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(correct.mean()), float(low), float(high)
