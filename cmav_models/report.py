"""The run report: report.md (our tables with intervals, beside the published reference rows) and
its figures, from plain records: the ``metrics.json`` payload and :class:`FigureInputs`.

Every number is printed through ``cmav_models.stats.format_summary`` (n, seeds, interval; one seed
says "no interval", never ``± 0.000``). Figures are drawn with matplotlib's Agg backend into
``figures/``: S2I samples (input LMS, real image, one generated image per S2I variant), I2S samples
(input image, real LMS, generated LMS), one example per instrument, and the training curves of every
stage. ``audio/`` holds the same examples' sounds: every generated LMS and the real LMS it is
compared with, inverted the same way (Griffin-Lim, ``cmav_data.features.inverse``) at one fixed peak
level, so they can be heard side by side; scoring stays on the LMS.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cmav_data.atomic import write_bytes, write_text  # noqa: E402
from cmav_data.features.inverse import DEFAULT_PEAK_DBFS, lms_to_audio, write_wav  # noqa: E402
from cmav_data.features.specs import LmsSpec  # noqa: E402
from cmav_data.instruments import CLASS_NAMES  # noqa: E402
from cmav_data.manifests import read_table  # noqa: E402
from cmav_models.data import Pairs, unit_to_lms  # noqa: E402
from cmav_models.stats import Summary, format_interval, format_summary  # noqa: E402


def example_rows(pairs: Pairs) -> list[int]:
    """One row per class present (its first by id), in class order: every instrument shows once."""
    first: dict[int, int] = {}
    for i, label in enumerate(pairs.labels.tolist()):
        first.setdefault(label, i)
    return [first[k] for k in sorted(first)]


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


@dataclass
class FigureInputs:
    """What the figures show: validation examples and one seed's samples generated for them."""

    examples: Pairs  # the validation rows shown (example_rows of the validation split)
    generated: dict[str, torch.Tensor]  # row name -> that seed's samples for those rows
    lms: LmsSpec  # the features' spec: the LMS scale and its inversion to sound
    seed: int
    history: dict[str, list[dict[str, float]]]  # stage -> per-epoch losses

    @property
    def top_db(self) -> float:
        return self.lms.top_db


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def write_audio(figures: FigureInputs, run_dir: Path) -> list[tuple[str, dict[str, str]]]:
    """WAVs of every example's real LMS and of each I2S row's LMS for it, in ``audio/seed-<k>/``; per
    example (instrument, {column: path relative to the run folder}). A seed's examples and samples are
    fixed, so files already there are kept (the inversion costs about a second each)."""
    folder = run_dir / "audio" / f"seed-{figures.seed}"
    names = [n for n, g in figures.generated.items() if g.shape[1] == 1]
    listing = []
    for i, label in enumerate(figures.examples.labels.tolist()):
        instrument = CLASS_NAMES[int(label)]
        sounds = {"real LMS": figures.examples.lms[i, 0]}
        sounds.update({n: unit_to_lms(figures.generated[n][i, 0], figures.top_db) for n in names})
        files = {}
        for column, lms_db in sounds.items():
            path = folder / f"{i:02d}_{_slug(instrument)}_{_slug(column.replace(' LMS', ''))}.wav"
            if not path.is_file():
                write_wav(path, lms_to_audio(lms_db.float().numpy(), figures.lms, seed=i), figures.lms.sample_rate)
            files[column] = path.relative_to(run_dir).as_posix()
        listing.append((instrument, files))
    return listing


def _digits(value: float) -> int:
    return 1 if abs(value) >= 10 else 3


def summary_text(record: dict | None, unit: str = "seed") -> str:
    """``format_summary`` of a summary in metrics.json (1 decimal from 10 up, else 3); "–" for None."""
    if record is None:
        return "–"
    return format_summary(Summary.from_dict(record), _digits(record["mean"]), unit=unit)


def _per_seed(values: list[float]) -> str:
    return ", ".join(f"{v:.{_digits(v)}f}" for v in values)


def _signed(values: list[float]) -> str:
    return ", ".join(f"{v:+.{_digits(v)}f}" for v in values)


