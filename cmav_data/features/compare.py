"""compare-features: the 2017 paper's choice of audio representation, as one experiment.

For each representation (STFT, CQT, MFCC, LMS) and each classifier depth (2..5 conv layers), train
``cmav_models.sound_classifier.SoundCNN`` on the train split with several seeds and score it on
the validation split. The paper picked the log-mel spectrogram with 4 conv layers.

Outputs in the output folder: ``results.json`` (every cell: accuracy per seed, mean, spread as the
population standard deviation over seeds, per-class accuracy; the best cell; feature extraction
speed), ``results.md`` (representations as rows, depths as columns, best cell in bold),
``heatmap.png`` of that table, and ``confusion_counts.png`` / ``confusion_normalized.png`` for the
best model (best cell, its best seed). Everything but the measured speeds (``extraction_speed``)
is the same for the same dataset, config and seeds, whatever the worker count: each training run
uses one torch thread and its own seeded generators.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cmav_data.atomic import atomic_path, write_text
from cmav_data.features.dataset import FeatureDataset
from cmav_data.features.specs import KINDS, FeatureSpec, make_spec, spec_from_dict
from cmav_data.features.store import batch_extractor, extract_features, load_chunk, read_pairs
from cmav_data.instruments import CLASS_NAMES
from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig


@dataclass(frozen=True)
class CompareConfig:
    """The experiment grid and training recipe (the default is the full, paper-style profile)."""

    kinds: tuple[str, ...] = KINDS
    depths: tuple[int, ...] = (2, 3, 4, 5)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    channels: int = 32
    dropout: float = 0.2
    max_train_per_class: int | None = None  # None = all; a number subsamples for quick runs
    max_validation_per_class: int | None = None
    backend: str = "fast"
    speed_chunks: int = 64  # chunks timed per representation to report extraction speed


# --fast: the whole grid in minutes on 2 cores (demo corpus): few epochs, one seed, a subsample,
# a narrower network. Measured here: a 4-layer LMS cell with 150 pairs per class and 32 channels
# takes 80 s on one core, too slow for 16 cells.
FAST_PROFILE = {"epochs": 3, "seeds": (0,), "max_train_per_class": 100, "max_validation_per_class": 40,
                "channels": 16}


@dataclass(frozen=True)
class CellTask:
    dataset_dir: str
    spec: dict[str, Any]
    depth: int
    seed: int
    config: CompareConfig


@dataclass(frozen=True)
class CellResult:
    kind: str
    depth: int
    seed: int
    accuracy: float
    class_names: list[str]  # the classes of the train split: the model's outputs
    confusion: list[list[int]]  # [true class][predicted class] over class_names


def train_cell(task: CellTask) -> CellResult:
    """Train and score one (representation, depth, seed) model; deterministic on CPU."""
    config, spec = task.config, spec_from_dict(task.spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed thread count keeps float sums, hence results, reproducible
    try:
        train = FeatureDataset(task.dataset_dir, spec, "train", config.backend, config.max_train_per_class)
        valid = FeatureDataset(task.dataset_dir, spec, "validation", config.backend,
                               config.max_validation_per_class)
        if len(train) == 0 or len(valid) == 0:
            raise ValueError(f"{task.dataset_dir}: the train and validation splits must both have pairs")
        # The model predicts the classes it was trained on, as contiguous outputs.
        classes = sorted(set(train.labels.tolist()))
        unseen = set(valid.labels.tolist()) - set(classes)
        if unseen:
            names = ", ".join(CLASS_NAMES[i] for i in sorted(unseen))
            raise ValueError(f"{task.dataset_dir}: validation class(es) {names} have no training pairs")
        output_of = torch.zeros(len(CLASS_NAMES), dtype=torch.int64)
        output_of[classes] = torch.arange(len(classes))
        train_targets, valid_targets = output_of[train.labels], output_of[valid.labels]
        torch.manual_seed(task.seed)
        model = SoundCNN(SoundCNNConfig(n_classes=len(classes), depth=task.depth, in_shape=spec.shape,
                                        channels=config.channels, dropout=config.dropout))
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                      weight_decay=config.weight_decay)
        order = torch.Generator().manual_seed(task.seed)
        for _ in range(config.epochs):
            model.train()
            for batch in torch.randperm(len(train), generator=order).split(config.batch_size):
                loss = torch.nn.functional.cross_entropy(model(train.features[batch].unsqueeze(1)),
                                                         train_targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.inference_mode():
            predicted = torch.cat([model(x.unsqueeze(1)).argmax(1) for x in valid.features.split(256)])
    finally:
        torch.set_num_threads(threads)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (valid_targets.numpy(), predicted.numpy()), 1)
    accuracy = float((predicted == valid_targets).float().mean())
    return CellResult(spec.kind, task.depth, task.seed, accuracy, [CLASS_NAMES[i] for i in classes],
                      confusion.tolist())


def extraction_speed(dataset_dir: str | os.PathLike, spec: FeatureSpec, backend: str, n_chunks: int) -> float:
    """Chunks per second of ``backend`` on the dataset's first ``n_chunks`` chunks (loaded first)."""
    pairs = read_pairs(dataset_dir)[:n_chunks]
    audio = np.stack([load_chunk(Path(dataset_dir) / p.audio_path, spec, p.id)[0] for p in pairs])
    extract = batch_extractor(spec, backend)
    extract(audio[:2])  # warm-up: filterbanks, buffers, librosa's caches
    start = time.perf_counter()
    extract(audio)
    return len(audio) / (time.perf_counter() - start)


