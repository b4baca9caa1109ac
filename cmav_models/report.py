"""The run report: report.md (our table beside the published reference rows) and its figures.

Figures are drawn with matplotlib's Agg backend into ``figures/``: S2I samples (input LMS, real
image, one generated image per S2I variant), I2S samples (input image, real LMS, generated LMS)
and the training curves of every stage.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cmav_data.atomic import write_bytes, write_text  # noqa: E402
from cmav_data.instruments import CLASS_NAMES  # noqa: E402
from cmav_data.manifests import read_table  # noqa: E402
from cmav_models.data import Pairs, unit_to_lms  # noqa: E402
from cmav_models.metrics import get_metric  # noqa: E402

if TYPE_CHECKING:
    from cmav_models.bench import BenchConfig, RunResult

MAX_EXAMPLES = 8


def example_rows(pairs: Pairs) -> list[int]:
    """Up to MAX_EXAMPLES rows taking each class in turn (first by id), so every instrument shows."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(pairs.labels.tolist()):
        by_class.setdefault(label, []).append(i)
    queues = [by_class[k] for k in sorted(by_class)]
    rows = [q[depth] for depth in range(max(map(len, queues))) for q in queues if depth < len(q)]
    return rows[:MAX_EXAMPLES]


def _save(fig: plt.Figure, path) -> None:
    buffer = io.BytesIO()
    # Fixed metadata: no matplotlib version/date in the file, so reruns give identical bytes.
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def _image(x: torch.Tensor) -> np.ndarray:
    """An image in [-1, 1] or uint8 [3, H, W] as float [H, W, 3] in [0, 1]."""
    x = x.float() / 255 if x.dtype == torch.uint8 else (x.float() + 1) / 2
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def _lms_image(lms_db: torch.Tensor, top_db: float, size: int) -> np.ndarray:
    """An LMS in dB [1, F, T] as a colour picture [size, size, 3], low frequencies at the bottom."""
    unit = ((lms_db.float().squeeze(0) + top_db) / top_db).clamp(0, 1).flip(0)
    rgb = torch.from_numpy(matplotlib.colormaps["magma"](unit.numpy())[..., :3]).permute(2, 0, 1)
    return _image(torch.nn.functional.interpolate(rgb[None].float(), size=(size, size), mode="bilinear")[0] * 2 - 1)