def metric_tables(payload: dict) -> list[str]:
    seeds = payload["seeds"]
    lines = []
    for name, info in payload["metrics"].items():
        lines += [f"### {name} ({'higher' if info['higher_is_better'] else 'lower'} is better)", "",
                  "| row | mean ± s.d. over seeds (95% CI over seeds) | 95% CI over validation recordings | "
                  "per seed | samples |", "|---|---|---|---|---|"]
        for row, record in payload["rows"].items():
            m = record["metrics"][name]
            if m is None:
                lines.append(f"| {row} | – | – | – | – |")
                continue
            real = record["kind"] != "generated"
            unit = "judge training" if real else "seed"
            recordings = "–" if m["recordings_interval"] is None else format_interval(
                *m["recordings_interval"], digits=_digits(m["mean"]) - 1 if _digits(m["mean"]) > 1 else 1)
            per_seed = "fixed judges" if real else _per_seed(m["per_seed"])
            samples = m["n_samples"] if m["n_samples"] is not None else payload["data"]["validation_pairs"]
            lines.append(f"| {row} | {summary_text(m, unit)} | {recordings} | {per_seed} | {samples} |")
        lines.append("")
    if len(seeds) == 1:
        lines += ["One seed: the rows have no interval over seeds; the interval over validation recordings "
                  "covers the validation set only, not the spread of training.", ""]
    return lines


def per_class_table(payload: dict) -> list[str]:
    """Accuracy per instrument, mean over seeds (the per-seed values are in metrics.json)."""
    rows = {row: r["per_class_accuracy"] for row, r in payload["rows"].items() if r.get("per_class_accuracy")}
    if not rows:
        return []
    classes = list(next(iter(rows.values())))
    counts = {c: next(iter(rows.values()))[c]["n_samples"] for c in classes}
    lines = ["## Accuracy per instrument (mean over seeds; n = validation samples of the class)", "",
             "| row | " + " | ".join(f"{c} (n={counts[c]})" for c in classes) + " |",
             "|---|" + "---|" * len(classes)]
    for row, per_class in rows.items():
        lines.append(f"| {row} | " + " | ".join(f"{per_class[c]['mean']:.2f}" for c in classes) + " |")
    return lines + [""]


def paired_table(payload: dict) -> list[str]:
    if not payload["paired"]:
        return []
    lines = ["## Paired comparisons (same seeds, a − b per seed)", "",
             "| comparison | metric | per-seed difference | mean ± s.d. (95% CI) | verdict |", "|---|---|---|---|---|"]
    for p in payload["paired"]:
        cell = summary_text(p["summary"])
        verdict = p["sentence"] + (f" ({p['better']} better)" if p["better"] else "")
        lines.append(f"| {p['a']} − {p['b']} | {p['metric']} | {_signed(p['differences'])} | {cell} | {verdict} |")
    return lines + [""]