def _summarise(cells: list[CellResult], config: CompareConfig) -> dict[str, Any]:
    class_names = cells[0].class_names  # the same train split in every cell
    grid = []
    for kind in config.kinds:
        for depth in config.depths:
            runs = sorted((c for c in cells if c.kind == kind and c.depth == depth), key=lambda c: c.seed)
            confusion = np.sum([c.confusion for c in runs], axis=0)
            per_class = {name: float(confusion[i, i] / max(1, confusion[i].sum()))
                         for i, name in enumerate(class_names) if confusion[i].sum()}
            accuracies = [c.accuracy for c in runs]
            grid.append({"kind": kind, "depth": depth, "seeds": [c.seed for c in runs],
                         "accuracy": accuracies, "mean": float(np.mean(accuracies)),
                         "std": float(np.std(accuracies)), "per_class": per_class})
    # Ties go to the earlier cell in grid order, so the choice is stable.
    best = max(grid, key=lambda g: g["mean"])
    best_run = max((c for c in cells if c.kind == best["kind"] and c.depth == best["depth"]),
                   key=lambda c: (c.accuracy, -c.seed))
    return {"classes": class_names, "grid": grid,
            "best": {"kind": best["kind"], "depth": best["depth"], "mean": best["mean"],
                     "seed": best_run.seed, "confusion": best_run.confusion}}


def markdown_table(results: dict[str, Any]) -> str:
    """Representations as rows, depths as columns, 'mean ± std' validation accuracy, best in bold."""
    config = results["config"]
    cells = {(g["kind"], g["depth"]): g for g in results["grid"]}
    best = (results["best"]["kind"], results["best"]["depth"])
    lines = ["| representation | " + " | ".join(f"{d} conv" for d in config["depths"]) + " |",
             "|---|" + "---|" * len(config["depths"])]
    for kind in config["kinds"]:
        row = []
        for depth in config["depths"]:
            g = cells[kind, depth]
            text = f"{g['mean']:.3f} ± {g['std']:.3f}"
            row.append(f"**{text}** (best)" if (kind, depth) == best else text)
        lines.append(f"| {kind} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _save_png(figure, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100, metadata={"Software": None})


def _plot(results: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config, best = results["config"], results["best"]
    means = np.array([[g["mean"] for g in results["grid"] if g["kind"] == k] for k in config["kinds"]])
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(config["depths"]), 1 + 0.7 * len(config["kinds"])))
    im = ax.imshow(means, cmap="viridis", vmin=0, vmax=1)
    for (r, c), value in np.ndenumerate(means):
        is_best = (config["kinds"][r], config["depths"][c]) == (best["kind"], best["depth"])
        ax.text(c, r, f"{value:.3f}" + ("\nbest" if is_best else ""), ha="center", va="center",
                color="white" if value < 0.6 else "black", fontweight="bold" if is_best else "normal")
    ax.set_xticks(range(len(config["depths"])), [f"{d} conv" for d in config["depths"]])
    ax.set_yticks(range(len(config["kinds"])), config["kinds"])
    ax.set_title("validation accuracy (mean over seeds)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    _save_png(fig, out_dir / "heatmap.png")
    plt.close(fig)
    counts = np.array(best["confusion"], dtype=float)
    for name, matrix, fmt in (("counts", counts, "{:.0f}"),
                              ("normalized", counts / np.maximum(counts.sum(1, keepdims=True), 1), "{:.2f}")):
        n = len(results["classes"])
        fig, ax = plt.subplots(figsize=(2 + 0.6 * n, 1.5 + 0.6 * n))
        ax.imshow(matrix, cmap="Blues")
        for (r, c), value in np.ndenumerate(matrix):
            ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(n), results["classes"], rotation=60, ha="right")
        ax.set_yticks(range(n), results["classes"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{best['kind']}, {best['depth']} conv, seed {best['seed']}")
        fig.tight_layout()
        _save_png(fig, out_dir / f"confusion_{name}.png")
        plt.close(fig)


def compare_features(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    config: CompareConfig = CompareConfig(),
    executor: concurrent.futures.Executor | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the grid; write results.json, results.md and the PNGs; return the results."""
    out_dir = Path(out_dir) if out_dir is not None else Path(dataset_dir) / "compare-features"
    specs = [make_spec(kind) for kind in config.kinds]
    speed = {}
    for spec in specs:  # extraction first, in the parent: cells then read the cache
        extract_features(dataset_dir, spec, config.backend, executor=executor, progress=progress)
        speed[spec.kind] = extraction_speed(dataset_dir, spec, config.backend, config.speed_chunks)
    tasks = [CellTask(str(dataset_dir), spec.to_dict(), depth, seed, config)
             for spec in specs for depth in config.depths for seed in config.seeds]
    runs = map(train_cell, tasks) if executor is None else executor.map(train_cell, tasks)
    cells = list(tqdm(runs, total=len(tasks), unit="model", desc="training", disable=not progress))
    results = {"config": dataclasses.asdict(config), **_summarise(cells, config),
               "extraction_speed": {k: {"backend": config.backend, "chunks_per_second": v}
                                    for k, v in speed.items()}}
    results["table_markdown"] = markdown_table(results)
    write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
    write_text(out_dir / "results.md", "# compare-features: validation accuracy\n\n" + results["table_markdown"])
    _plot(results, out_dir)
    return results
