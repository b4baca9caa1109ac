"""compare-features: the 2017 paper's choice of audio representation, as one fair experiment.

For each representation (STFT, CQT, MFCC, LMS), classifier depth (2..5 conv layers) and pooling,
train :class:`~cmav_models.sound_classifier.SoundCNN` with several seeds. What makes the table fair:

- Inputs are standardised per row (frequency bin or coefficient): mean and standard deviation over
  every frame of the *fit* pairs, applied to all pairs (recorded in ``results.json``), so MFCC's c0
  does not dwarf c1..c19 and every kind enters at the same scale. The features themselves share one
  fixed level reference (``cmav_data.features.specs``).
- The pooling is a config field, named in each table's caption: ``pool`` averages over frequency
  and time (the paper's classifier, as far as it is known), ``keep`` averages over time only and
  keeps the frequency rows (the bench's sound classifier). The paper's own choice could not be
  confirmed; the default profile runs both and reports both tables.
- Silent pairs (manifest ``silent``) are left out of training and scoring unless ``include_silent``.
- Selection apart from reporting: a *selection* set of whole recordings is carved from the training
  split (``selection_fraction`` of each class's training recordings; a class with one training
  recording keeps it for fitting); the cell with the best selection accuracy is chosen there and
  reported on the held-out validation split, which plays no part in the choice.
- Every cell has at least 3 seeds in every profile; cells are ``mean ± std (95% CI, n seeds)``
  (``cmav_models.stats``), and a cell is called best only when its interval overlaps no other
  cell's; otherwise the table marks which cells are tied with it.

Reruns reuse finished work: each trained cell writes ``cells/<key>.json``, the key hashing the
recipe, the cell, the inputs (feature cache key, the split rule, standardisation) and the device
type; the same command again trains nothing.

Outputs in the output folder: ``results.json``, ``results.md`` (one table per pooling) and ``results.html`` (the same, with the figures),
``heatmap_<pooling>.png`` and ``confusion_counts.png`` / ``confusion_normalized.png`` of the chosen
cell on the held-out split (summed over its seeds). Everything but ``run`` (cells trained or reused,
extraction speed) is the same
for the same dataset, config and seeds, whatever the worker count, on one device type.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cmav_data.atomic import atomic_path, write_text
from cmav_data.view.report_page import report_page
from cmav_data.features.specs import KINDS, FeatureSpec, make_spec
from cmav_data.features.store import (ARRAY_ROWS, MANIFEST_NAME, batch_extractor, extract_features, feature_array,
                                      load_chunk, read_pairs)
from cmav_data.instruments import CLASS_NAMES
from cmav_data.manifest import read_manifest
from cmav_models import stats
from cmav_models.bench import resolve_device
from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig
from cmav_models.train import batches, derive_seed

POOLINGS = {"pool": False, "keep": True}  # name -> SoundCNNConfig.keep_frequency
POOLING_CAPTIONS = {"pool": "pooling over frequency and time (keep_frequency=False)",
                    "keep": "pooling over time only, frequency rows kept (keep_frequency=True)"}
STANDARDISATION = "per row (frequency bin or coefficient): mean and std over all frames of the fit pairs"
SPLITS = ("fit", "selection", "heldout")


@dataclass(frozen=True)
class CompareConfig:
    """The experiment grid and training recipe (the default is the full, paper-style profile)."""

    kinds: tuple[str, ...] = KINDS
    depths: tuple[int, ...] = (2, 3, 4, 5)
    poolings: tuple[str, ...] = ("pool", "keep")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    channels: int = 32
    dropout: float = 0.2
    max_train_per_class: int | None = None  # fit pairs per class; None = all
    max_validation_per_class: int | None = None  # selection and held-out pairs per class; None = all
    selection_fraction: float = 0.25  # of each class's training recordings, carved out for selection
    include_silent: bool = False
    backend: str = "fast"
    speed_chunks: int = 64  # chunks timed per representation to report extraction speed


# --fast: the whole grid (4 kinds x 4 depths x 2 poolings x 3 seeds = 96 models) in a few minutes
# on 2 cores (demo corpus): 3 epochs, 60 fit / 30 selection / 30 held-out pairs per class,
# 8 channels. Seeds are never cut below 3.
FAST_PROFILE = {"epochs": 3, "max_train_per_class": 60, "max_validation_per_class": 30, "channels": 8}


@dataclass(frozen=True)
class Inputs:
    """One kind's standardised features of every chosen pair, saved once for all its cells."""

    kind: str
    path: str  # .npy float32 [N, rows, frames] (read memory-mapped by the cells)
    key: str
    labels: tuple[int, ...]  # class index of each row
    rows_of: dict[str, tuple[int, ...]]  # split -> row indices into the array