def audio_table(listing: list[tuple[str, dict[str, str]]]) -> list[str]:
    if not listing:
        return []
    columns = list(listing[0][1])
    lines = [f"## Sound (seed's examples, one per instrument; Griffin-Lim, peak {DEFAULT_PEAK_DBFS:g} dBFS)", "",
             "Every LMS, real or generated, is turned into sound the same way: librosa's mel inversion "
             "with the features' own parameters and level reference, 32 Griffin-Lim iterations from seeded "
             "phases, each file scaled to the same peak level (so loudness is not compared). The inversion "
             "itself is lossy: listen to the real row to hear what it does to a real LMS.", "",
             "| instrument | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for instrument, files in listing:
        lines.append(f"| {instrument} | " + " | ".join(f"[wav]({files[c]})" for c in columns) + " |")
    return lines + [""]


def _judge_pairs(judges: dict) -> str:
    """How many training pairs the judges learnt from, and the suite's cap on them."""
    n = judges.get("train_pairs")
    cap = judges.get("max_train")
    counted = "an unrecorded number of training pairs" if n is None else f"{n} training pairs"
    return counted + ("" if cap is None else f" (at most {cap}: a seeded sample when there are more)")


def report_markdown(payload: dict, figure_seed: int, audio: list[tuple[str, dict[str, str]]] = (),
                    n_examples: int = 0) -> str:
    data, setup, judges = payload["data"], payload["setup"], payload["judges"]
    seeds = payload["seeds"]
    silent = ("silent pairs included (`--include-silent`)" if data["include_silent"] else
              f"silent pairs left out: {data['silent_left_out']['train']} train, "
              f"{data['silent_left_out']['validation']} validation")
    lines = [
        f"# cmav-bench run `{payload['run']}`", "",
        f"Suite `{payload['suite']}`; seeds {', '.join(map(str, seeds))} ({len(seeds)} seed"
        f"{'' if len(seeds) == 1 else 's'}); {data['train_pairs']} training and {data['validation_pairs']} "
        f"validation pairs ({data['validation_recordings']} validation recordings) of {data['classes']} classes "
        f"(chance accuracy {1 / data['classes']:.3f}); {silent}; images {setup['image_size']} px; "
        f"LMS {setup['lms'][0]} x {setup['lms'][1]}. Dataset manifest sha256 `{data['manifest_sha256']}`. "
        "Config: `config.json`; every number with its per-seed values: `metrics.json` (also per-class "
        "accuracy of generated samples).", "",
        f"Judges (fixed, trained once with seed {judges['seed']} on {_judge_pairs(judges)}, silent pairs "
        f"{'included' if judges['include_silent'] else 'left out'}): `judges.json` sha256 `{judges['sha256']}`. "
        "Every seed is scored by the same judges, so a seed varies the encoders and generators only.", "",
        "## Results on this dataset (validation split)", "",
        f"- Over seeds: {payload['intervals']['seeds']}.",
        f"- Over validation recordings: {payload['intervals']['recordings']}. Given for metrics made of "
        "per-sample values (accuracy, pose); the Fréchet distance is a statistic of the whole set (and biased "
        "at small n), so it has the interval over seeds only.",
        "- The real rows are the fixed judges on real validation data: one training, so no interval over seeds.",
        "",
    ]
    lines += metric_tables(payload)
    lines += per_class_table(payload)
    lines += paired_table(payload)
    lines += ["## Published reference rows (real Sub-URMP: different data, networks and features; "
              "not directly comparable)", "", "| row | metric | split | value | source |", "|---|---|---|---|---|"]
    for ref in read_table("published_accuracies.csv"):
        lines.append(f"| {ref['model']} | {ref['metric']} | {ref['split']} | {float(ref['value']):.4f} | "
                     f"{ref['source']} |")
    lines += ["", "## Measures", ""]
    lines += [f"- **{m}** ({'higher' if info['higher_is_better'] else 'lower'} is better): {info['description']}."
              for m, info in payload["metrics"].items()]
    lines += [
        "- Pose target: the position of the chunk's mean F0 in the instrument's playing range (0 lowest, "
        "1 highest note of `instruments.csv`), the quantity the demo corpus draws as the bow or slide "
        "position. The regressor is an image CNN trained on real training images; on the real row its "
        "score is the ceiling the generated rows can reach. Silent/unvoiced pairs are left out.",
        "", "## Models", "",
        *[f"- **{name}**: {text}." for name, text in setup["models"].items()],
        ("- Mismatched sounds of the paper's S2I GANs (S2I-C; I2S always uses another instrument): "
         + ("another instrument (instrument-oriented generation)." if setup["mismatch_kind"] == "instrument" else
            "the same instrument at a pitch position at least "
            f"{setup['pose_margin']:g} away (pose-oriented generation; rows without such a partner, or unvoiced, "
            "take another instrument)."))
        + (" The projection rows' mismatches: another instrument, or (a fraction "
           f"{setup['mismatch_same_class']:g}) the same instrument at another time."
           if any(n.endswith("-proj") for n in setup["models"]) else ""),
        "- Condition encoders are trained with every seed, separately from the judges (their own seed "
        "stream): the judges never condition, train or select the models they score.",
        "", f"## Figures (samples of seed {figure_seed})", "",
        f"Each grid shows {n_examples} validation examples (one per instrument present) and one sample per "
        f"row for each, from seed {figure_seed}: an illustration, not a measure. Every number above rests on "
        f"all {data['validation_pairs']} validation pairs (one generated sample each) per seed; the Fréchet "
        "distance and KID compare them with the real validation set (the real rows: real training against "
        "real validation data). The Fréchet distance is biased upwards at small n (it shrinks as n grows "
        "even between equal distributions), KID is not; neither is comparable with FID on Inception features.",
        "",
        "![S2I samples](figures/s2i_samples.png)", "", "![I2S samples](figures/i2s_samples.png)", "",
        "![training curves](figures/training_curves.png)", "",
    ]
    lines += audio_table(list(audio))
    return "\n".join(lines)


def write_report(run_dir: Path, payload: dict, figures: FigureInputs) -> None:
    """report.md and figures/ of a run from its metrics.json payload and figure inputs."""
    folder = run_dir / "figures"
    s2i_figure(figures.examples, figures.generated, figures.top_db, folder / "s2i_samples.png")
    i2s_figure(figures.examples, figures.generated, figures.top_db, folder / "i2s_samples.png")
    curves_figure(figures.history, folder / "training_curves.png")
    audio = write_audio(figures, run_dir)
    write_text(run_dir / "report.md", report_markdown(payload, figures.seed, audio, len(figures.examples)))
