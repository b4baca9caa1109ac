"""ImageNet on disk: its usual layouts, and the committed table of instrument synsets.

ImageNet (Deng et al. 2009) names its categories by WordNet 3.0 noun synset ids ("wnids": ``n`` and
the 8-digit synset offset, e.g. ``n02992211`` cello). ``manifests/imagenet_instrument_synsets.csv``
lists the musical-instrument synsets: all of ImageNet-1k's (ILSVRC 2012) and the URMP instruments and
a few others that exist only in the full ImageNet-21k (fall 2011) release; ``class_name`` links a
synset to its Sub-URMP class where there is one. The ids were checked against ILSVRC's
``LOC_synset_mapping.txt`` (1k) and timm's ``imagenet_synset_to_lemma.txt`` (21k).

Layouts read here (image files: .jpeg/.jpg/.png, any case):
- class folders: ``ROOT/<wnid>/*`` (the 21k per-synset archives, unpacked) and/or
  ``ROOT/<split>/<wnid>/*`` for any split folder (``train/<wnid>/<wnid>_<n>.JPEG``, a prepared ``val``);
- ILSVRC (Kaggle's CLS-LOC package): ``ROOT/ILSVRC/Data/CLS-LOC/train/<wnid>/*`` plus the flat
  ``ROOT/ILSVRC/Data/CLS-LOC/val/*`` labelled by ``ROOT/LOC_val_solution.csv``
  (``ImageId,PredictionString``, the first token of which is the wnid);
- a flat folder with a label file (``--labels``): lines ``<file>,<wnid>`` or ``<file> <wnid>``, or
  an ILSVRC solution CSV; ``<file>`` is relative to ROOT, with or without its extension.
ImageNet's own train/val split is not kept: INIS makes its own split (see recipes/inis.py).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cmav_data.manifests import read_table

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
WNID = re.compile(r"n\d{8}")
ILSVRC_DATA = Path("ILSVRC/Data/CLS-LOC")
ILSVRC_VAL_LABELS = "LOC_val_solution.csv"


class ImageNetError(Exception):
    """An ImageNet copy or label file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Synset:
    wnid: str
    words: str  # the synset's WordNet lemmas, as ImageNet lists them
    class_name: str  # Sub-URMP class folder, "" when URMP has no such instrument
    release: str  # "1k": in ILSVRC 2012; "21k": only in the full release
    notes: str


def instrument_synsets() -> dict[str, Synset]:
    return {r["wnid"]: Synset(r["wnid"], r["synset_words"], r["class_name"], r["imagenet_release"], r["notes"])
            for r in read_table("imagenet_instrument_synsets.csv")}


def resolve_synsets(names: tuple[str, ...] | list[str]) -> tuple[Synset, ...]:
    """Synsets from wnids or Sub-URMP class names; each must map to a distinct Sub-URMP class."""
    table = instrument_synsets()
    by_class = {s.class_name: s for s in table.values() if s.class_name}
    out: list[Synset] = []
    for name in names:
        synset = table.get(name) or by_class.get(name)
        if synset is None:
            raise ImageNetError(f"unknown instrument synset {name!r}: give a wnid or class name from "
                                "manifests/imagenet_instrument_synsets.csv")
        if not synset.class_name:
            raise ImageNetError(f"{synset.wnid} ({synset.words}) has no Sub-URMP class, so its photos "
                                f"cannot be paired with sounds; pairable: {', '.join(sorted(by_class))}")
        if synset.class_name in {s.class_name for s in out}:
            raise ImageNetError(f"{name!r}: class {synset.class_name} is given twice")
        out.append(synset)
    if not out:
        raise ImageNetError("no synsets given")
    return tuple(out)


@dataclass(frozen=True)
class ImageNetTree:
    root: Path
    layout: str  # "class-folders" | "ilsvrc" | "labelled"
    images: dict[str, tuple[str, ...]]  # wnid -> sorted paths relative to root (POSIX)
    unlabelled: tuple[str, ...] = ()  # label-file entries naming no file


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _images_in(folder: Path, root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in folder.iterdir() if _is_image(p)]


def _read_labels(path: Path) -> dict[str, str]:
    """file (as written) -> wnid, from a two-column label file or an ILSVRC solution CSV."""
    labels: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ImageNetError(f"{path}: cannot read label file ({e})") from None
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#") or line.lower().startswith(("imageid,", "file,", "filename,")):
            continue
        fields = next(csv.reader([line])) if "," in line else line.split()
        # An ILSVRC PredictionString is "<wnid> x0 y0 x1 y1 ...": the wnid is its first token.
        wnid = fields[1].split()[0] if len(fields) >= 2 and fields[1].split() else ""
        if not WNID.fullmatch(wnid):
            raise ImageNetError(f"{path}: line {lineno}: expected '<file>,<wnid>' or '<file> <wnid>', got {line!r}")
        labels[fields[0].strip()] = wnid
    return labels


def _labelled(root: Path, labels_path: Path, folder: Path, wnids: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Images of ``folder`` (and below, for relative names) per wnid, by a label file."""
    images: dict[str, list[str]] = {}
    missing = []
    for name, wnid in _read_labels(labels_path).items():
        if wnid not in wnids:
            continue
        candidates = [folder / name] + [folder / (name + s) for s in (".JPEG", ".jpeg", ".jpg", ".JPG", ".png")]
        found = next((c for c in candidates if _is_image(c)), None)
        if found is None:
            missing.append(name)
        else:
            images.setdefault(wnid, []).append(found.relative_to(root).as_posix())
    return images, missing


def scan_imagenet(root: str | os.PathLike, wnids: tuple[str, ...] | list[str],
                  labels: str | os.PathLike | None = None) -> ImageNetTree:
    """The images of the given synsets in a local ImageNet copy, in any of the layouts above."""
    root = Path(root)
    if not root.is_dir():
        raise ImageNetError(f"{root}: not a folder")
    wanted = set(wnids)
    images: dict[str, list[str]] = {w: [] for w in wnids}
    missing: list[str] = []
    if labels is not None:
        layout = "labelled"
        found, missing = _labelled(root, Path(labels), root, wanted)
        for w, paths in found.items():
            images[w] += paths
    elif (root / ILSVRC_DATA).is_dir():
        layout = "ilsvrc"
        data = root / ILSVRC_DATA
        for w in wnids:
            if (data / "train" / w).is_dir():
                images[w] += _images_in(data / "train" / w, root)
        if (data / "val").is_dir():
            solution = root / ILSVRC_VAL_LABELS
            if not solution.is_file():
                raise ImageNetError(f"{root}: ILSVRC layout without {ILSVRC_VAL_LABELS} (the validation labels); "
                                    "put it beside the ILSVRC folder")
            found, missing = _labelled(root, solution, data / "val", wanted)
            for w, paths in found.items():
                images[w] += paths
    else:
        layout = "class-folders"
        parents = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not WNID.fullmatch(p.name))
        seen_any = False
        for parent in parents:
            for w in wnids:
                if (parent / w).is_dir():
                    seen_any = True
                    images[w] += _images_in(parent / w, root)
        if not seen_any and not any(WNID.fullmatch(p.name) for parent in parents for p in parent.iterdir() if p.is_dir()):
            raise ImageNetError(f"{root}: no ImageNet layout found (no <wnid> folders, no {ILSVRC_DATA}); "
                                "for a flat folder pass a label file")
    return ImageNetTree(root, layout, {w: tuple(sorted(set(p))) for w, p in images.items()}, tuple(sorted(missing)))
