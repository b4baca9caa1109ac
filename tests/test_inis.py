"""build-inis on a small ImageNet-layout tree made here: layouts, cleaning rules, pairing, determinism."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from cmav_data.cli import main
from cmav_data.corpora.imagenet import ImageNetError, instrument_synsets, resolve_synsets, scan_imagenet
from cmav_data.instruments import CLASS_NAMES
from cmav_data.manifest import INIS_SCHEMA, REJECTED_SCHEMA, read_metadata
from cmav_data.recipes.build import BuildError, RunFlags
from cmav_data.recipes.inis import (DEFAULT_SYNSETS, InisOptions, build_inis, clean_category, plan_inis,
                                    probe_image)
from cmav_data.recipes.suburmp import SubUrmpOptions, build_suburmp
from urmp_tree import make_piece, write_index

VIOLIN, CELLO, FLUTE = "n04536866", "n02992211", "n03372029"
SYNSETS = (VIOLIN, CELLO, FLUTE)
# Small sizes keep the tests fast; the rules are the same at ImageNet's sizes.
OPTIONS = InisOptions(synsets=SYNSETS, image_size=32, min_side=64, validation_fraction=0.3)
GOOD_PER_CLASS = 6
# The planted bad photos of the cello folder, and the rule each must be rejected by.
PLANTED = {
    "n02992211_9001.JPEG": "decode",  # truncated JPEG
    "n02992211_9002.JPEG": "decode",  # not an image at all
    "n02992211_9003.JPEG": "too_small",
    "n02992211_9004.JPEG": "grayscale",  # mode L
    "n02992211_9005.JPEG": "grayscale",  # gray pixels stored as RGB
    "n02992211_9007.JPEG": "exact_duplicate",  # a byte copy of n02992211_0.JPEG
    "n02992211_9008.JPEG": "near_duplicate",  # n02992211_1.JPEG re-encoded at another quality and size
}
CMYK_PHOTO = "n02992211_9006.JPEG"


def photo(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A smooth random picture (a 5x5 colour grid, upsampled): distinct photos differ in dHash by ~32 bits."""
    grid = np.random.default_rng(seed).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    return Image.fromarray(grid).resize(size, Image.Resampling.BICUBIC)


def _jpeg(img: Image.Image, path: Path, quality: int = 95) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=quality)