def _mosaic(cells: list[list[np.ndarray]], columns: list[str], row_labels: list[str], path) -> None:
    """One picture of equal square cells (drawn as a single image: fast, and no gaps)."""
    size = cells[0][0].shape[0]
    grid = np.concatenate([np.concatenate(row, axis=1) for row in cells], axis=0)
    scale = max(1.0, 96 / size)  # small cells are shown larger
    fig = plt.figure(figsize=(grid.shape[1] * scale / 100 + 1.2, grid.shape[0] * scale / 100 + 0.5))
    ax = fig.add_axes([1.1 / (grid.shape[1] * scale / 100 + 1.2), 0.02, 0.98 - 1.1 / (grid.shape[1] * scale / 100 + 1.2),
                       1 - 0.5 / (grid.shape[0] * scale / 100 + 0.5) - 0.02])
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([(i + 0.5) * size for i in range(len(columns))], columns, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([(i + 0.5) * size for i in range(len(row_labels))], row_labels, fontsize=8)
    ax.tick_params(length=0)
    _save(fig, path)


def s2i_figure(pairs: Pairs, generated: dict[str, torch.Tensor], top_db: float, path) -> None:
    """Per example: the sound in, the real image, each S2I variant's image out."""
    names = [n for n in generated if generated[n].shape[1] == 3]
    rows = example_rows(pairs)
    size = pairs.images.shape[-1]
    cells = [[_lms_image(pairs.lms[r], top_db, size), _image(pairs.images[r]),
              *[_image(generated[n][r]) for n in names]] for r in rows]
    _mosaic(cells, ["sound in", "real image", *names], [CLASS_NAMES[int(pairs.labels[r])] for r in rows], path)


def i2s_figure(pairs: Pairs, generated: dict[str, torch.Tensor], top_db: float, path) -> None:
    """Per example: the image in, the real LMS, each I2S variant's LMS out."""
    names = [n for n in generated if generated[n].shape[1] == 1]
    rows = example_rows(pairs)
    size = pairs.images.shape[-1]
    cells = [[_image(pairs.images[r]), _lms_image(pairs.lms[r], top_db, size),
              *[_lms_image(unit_to_lms(generated[n][r], top_db), top_db, size) for n in names]] for r in rows]
    _mosaic(cells, ["image in", "real LMS", *[f"{n} LMS" for n in names]],
            [CLASS_NAMES[int(pairs.labels[r])] for r in rows], path)


def curves_figure(history: dict[str, list[dict[str, float]]], path) -> None:
    n_cols = min(4, len(history))
    n_rows = -(-len(history) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3 * n_cols, 2.4 * n_rows), squeeze=False)
    for ax in axes.flat[len(history):]:
        ax.set_visible(False)
    for ax, (stage, epochs) in zip(axes.flat, history.items()):
        for key in epochs[0] if epochs else []:
            ax.plot(range(1, len(epochs) + 1), [e[key] for e in epochs], marker="o", label=key)
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def report_markdown(result: "RunResult", config: "BenchConfig", n_classes: int, n_validation: int) -> str:
    metric_names = list(config.metrics)
    lines = [
        f"# cmav-bench run `{result.run_dir.name}`", "",
        f"Suite `{config.suite}`; {n_validation} validation pairs of {n_classes} classes "
        f"(chance accuracy {1 / n_classes:.3f}); images {config.load.image_size} px; "
        f"LMS {config.load.lms.n_mels} x {config.load.lms.n_frames}. Config: `config.json`; numbers: `metrics.json`.",
        "", "## Results on this dataset (validation split)", "",
        "| row | " + " | ".join(metric_names) + " |",
        "|---|" + "---|" * len(metric_names),
    ]
    for row, values in result.metrics.items():
        lines.append(f"| {row} | " + " | ".join(_fmt(values.get(m)) for m in metric_names) + " |")
    lines += ["", "## Published reference rows (real Sub-URMP: different data, networks and features; "
              "not directly comparable)", "", "| row | metric | split | value | source |", "|---|---|---|---|---|"]
    for ref in read_table("published_accuracies.csv"):
        lines.append(f"| {ref['model']} | {ref['metric']} | {ref['split']} | {float(ref['value']):.4f} | "
                     f"{ref['source']} |")
    lines += ["", "## Measures", ""]
    lines += [f"- **{m}** ({'higher' if get_metric(m).higher_is_better else 'lower'} is better): "
              f"{get_metric(m).description}." for m in metric_names]
    lines += [
        "- Pose target: the position of the chunk's mean F0 in the instrument's playing range (0 lowest, "
        "1 highest note of `instruments.csv`), the quantity the demo corpus draws as the bow or slide "
        "position. The regressor is an image CNN trained on real training images; on the real row its "
        "score is the ceiling the generated rows can reach. Silent/unvoiced pairs are left out.",
        "", "## Models", "",
        "- **S2I-C**: conditional GAN (projection discriminator, hinge loss), condition = the sound "
        "classifier's class posterior (softmax), standardised.",
        "- **S2I-A**: the same GAN, condition = the code of a sound autoencoder (trained to reconstruct the LMS).",
        "- **S2I-N**: S2I-C without the (real image, mismatched sound) term in the discriminator's loss "
        "(our reading of the paper's ablation).",
        "- **I2S**: the same GAN in the other direction: the image classifier's posterior in, LMS out.",
        "- Mismatched sounds are of another instrument, or (a fraction "
        f"{config.gan_training.mismatch_same_class:g}) of the same instrument at another time.",
        "", "## Figures", "",
        "![S2I samples](figures/s2i_samples.png)", "", "![I2S samples](figures/i2s_samples.png)", "",
        "![training curves](figures/training_curves.png)", "",
    ]
    return "\n".join(lines)


def write_report(result: "RunResult", config: "BenchConfig", validation: Pairs,
                 generated: dict[str, torch.Tensor]) -> None:
    figures = result.run_dir / "figures"
    top_db = config.load.lms.top_db
    s2i_figure(validation, generated, top_db, figures / "s2i_samples.png")
    i2s_figure(validation, generated, top_db, figures / "i2s_samples.png")
    curves_figure(result.history, figures / "training_curves.png")
    n_classes = len(set(validation.labels.tolist()))
    write_text(result.run_dir / "report.md", report_markdown(result, config, n_classes, len(validation)))
