"""A torch ``Dataset`` of (features, class index) over a built dataset, extracting features on demand.

Training code names a dataset folder, a spec and a split; the features come from the cache
(``cmav_data.features.store``), computed first if missing, and the labels from the manifest.
Items are ``(float32 tensor [1, rows, frames], int64 class index)``, the layout ``SoundCNN`` takes.
"""

from __future__ import annotations

import concurrent.futures
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from cmav_data.features.specs import FeatureSpec
from cmav_data.features.store import MANIFEST_NAME, FeatureInputError, extract_features, read_features
from cmav_data.manifest import read_manifest


class FeatureCacheWarning(UserWarning):
    """A damaged feature shard or index was found (and recomputed) while the dataset was made."""


class FeatureDataset(torch.utils.data.Dataset):
    """Pairs of one split (or all when ``split`` is None) with their features and labels.

    Pairs are ordered by class index, then manifest order. ``max_per_class`` keeps N evenly spaced
    pairs of each class (quick experiments).
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        spec: FeatureSpec,
        split: str | None = None,
        backend: str = "fast",
        max_per_class: int | None = None,
        executor: concurrent.futures.Executor | None = None,
        progress: bool = False,
    ) -> None:
        self.spec = spec
        manifest = read_manifest(Path(dataset_dir) / MANIFEST_NAME, columns=["id", "split", "class_index"])
        rows = manifest.to_pydict()
        splits = sorted(set(rows["split"]))
        if split is not None and split not in splits:  # checked before any feature is computed
            raise FeatureInputError(f"{Path(dataset_dir) / MANIFEST_NAME}: no split {split!r} "
                                    f"(its splits: {', '.join(splits)}; or None for all pairs)")
        extracted = extract_features(dataset_dir, spec, backend, executor=executor, progress=progress)
        for notice in extracted.warnings:  # a damaged shard was recomputed: say so to the training script
            warnings.warn(notice, FeatureCacheWarning, stacklevel=2)
        self.features_dir: Path = extracted.out_dir
        by_class: dict[int, list[str]] = {}
        for pair_id, pair_split, label in zip(rows["id"], rows["split"], rows["class_index"]):
            if split is None or pair_split == split:
                by_class.setdefault(label, []).append(pair_id)
        chosen, labels = [], []
        for label, members in sorted(by_class.items()):
            if max_per_class is not None and len(members) > max_per_class:
                # Evenly spaced, not the first N: consecutive pairs overlap in time (same recording).
                members = [members[i] for i in np.linspace(0, len(members) - 1, max_per_class).round().astype(int)]
            chosen += members
            labels += [label] * len(members)
        self.ids, features, _ = read_features(extracted.out_dir, chosen)
        self.features = torch.from_numpy(np.require(features, requirements="W"))  # Arrow buffers are read-only
        self.labels = torch.tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index].unsqueeze(0), self.labels[index]