def make_imagenet(root: Path) -> Path:
    """ImageNet's train layout: train/<wnid>/<wnid>_<n>.JPEG, with bad photos planted among the cellos."""
    for c, wnid in enumerate(SYNSETS):
        for n in range(GOOD_PER_CLASS):
            _jpeg(photo(100 * c + n), root / "train" / wnid / f"{wnid}_{n}.JPEG")
    cello = root / "train" / CELLO
    good = (cello / f"{CELLO}_0.JPEG").read_bytes()
    (cello / "n02992211_9001.JPEG").write_bytes(good[: len(good) // 2])
    (cello / "n02992211_9002.JPEG").write_bytes(b"this is not a JPEG\n" * 10)
    _jpeg(photo(901, (60, 40)), cello / "n02992211_9003.JPEG")
    _jpeg(photo(902).convert("L"), cello / "n02992211_9004.JPEG")
    _jpeg(photo(903).convert("L").convert("RGB"), cello / "n02992211_9005.JPEG")
    _jpeg(photo(904).convert("CMYK"), cello / CMYK_PHOTO)
    (cello / "n02992211_9007.JPEG").write_bytes(good)
    _jpeg(photo(101).resize((150, 112), Image.Resampling.BILINEAR), cello / "n02992211_9008.JPEG", quality=75)
    return root


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> Path:
    """A built Sub-URMP with violin, cello and flute recordings in both splits (3 recordings each)."""
    urmp = tmp_path_factory.mktemp("inis_urmp") / "URMP"
    for folder in ["01_Tiny_vn_vc", "02_Other_vn_fl", "03_Third_vc_fl", "04_Four_fl_vn_vc"]:
        make_piece(urmp, folder, seconds=1.0, size="48x16")
    write_index(urmp)
    out = tmp_path_factory.mktemp("inis_sounds") / "suburmp"
    build_suburmp(urmp, out, SubUrmpOptions(), run=RunFlags(progress=False))
    return out


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    return make_imagenet(tmp_path_factory.mktemp("imagenet") / "imagenet")


@pytest.fixture(scope="module")
def built(imagenet: Path, sounds: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("inis_built") / "inis"
    build_inis(imagenet, out, sounds, OPTIONS, batch_size=4, run=RunFlags(progress=False))
    return out


def write_black_png(path: Path, width: int, height: int) -> None:
    """A valid RGB PNG of black pixels, compressed row by row: a few hundred KB, whatever its size."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    deflate = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter type 0, then the pixels
    pixels = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


# Runs a command and prints the peak RSS (KiB) of it and its children, measured by a process of its own.
PEAK_RSS = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "build.json"}


# ---------------------------------------------------------------- the committed synset table


def test_synset_table_covers_the_urmp_instruments_with_wellformed_unique_ids():
    table = instrument_synsets()
    assert all(re.fullmatch(r"n\d{8}", w) for w in table)
    by_class = [s.class_name for s in table.values() if s.class_name]
    assert sorted(by_class) == sorted(CLASS_NAMES)  # each URMP instrument exactly once
    assert {s.release for s in table.values()} == {"1k", "21k"}
    for wnid in DEFAULT_SYNSETS:  # the defaults are pairable ImageNet-1k classes
        assert table[wnid].release == "1k" and table[wnid].class_name
    assert len(DEFAULT_SYNSETS) == 5
    # Names and ids resolve alike; a synset without a Sub-URMP class cannot be paired.
    assert resolve_synsets(["cello", VIOLIN]) == resolve_synsets([CELLO, "violin"])
    with pytest.raises(ImageNetError, match="n02787622.*no Sub-URMP class"):
        resolve_synsets(["n02787622"])  # banjo
    with pytest.raises(ValueError, match="unknown instrument synset 'lute'"):
        InisOptions(synsets=("lute",))
    assert InisOptions(synsets=("cello",)).synsets == (CELLO,)


# ---------------------------------------------------------------- layouts


def test_the_three_layouts_find_the_same_photos(imagenet: Path, tmp_path: Path):
    expected = scan_imagenet(imagenet, SYNSETS)
    assert expected.layout == "class-folders"
    assert {w: len(p) for w, p in expected.images.items()} == {VIOLIN: 6, CELLO: 6 + len(PLANTED) + 1, FLUTE: 6}
    names = {w: sorted(Path(p).name for p in paths) for w, paths in expected.images.items()}

    # ILSVRC: train/<wnid> for some photos, the others flat in val/ with LOC_val_solution.csv.
    ilsvrc = tmp_path / "ilsvrc"
    data = ilsvrc / "ILSVRC/Data/CLS-LOC"
    solution = ["ImageId,PredictionString"]
    for k, (wnid, paths) in enumerate(sorted((w, p) for w, ps in expected.images.items() for p in ps)):
        src = imagenet / paths
        if k % 3 == 0:
            val_id = f"ILSVRC2012_val_{k:08d}"
            (data / "val").mkdir(parents=True, exist_ok=True)
            shutil.copy(src, data / "val" / f"{val_id}.JPEG")
            solution.append(f"{val_id},{wnid} 1 2 30 40 {wnid} 5 6 70 80")
            names[wnid][names[wnid].index(src.name)] = f"{val_id}.JPEG"
        else:
            (data / "train" / wnid).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, data / "train" / wnid / src.name)
    with pytest.raises(ImageNetError, match="LOC_val_solution.csv"):
        scan_imagenet(ilsvrc, SYNSETS)
    (ilsvrc / "LOC_val_solution.csv").write_text("\n".join(solution) + "\n")
    tree = scan_imagenet(ilsvrc, SYNSETS)
    assert tree.layout == "ilsvrc"
    assert {w: sorted(Path(p).name for p in ps) for w, ps in tree.images.items()} == {w: sorted(n) for w, n in names.items()}

    # Flat folder + label file (names with or without extension; other synsets' lines ignored).
    flat = tmp_path / "flat"
    flat.mkdir()
    labels = ["# file,wnid", "unrelated.JPEG,n01440764"]
    for wnid, paths in expected.images.items():
        for k, p in enumerate(paths):
            shutil.copy(imagenet / p, flat / Path(p).name)
            labels.append(f"{Path(p).stem if k % 2 else Path(p).name},{wnid}")
    labels.append(f"gone.JPEG,{CELLO}")
    (tmp_path / "labels.csv").write_text("\n".join(labels) + "\n")
    tree = scan_imagenet(flat, SYNSETS, tmp_path / "labels.csv")
    assert tree.layout == "labelled" and tree.unlabelled == ("gone.JPEG",)
    assert {w: sorted(Path(p).name for p in ps) for w, ps in tree.images.items()} == \
        {w: sorted(Path(p).name for p in ps) for w, ps in expected.images.items()}

    (tmp_path / "bad.txt").write_text("a.JPEG n02992211\nb.JPEG cello\n")
    with pytest.raises(ImageNetError, match=r"bad.txt: line 2"):
        scan_imagenet(flat, SYNSETS, tmp_path / "bad.txt")
    with pytest.raises(ImageNetError, match="no ImageNet layout"):
        scan_imagenet(flat, SYNSETS)


# ---------------------------------------------------------------- cleaning rules


def test_cleaning_rules_reject_each_planted_photo_for_its_reason(imagenet: Path):
    synset = resolve_synsets([CELLO])[0]
    paths = scan_imagenet(imagenet, [CELLO]).images[CELLO]
    probes = [probe_image(imagenet, p) for p in paths]
    kept, rejected = clean_category(synset, probes, OPTIONS, None, set(), {})
    assert {Path(r.source_path).name: r.reason for r in rejected} == PLANTED
    assert {Path(p.path).name for p in kept} == {f"{CELLO}_{n}.JPEG" for n in range(GOOD_PER_CLASS)} | {CMYK_PHOTO}
    dup_of = {Path(r.source_path).name: Path(r.duplicate_of).name for r in rejected if r.duplicate_of}
    assert dup_of == {"n02992211_9007.JPEG": f"{CELLO}_0.JPEG", "n02992211_9008.JPEG": f"{CELLO}_1.JPEG"}
    assert next(p for p in probes if p.path.endswith(CMYK_PHOTO)).colour == "cmyk"

    # The options that convert or drop instead, and the hand-curated lists.
    opts = InisOptions(synsets=SYNSETS, min_side=64, grayscale="convert", cmyk="drop", near_duplicate_distance=-1)
    kept, rejected = clean_category(synset, probes, opts, None, {f"{CELLO}_2.JPEG"}, {})
    reasons = {Path(r.source_path).name: r.reason for r in rejected}
    assert reasons[CMYK_PHOTO] == "cmyk" and reasons[f"{CELLO}_2.JPEG"] == "drop_list"
    assert "n02992211_9004.JPEG" not in reasons and "n02992211_9008.JPEG" not in reasons
    keep = {f"{CELLO}_3.JPEG", f"train/{CELLO}/{CELLO}_4.JPEG"}
    kept, rejected = clean_category(synset, probes, OPTIONS, keep, set(), {})
    assert sorted(Path(p.path).name for p in kept) == [f"{CELLO}_3.JPEG", f"{CELLO}_4.JPEG"]
    assert {r.reason for r in rejected} == {"not_in_keep_list"}


def test_a_huge_photo_is_rejected_from_its_header_without_being_decoded(imagenet: Path, sounds: Path, tmp_path: Path):
    def build(tree: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
        """The CLI build in a process of its own, and its peak RSS in MiB."""
        run = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "cmav_data.cli", "build-inis",
                              str(tree), str(out), "--sounds", str(sounds), "--synsets", "violin,cello,n03372029",
                              "--image-size", "32", "--min-side", "64", "--validation-fraction", "0.3", "--quiet"],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run, int(run.stdout.split()[-1]) / 1024

    _, without_mb = build(imagenet, tmp_path / "reference")
    tree = tmp_path / "imagenet"
    shutil.copytree(imagenet, tree)
    write_black_png(tree / "train" / CELLO / "n02992211_9009.png", 10_000, 10_000)  # 100 MP: 300 MB as RGB
    run, with_mb = build(tree, tmp_path / "out")
    # Decoding it would add 300 MB at least (it took the build to 1.09 GB); its header costs nothing.
    assert with_mb < without_mb + 100, f"peak RSS {with_mb:.0f} MB against {without_mb:.0f} MB: the photo was decoded"
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet").set_index("source_path")
    huge = rejected.loc[f"train/{CELLO}/n02992211_9009.png"]
    assert (huge.reason, huge.detail) == ("too_large", "10000x10000, more than 64000000 pixels")
    assert not run.stderr  # nor Pillow's warning about it

    # The rule at small sizes: a 160x120 photo is over a 19,199-pixel limit, and is not decoded for it.
    path = f"train/{CELLO}/{CELLO}_0.JPEG"
    probe = probe_image(imagenet, path, max_pixels=160 * 120 - 1)
    assert (probe.width, probe.height, probe.colour, probe.error) == (160, 120, "", "")
    _, rejected = clean_category(resolve_synsets([CELLO])[0], [probe], replace(OPTIONS, max_pixels=160 * 120 - 1),
                                 None, set(), {})
    assert [(r.reason, r.detail) for r in rejected] == [("too_large", "160x120, more than 19199 pixels")]


def test_pairing_follows_the_seed_and_adding_photos_moves_nothing(imagenet: Path, sounds: Path, tmp_path: Path):
    base = plan_inis(imagenet, sounds, OPTIONS, progress=False)
    again = plan_inis(imagenet, sounds, OPTIONS, progress=False)
    other_seed = plan_inis(imagenet, sounds, replace(OPTIONS, seed=7), progress=False)

    def images(plan):
        return {i.source_path: i for u in plan.units for i in u.images}

    assert images(base) == images(again)
    moved = [p for p, i in images(base).items() if i.sounds != images(other_seed)[p].sounds]
    assert moved and all(i.split == images(other_seed)[p].split for p, i in images(base).items())

    grown = tmp_path / "grown"
    shutil.copytree(imagenet, grown)
    for n in range(3):
        _jpeg(photo(700 + n), grown / "train" / FLUTE / f"{FLUTE}_{50 + n}.JPEG")
    bigger = images(plan_inis(grown, sounds, OPTIONS, progress=False))
    assert len(bigger) == len(images(base)) + 3
    assert all(bigger[p] == i for p, i in images(base).items())


# ---------------------------------------------------------------- the build's output


def test_layout_manifest_pairs_and_rejections(built: Path, sounds: Path, imagenet: Path):
    df = pd.read_parquet(built / "manifest.parquet")
    assert list(df.columns) == INIS_SCHEMA.names
    assert read_metadata(built / "manifest.parquet")["kind"] == "inis"
    sub = pd.read_parquet(sounds / "manifest.parquet").set_index("id")
    assert len(df) == 3 * GOOD_PER_CLASS + 1  # one sound per kept photo (the CMYK one converted)
    for row in df.itertuples():
        assert row.id == f"{row.class_name}_{row.source_sha256[:12]}_0"
        assert row.image_path == f"img/{row.split}/{row.class_name}/{row.class_name}_{row.source_sha256[:12]}.jpg"
        assert CLASS_NAMES[row.class_index] == row.class_name
        assert instrument_synsets()[row.wnid].class_name == row.class_name
        source = (imagenet / row.source_path).read_bytes()
        assert hashlib.sha256(source).hexdigest() == row.source_sha256
        data = (built / row.image_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.image_sha256
        with Image.open(built / row.image_path) as img:
            assert img.size == (32, 32) and img.mode == "RGB"
        # Split by content: the first 64 bits of the source's sha256 against the validation fraction.
        in_validation = int(row.source_sha256[:16], 16) < 0.3 * 2**64
        assert row.split == ("validation" if in_validation else "train")
        # The sound: a non-silent window of the same class and split, copied byte for byte.
        sound = sub.loc[row.sound_id]
        assert (sound.class_name, sound.split, bool(sound.silent)) == (row.class_name, row.split, False)
        assert row.audio_path == sound.audio_path
        assert (built / row.audio_path).read_bytes() == (sounds / sound.audio_path).read_bytes()
    assert set(df.split) == {"train", "validation"}

    rejected = pd.read_parquet(built / "rejected.parquet")
    assert list(rejected.columns) == REJECTED_SCHEMA.names
    assert {Path(p).name: r for p, r in zip(rejected.source_path, rejected.reason)} == PLANTED
    info = json.loads((built / "build.json").read_text())
    assert info["n_pairs"] == len(df) and info["n_rejected"] == len(PLANTED) and info["layout"] == "class-folders"
    assert sum(v["train"] + v["validation"] for v in info["counts"].values()) == len(df)
    assert not (built / "failures.jsonl").exists()


@pytest.mark.slow
def test_workers_resume_and_sounds_per_image_are_deterministic(built: Path, imagenet: Path, sounds: Path,
                                                               tmp_path: Path):
    expected = _tree_digest(built)
    out = tmp_path / "parallel"
    with ProcessPoolExecutor(2) as pool:
        build_inis(imagenet, out, sounds, OPTIONS, batch_size=4, executor=pool, run=RunFlags(progress=False))
    assert _tree_digest(out) == expected

    # Interrupt: one unit's rows and media are gone; resume rebuilds exactly that.
    units = sorted((out / ".cmav-build/units").glob("*.parquet"))
    lost = pd.read_parquet(units[1])
    units[1].unlink()
    for p in lost.image_path:
        (out / p).unlink()
    (out / "manifest.parquet").unlink()
    with pytest.raises(BuildError, match="--resume"):
        build_inis(imagenet, out, sounds, OPTIONS, batch_size=4, run=RunFlags(progress=False))
    build_inis(imagenet, out, sounds, OPTIONS, batch_size=4, run=RunFlags(resume=True, progress=False))
    assert _tree_digest(out) == expected
    with pytest.raises(BuildError, match="other inputs or options"):
        build_inis(imagenet, out, sounds, replace(OPTIONS, seed=1), batch_size=4,
                   run=RunFlags(resume=True, progress=False))

    three = build_inis(imagenet, tmp_path / "three", sounds, replace(OPTIONS, sounds_per_image=3),
                       run=RunFlags(progress=False))
    df = pd.read_parquet(three.out / "manifest.parquet")
    assert three.n_pairs == 3 * three.n_images == len(df)
    assert (df.groupby("source_path").sound_id.nunique() == 3).all()


def test_bad_input_is_reported_with_the_file(built: Path, imagenet: Path, sounds: Path, tmp_path: Path):
    not_built = tmp_path / "not_built"
    not_built.mkdir()
    with pytest.raises(BuildError, match="no manifest.parquet"):
        build_inis(imagenet, tmp_path / "a", not_built, OPTIONS, run=RunFlags(progress=False))
    # A Sub-URMP without violins cannot pair violin photos.
    no_violin = tmp_path / "no_violin"
    shutil.copytree(sounds, no_violin)
    table = pq.read_table(sounds / "manifest.parquet")  # keeps the Sub-URMP metadata
    pq.write_table(table.filter(pc.not_equal(table["class_name"], "violin")), no_violin / "manifest.parquet")
    with pytest.raises(BuildError, match="sounds of class violin"):
        build_inis(imagenet, tmp_path / "b", no_violin, OPTIONS, run=RunFlags(progress=False))

    # A damaged chunk: the unit fails naming the file; fault-tolerant builds the rest.
    damaged = tmp_path / "damaged"
    shutil.copytree(sounds, damaged)
    victim = pd.read_parquet(built / "manifest.parquet").audio_path.iloc[0]
    (damaged / victim).write_bytes(b"RIFF broken")
    with pytest.raises(BuildError, match=re.escape(str(damaged / victim)) + ".*sha256 differs"):
        build_inis(imagenet, tmp_path / "c", damaged, OPTIONS, batch_size=4, run=RunFlags(progress=False))
    result = build_inis(imagenet, tmp_path / "d", damaged, OPTIONS, batch_size=4,
                        run=RunFlags(fault_tolerant=True, progress=False))
    assert len(result.failures) == 1 and 0 < result.n_pairs < 3 * GOOD_PER_CLASS + 1
    assert json.loads((tmp_path / "d/failures.jsonl").read_text())["path"] == str(damaged / victim)


def test_cli_builds_and_turns_bad_input_into_one_line(built: Path, imagenet: Path, sounds: Path, tmp_path: Path):
    runner = CliRunner()
    args = ["build-inis", str(imagenet), str(tmp_path / "cli"), "--sounds", str(sounds), "--synsets",
            "violin,cello,n03372029", "--image-size", "32", "--min-side", "64", "--validation-fraction", "0.3",
            "--batch-size", "4", "--quiet"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"{3 * GOOD_PER_CLASS + 1} pairs" in result.output and f"{len(PLANTED)} rejected" in result.output
    assert _tree_digest(tmp_path / "cli") == _tree_digest(built)

    result = runner.invoke(main, ["build-inis", str(imagenet), str(tmp_path / "x"), "--sounds", str(tmp_path / "cli" / "img")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and "no manifest.parquet" in result.output
    result = runner.invoke(main, ["build-inis", str(imagenet), str(tmp_path / "y"), "--sounds", str(sounds),
                                  "--synsets", "banjo"])
    assert result.exit_code == 2 and "unknown instrument synset 'banjo'" in result.output