@dataclass(frozen=True)
class CellTask:
    inputs: Inputs
    depth: int
    pooling: str
    seed: int
    config: CompareConfig
    device: str
    result_path: str


def _hash(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision for training on a GPU: bf16 where supported (no loss scaling needed); None on CPU."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def train_cell(task: CellTask) -> dict[str, Any]:
    """Train one (kind, depth, pooling, seed) model on the fit rows, score selection and held-out rows.

    Deterministic on CPU (one thread, seeded batches and dropout). Scoring runs in float32. The
    result is written to ``task.result_path`` (atomically) and returned.
    """
    config, inputs, device = task.config, task.inputs, torch.device(task.device)
    features = np.load(inputs.path, mmap_mode="r")
    labels = torch.tensor(inputs.labels, dtype=torch.int64)
    classes = sorted(set(labels[list(inputs.rows_of["fit"])].tolist()))
    output_of = torch.zeros(len(CLASS_NAMES), dtype=torch.int64)
    output_of[classes] = torch.arange(len(classes))
    fit_rows = np.array(inputs.rows_of["fit"], dtype=np.int64)
    y_fit = output_of[labels[torch.from_numpy(fit_rows)]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed thread count keeps float sums, hence results, reproducible
    try:
        torch.manual_seed(task.seed)
        model = SoundCNN(SoundCNNConfig(n_classes=len(classes), depth=task.depth, in_shape=features.shape[1:],
                                        channels=config.channels, dropout=config.dropout,
                                        keep_frequency=POOLINGS[task.pooling])).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        amp = _amp_dtype(device)
        for epoch in range(config.epochs):
            torch.manual_seed(derive_seed(task.seed, "compare", epoch, "torch"))  # dropout
            order = torch.Generator().manual_seed(derive_seed(task.seed, "compare", epoch, "data"))
            model.train()
            for index in batches(len(fit_rows), config.batch_size, order):
                # One gather from the memory-mapped rows per batch: the fit set is never held in memory.
                x = torch.from_numpy(features[fit_rows[index.numpy()]]).unsqueeze(1).to(device)
                y = y_fit[index].to(device)
                with torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext():
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        model.eval()
        scores = {}
        for split in ("selection", "heldout"):
            rows = np.array(inputs.rows_of[split], dtype=np.int64)
            with torch.inference_mode():  # float32: no autocast when scoring
                predicted = torch.cat([model(torch.from_numpy(np.ascontiguousarray(features[rows[i:i + 256]]))
                                             .unsqueeze(1).to(device)).argmax(1).cpu()
                                       for i in range(0, len(rows), 256)])
            targets = output_of[labels[torch.from_numpy(rows)]]
            confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
            np.add.at(confusion, (targets.numpy(), predicted.numpy()), 1)
            scores[split] = {"accuracy": float((predicted == targets).float().mean()),
                             "correct": (predicted == targets).int().tolist(), "confusion": confusion.tolist()}
    finally:
        torch.set_num_threads(threads)
    result = {"kind": inputs.kind, "depth": task.depth, "pooling": task.pooling, "seed": task.seed,
              "device": device.type, "classes": [CLASS_NAMES[i] for i in classes],
              "rows_after_convs": model.rows_out, **scores}
    write_text(task.result_path, json.dumps(result) + "\n")
    return result


def _recording_rule(config: CompareConfig) -> dict[str, Any]:
    return {"selection_fraction": config.selection_fraction, "include_silent": config.include_silent,
            "max_train_per_class": config.max_train_per_class,
            "max_validation_per_class": config.max_validation_per_class}


def _evenly(members: list[str], cap: int | None) -> list[str]:
    # Evenly spaced, not the first N: consecutive pairs overlap in time (same recording).
    if cap is None or len(members) <= cap:
        return members
    return [members[i] for i in np.linspace(0, len(members) - 1, cap).round().astype(int)]


def split_pairs(dataset_dir: str | os.PathLike, config: CompareConfig) -> tuple[dict[str, list[str]], dict]:
    """Pair ids of the fit, selection and held-out sets (by class, then manifest order), and counts.

    The selection set is whole training recordings: per class, ``selection_fraction`` of its training
    recordings (at least one when it has two or more), picked by a hash of their names.
    """
    path = Path(dataset_dir) / MANIFEST_NAME
    rows = read_manifest(path, columns=["id", "split", "class_index", "recording", "silent"]).to_pydict()
    left_out = {"train": 0, "validation": 0}
    by = {}  # (split, class) -> recording -> ids
    for pair_id, split, label, recording, silent in zip(rows["id"], rows["split"], rows["class_index"],
                                                        rows["recording"], rows["silent"]):
        if silent and not config.include_silent:
            left_out[split] = left_out.get(split, 0) + 1
            continue
        by.setdefault((split, label), {}).setdefault(recording, []).append(pair_id)
    ids = {name: [] for name in SPLITS}
    selection_recordings = []
    for label in sorted({label for _, label in by}):
        train = by.get(("train", label), {})
        names = sorted(train, key=lambda r: hashlib.sha256(r.encode()).hexdigest())
        n_select = max(1, round(config.selection_fraction * len(names))) if len(names) > 1 else 0
        chosen = set(names[:n_select])
        selection_recordings += sorted(chosen)
        fit = [i for r in sorted(train) if r not in chosen for i in train[r]]
        selection = [i for r in sorted(chosen) for i in train[r]]
        heldout = [i for r in sorted(by.get(("validation", label), {})) for i in by[("validation", label)][r]]
        ids["fit"] += _evenly(fit, config.max_train_per_class)
        ids["selection"] += _evenly(selection, config.max_validation_per_class)
        ids["heldout"] += _evenly(heldout, config.max_validation_per_class)
    fit_classes = {label for (split, label), members in by.items() if split == "train"}
    unseen = {label for split, label in by if split == "validation"} - fit_classes
    if unseen:
        names = ", ".join(CLASS_NAMES[i] for i in sorted(unseen))
        raise ValueError(f"{path}: validation class(es) {names} have no training pairs")
    for name in SPLITS:
        if not ids[name]:
            what = {"fit": "training pairs", "heldout": "validation pairs",
                    "selection": "class with two or more training recordings to carve a selection set from"}[name]
            raise ValueError(f"{path}: no {what} (after leaving silent pairs out)" if name != "selection"
                             else f"{path}: no {what}")
    counts = {"silent_left_out": None if config.include_silent else left_out,
              "pairs": {name: len(ids[name]) for name in SPLITS},
              "selection_recordings": selection_recordings}
    return ids, counts


def _row_moments(fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and (population) std over every frame of ``fit`` [N, rows, frames], in float64,
    read ARRAY_ROWS pairs at a time (two passes: the squared deviations from the final mean)."""
    count = fit.shape[0] * fit.shape[2]
    total = np.zeros(fit.shape[1])
    for i in range(0, len(fit), ARRAY_ROWS):
        total += fit[i:i + ARRAY_ROWS].sum(axis=(0, 2), dtype=np.float64)
    mean = total / count
    squares = np.zeros(fit.shape[1])
    for i in range(0, len(fit), ARRAY_ROWS):
        squares += np.square(fit[i:i + ARRAY_ROWS] - mean[None, :, None]).sum(axis=(0, 2))
    return mean, np.sqrt(squares / count)


def prepare_inputs(dataset_dir: str | os.PathLike, spec: FeatureSpec, ids: dict[str, list[str]], cache_key: str,
                   features_dir: Path, out_dir: Path, needed: bool) -> tuple[Inputs, dict]:
    """Standardise ``spec``'s features per row on the fit pairs; save them once (when ``needed``)."""
    key = _hash({"features": cache_key, "ids": ids, "standardisation": STANDARDISATION})[:16]
    path = out_dir / "inputs" / f"{spec.kind}-{key}.npy"
    stats_path = path.with_suffix(".json")
    order = [i for name in SPLITS for i in ids[name]]
    starts = np.cumsum([0] + [len(ids[name]) for name in SPLITS])
    rows_of = {name: tuple(range(int(starts[k]), int(starts[k + 1]))) for k, name in enumerate(SPLITS)}
    if (needed and not path.is_file()) or not stats_path.is_file():
        array = feature_array(features_dir, order)  # memory-mapped: streamed below, ARRAY_ROWS pairs at a time
        for notice in array.warnings:
            print(f"warning: {notice}", file=sys.stderr)
        features, n_fit = array.values, len(ids["fit"])
        mean, std = _row_moments(features[:n_fit])
        # A constant row (e.g. at the floor in every fit pair) would divide by zero: leave it centred.
        scale = np.where(std > 1e-6, std, 1.0)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npy") as tmp:
            standardised = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=features.shape)
            for i in range(0, len(features), ARRAY_ROWS):
                standardised[i:i + ARRAY_ROWS] = (features[i:i + ARRAY_ROWS] - mean[None, :, None]) / scale[None, :, None]
            standardised.flush()
            del standardised
        record = {"method": STANDARDISATION, "fitted_on_pairs": n_fit,
                  "mean": mean.round(6).tolist(), "std": std.round(6).tolist()}
        write_text(stats_path, json.dumps(record) + "\n")
    labels_of = dict(zip(*[read_manifest(Path(dataset_dir) / MANIFEST_NAME, columns=["id", "class_index"])
                           .column(c).to_pylist() for c in ("id", "class_index")]))
    inputs = Inputs(spec.kind, str(path), key, tuple(labels_of[i] for i in order), rows_of)
    return inputs, json.loads(stats_path.read_text())


def extraction_speed(dataset_dir: str | os.PathLike, spec: FeatureSpec, backend: str, n_chunks: int) -> float:
    """Chunks per second of ``backend`` on the dataset's first ``n_chunks`` chunks (loaded first)."""
    pairs = read_pairs(dataset_dir)[:n_chunks]
    audio = np.stack([load_chunk(Path(dataset_dir) / p.audio_path, spec, p.id)[0] for p in pairs])
    extract = batch_extractor(spec, backend)
    extract(audio[:2])  # warm-up: filterbanks, buffers, librosa's caches
    start = time.perf_counter()
    extract(audio)
    return len(audio) / (time.perf_counter() - start)


def cell_name(kind: str, depth: int) -> str:
    return f"{kind}, {depth} conv"


def summarise(cells: list[dict], config: CompareConfig, heldout_recordings: list[str]) -> dict[str, Any]:
    """Per pooling: every cell's selection accuracy over seeds, the best or tied cells, and the chosen
    cell's held-out accuracy (over seeds, and a bootstrap over held-out recordings)."""
    tables = {}
    for pooling in config.poolings:
        grid, summaries = [], {}
        for kind in config.kinds:
            for depth in config.depths:
                runs = sorted((c for c in cells if (c["kind"], c["depth"], c["pooling"]) == (kind, depth, pooling)),
                              key=lambda c: c["seed"])
                summary = stats.summarize([c["selection"]["accuracy"] for c in runs])
                summaries[cell_name(kind, depth)] = summary
                grid.append({"kind": kind, "depth": depth, "seeds": [c["seed"] for c in runs],
                             "selection": summary.to_dict(), "text": stats.format_summary(summary),
                             "rows_after_convs": runs[0].get("rows_after_convs") if runs else None})
        verdict = stats.best_or_tied(summaries)
        chosen = next(g for g in grid if cell_name(g["kind"], g["depth"]) == verdict.best)
        runs = [c for c in cells if (c["kind"], c["depth"], c["pooling"]) == (chosen["kind"], chosen["depth"], pooling)]
        heldout = stats.summarize([c["heldout"]["accuracy"] for c in runs])
        per_pair = np.mean([c["heldout"]["correct"] for c in runs], axis=0)  # over seeds
        groups = heldout_recordings
        interval = stats.cluster_bootstrap(per_pair, groups, seed=0) if len(set(groups)) > 1 else None
        tables[pooling] = {
            "caption": POOLING_CAPTIONS[pooling], "grid": grid, "best": verdict.best if verdict.resolved else None,
            "tied": list(verdict.tied) if not verdict.resolved else [],
            "chosen": {"kind": chosen["kind"], "depth": chosen["depth"], "heldout": heldout.to_dict(),
                       "heldout_text": stats.format_summary(heldout),
                       "heldout_recording_bootstrap_95": list(interval) if interval else None,
                       "confusion": np.sum([c["heldout"]["confusion"] for c in runs], axis=0).tolist()}}
    return tables


def markdown_tables(results: dict[str, Any]) -> str:
    """One table per pooling: representations as rows, depths as columns, selection accuracy."""
    config, counts = results["config"], results["counts"]
    silent = counts["silent_left_out"]
    silent_text = (f"silent pairs left out: {silent['train']} train, {silent['validation']} validation"
                   if silent is not None else "silent pairs included")
    out = []
    for pooling in config["poolings"]:
        table = results["tables"][pooling]
        marks = {table["best"]: "best"} if table["best"] else {name: "tied" for name in table["tied"]}
        out.append(f"**Selection accuracy, {table['caption']}.** Inputs standardised per row on the fit pairs; "
                   f"{counts['pairs']['fit']} fit / {counts['pairs']['selection']} selection pairs "
                   f"(whole training recordings held out); {silent_text}; mean ± std (95% CI) over seeds "
                   f"{', '.join(map(str, config['seeds']))}.")
        out.append("")
        out.append("| representation | " + " | ".join(f"{d} conv" for d in config["depths"]) + " |")
        out.append("|---|" + "---|" * len(config["depths"]))
        cells = {(g["kind"], g["depth"]): g for g in table["grid"]}
        for kind in config["kinds"]:
            row = []
            for depth in config["depths"]:
                mark = marks.get(cell_name(kind, depth))
                text = cells[kind, depth]["text"]
                row.append(f"**{text}** ({mark})" if mark == "best" else f"{text} ({mark})" if mark else text)
            out.append(f"| {kind} | " + " | ".join(row) + " |")
        chosen = table["chosen"]
        verdict = (f"best: {table['best']}" if table["best"] else
                   f"no single best: {'; '.join(table['tied'])} are tied (their intervals overlap the best's)")
        boot = chosen["heldout_recording_bootstrap_95"]
        boot_text = (f"; 95% bootstrap over held-out recordings {stats.format_interval(*boot)}" if boot else "")
        out.append("")
        out.append(f"{verdict}. Chosen on selection (highest mean): {cell_name(chosen['kind'], chosen['depth'])}; "
                   f"held-out accuracy ({counts['pairs']['heldout']} pairs): {chosen['heldout_text']}{boot_text}.")
        one_row = [cell_name(g["kind"], g["depth"]) for g in table["grid"] if g.get("rows_after_convs") == 1]
        if one_row and len(config["poolings"]) > 1:
            out.append("")
            out.append(f"One frequency row is left after the conv stack of {'; '.join(one_row)}: there both "
                       "poolings are the same network, so both tables show the same numbers.")
        out.append("")
    return "\n".join(out)


def _save_png(figure, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100, metadata={"Software": None})


def _plot(results: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = results["config"]
    for pooling in config["poolings"]:
        table = results["tables"][pooling]
        means = np.array([[g["selection"]["mean"] for g in table["grid"] if g["kind"] == k] for k in config["kinds"]])
        fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(config["depths"]), 1 + 0.7 * len(config["kinds"])))
        im = ax.imshow(means, cmap="viridis", vmin=0, vmax=1)
        for (r, c), value in np.ndenumerate(means):
            name = cell_name(config["kinds"][r], config["depths"][c])
            mark = "\nbest" if name == table["best"] else "\ntied" if name in table["tied"] else ""
            ax.text(c, r, f"{value:.3f}{mark}", ha="center", va="center", color="white" if value < 0.6 else "black")
        ax.set_xticks(range(len(config["depths"])), [f"{d} conv" for d in config["depths"]])
        ax.set_yticks(range(len(config["kinds"])), config["kinds"])
        ax.set_title(f"selection accuracy, {pooling} frequency (mean of {len(config['seeds'])} seeds)")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        _save_png(fig, out_dir / f"heatmap_{pooling}.png")
        plt.close(fig)
    pooling = config["poolings"][-1]
    chosen = results["tables"][pooling]["chosen"]
    counts = np.array(chosen["confusion"], dtype=float)
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
        ax.set_title(f"held-out: {chosen['kind']}, {chosen['depth']} conv, {pooling} frequency, all seeds")
        fig.tight_layout()
        _save_png(fig, out_dir / f"confusion_{name}.png")
        plt.close(fig)


def compare_features(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    config: CompareConfig = CompareConfig(),
    executor: concurrent.futures.Executor | None = None,
    progress: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Run the grid (reusing finished cells); write results.json, results.md and the PNGs; return the results."""
    if len(config.seeds) < 1 or not set(config.poolings) <= set(POOLINGS):
        raise ValueError(f"need at least one seed and poolings among {sorted(POOLINGS)}")
    if not 0 < config.selection_fraction <= 0.5:
        raise ValueError(f"selection_fraction must be in (0, 0.5], not {config.selection_fraction}")
    out_dir = Path(out_dir) if out_dir is not None else Path(dataset_dir) / "compare-features"
    device_type = resolve_device(device)
    ids, counts = split_pairs(dataset_dir, config)
    recipe = {k: v for k, v in dataclasses.asdict(config).items()
              if k not in ("kinds", "depths", "poolings", "seeds", "speed_chunks", "backend")}
    speed, standardisation, tasks, cached = {}, {}, [], []
    for kind in config.kinds:  # extraction first, in the parent: cells then read the cache
        spec = make_spec(kind)
        extracted = extract_features(dataset_dir, spec, config.backend, executor=executor, progress=progress)
        for warning in extracted.warnings:  # a damaged shard was recomputed: say so, as extract-features does
            print(f"warning: {warning}", file=sys.stderr)
        speed[kind] = extraction_speed(dataset_dir, spec, config.backend, config.speed_chunks)
        cells = [(depth, pooling, seed) for depth in config.depths for pooling in config.poolings
                 for seed in config.seeds]
        input_key = _hash({"features": extracted.cache_key, "rule": _recording_rule(config),
                           "standardisation": STANDARDISATION})
        paths = {cell: out_dir / "cells" / f"{kind}-{_hash([recipe, input_key, cell, device_type.type])[:16]}.json"
                 for cell in cells}
        missing = [cell for cell in cells if not paths[cell].is_file()]
        inputs, standardisation[kind] = prepare_inputs(dataset_dir, spec, ids, extracted.cache_key,
                                                       extracted.out_dir, out_dir, needed=bool(missing))
        cached += [json.loads(paths[cell].read_text()) for cell in cells if cell not in missing]
        tasks += [CellTask(inputs, d, p, s, config, str(device_type), str(paths[d, p, s])) for d, p, s in missing]
    runs = map(train_cell, tasks) if executor is None else executor.map(train_cell, tasks)
    trained = list(tqdm(runs, total=len(tasks), unit="model", desc="training", disable=not progress))
    cells = cached + trained
    recording_of = dict(zip(*[read_manifest(Path(dataset_dir) / MANIFEST_NAME, columns=["id", "recording"])
                              .column(c).to_pylist() for c in ("id", "recording")]))
    results = {"config": dataclasses.asdict(config), "device": device_type.type,
               "amp": str(_amp_dtype(device_type)).removeprefix("torch.") if _amp_dtype(device_type) else None,
               "counts": counts, "classes": cells[0]["classes"],
               "level_reference": {k: {f: make_spec(k).to_dict()[f] for f in ("db_ref", "floor_db", "top_db")}
                                   for k in config.kinds},
               "standardisation": standardisation,
               "tables": summarise(cells, config, [recording_of[i] for i in ids["heldout"]]),
               # What this run did (differs between a first run and a rerun): not part of the result.
               "run": {"cells_trained": len(trained), "cells_reused": len(cached),
                       "extraction_speed": {k: {"backend": config.backend, "chunks_per_second": v}
                                            for k, v in speed.items()}}}
    results["table_markdown"] = markdown_tables(results)
    write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
    markdown = "# compare-features\n\n" + results["table_markdown"]
    write_text(out_dir / "results.md", markdown)
    _plot(results, out_dir)
    # results.html: the same tables, and the figures just drawn (relative paths: the folder is self-contained).
    figures = [f"![{p.stem}]({p.name})" for p in sorted(out_dir.glob("heatmap_*.png"))] + \
        [f"![{p.stem}]({p.name})" for p in sorted(out_dir.glob("confusion_*.png"))]
    write_text(out_dir / "results.html", report_page("compare-features", markdown + "\n\n## Figures\n\n" + "\n\n".join(figures)))
    return results
