"""``cmav-data stats``: the per-class table of a built dataset and a contact sheet of its pairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cmav_data.atomic import atomic_path, write_text
from cmav_data.manifest import SPLITS


def class_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Pairs and recordings per class and split, with a total row (as the published table)."""
    pairs = manifest.pivot_table(index="class_name", columns="split", values="id", aggfunc="count", fill_value=0)
    recs = manifest.drop_duplicates("recording").pivot_table(index="class_name", columns="split", values="id",
                                                             aggfunc="count", fill_value=0)
    table = pd.DataFrame(index=sorted(manifest.class_name.unique()))
    for split in SPLITS:
        table[f"{split} pairs"] = pairs.get(split, 0)
        table[f"{split} recordings"] = recs.get(split, 0)
    table = table.fillna(0).astype(int)
    table.loc["total"] = table.sum()
    table.index.name = "class"
    return table


def to_markdown(table: pd.DataFrame) -> str:
    cols = [table.index.name, *table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, row in table.iterrows():
        lines.append("| " + " | ".join([str(name), *(str(v) for v in row)]) + " |")
    return "\n".join(lines)


def contact_sheet(root: Path, manifest: pd.DataFrame, path: Path, per_class: int = 2, seed: int = 0) -> None:
    """A PNG grid: for a few pairs per class, the image beside its log-mel spectrogram."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf
    from PIL import Image

    picks = (manifest[~manifest.silent] if (~manifest.silent).any() else manifest)
    picks = picks.groupby("class_name", group_keys=False).apply(
        lambda g: g.sample(min(per_class, len(g)), random_state=seed)).reset_index(drop=True)
    n = len(picks)
    cols = 4  # pairs per row, each an (image, spectrogram) couple
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols * 2, figsize=(cols * 3.6, rows * 2.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6] * cols})
    for ax in axes.flat:
        ax.axis("off")
    for i, row in picks.iterrows():
        ax_img, ax_spec = axes[i // cols, (i % cols) * 2], axes[i // cols, (i % cols) * 2 + 1]
        ax_img.imshow(Image.open(root / row.image_path).convert("RGB"))
        ax_img.set_title(row.id, fontsize=7)
        y, sr = sf.read(root / row.audio_path, dtype="float32", always_2d=True)
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y.mean(axis=1), sr=sr, n_mels=64), ref=np.max)
        ax_spec.imshow(mel, origin="lower", aspect="auto", cmap="magma")
        ax_spec.set_title(f"log-mel  f0 {row.mean_f0:.0f} Hz", fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def membership_line(root: str | os.PathLike) -> str | None:
    """What a Sub-URMP build's membership was and its pairs against the table's (None without one)."""
    path = Path(root) / "build.json"
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8")).get("membership")
    except (ValueError, AttributeError):
        raise ValueError(f"{path}: not a build.json (unreadable JSON)") from None
    if not entry:
        return None
    from cmav_data.recipes.membership import describe

    return describe(entry)


def dataset_stats(root: str | os.PathLike, per_class: int = 2) -> tuple[pd.DataFrame, Path, Path]:
    """Write ``stats.md`` and ``contact_sheet.png`` into the dataset root; return the table and paths."""
    root = Path(root)
    manifest_path = root / "manifest.parquet"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: missing file (is {root} a built dataset?)")
    manifest = pd.read_parquet(manifest_path)
    table = class_table(manifest)
    md = root / "stats.md"
    line = membership_line(root)
    write_text(md, f"# {root.name}: pairs per class and split\n\n" + (f"{line}\n\n" if line else "")
               + f"{to_markdown(table)}\n")
    sheet = root / "contact_sheet.png"
    contact_sheet(root, manifest, sheet, per_class=per_class)
    return table, md, sheet
