"""build-suburmp on small real trees: conventions, frame accuracy, determinism, splits, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
from PIL import Image

from cmav_data.manifest import PAIR_SCHEMA, read_metadata
from cmav_data.manifests import read_table
from cmav_data.recipes.build import BuildError, RunFlags
from cmav_data.recipes.suburmp import (SubUrmpOptions, build_suburmp, frame_index, held_out_positions,
                                       pair_window_ends_ms, window_ends_ms)
from urmp_tree import FPS, decode_frame_number, make_piece, write_index, write_tone

PIECES = ["01_Tiny_vn_vc", "02_Other_vn_fl", "03_Third_vc_fl", "04_Four_fl_vn_vc"]
SECONDS = {"01_Tiny_vn_vc": 2.0, "02_Other_vn_fl": 1.5, "03_Third_vc_fl": 1.2, "04_Four_fl_vn_vc": 1.8}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("suburmp") / "URMP"
    for folder in PIECES:
        make_piece(root, folder, seconds=SECONDS[folder], size="96x40")
    write_index(root)
    return root


@pytest.fixture(scope="module")
def built(tree: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "out"
    build_suburmp(tree, out, SubUrmpOptions(image_size=16), run=RunFlags(progress=False))
    return out


def _tree_digest(root: Path, exclude: tuple[str, ...] = ("build.json",)) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in exclude}


# ---------------------------------------------------------------- the published release's facts


def test_published_release_facts_are_committed():
    rows = read_table("suburmp_published_recordings.csv")
    pairs = [int(r["pairs"]) for r in rows]
    assert len(rows) == 72 and sum(pairs) == 80_805
    by_split = Counter()
    for r in rows:
        by_split[r["split"]] += int(r["pairs"])
        # t runs from 500 in steps of 100 without gaps: one pair per 0.1 s hop, named by window end.
        assert int(r["first_t"]) == 500
        assert int(r["last_t"]) == 500 + 100 * (int(r["pairs"]) - 1)
    assert by_split == {"train": 71_230, "validation": 9_575}
    assert {r["instrument"] for r in rows} == {i["class_name"] for i in read_table("instruments.csv")}


def test_default_split_rule_reproduces_the_published_held_out_counts():
    rows = read_table("suburmp_published_recordings.csv")
    per_class = defaultdict(list)
    for r in rows:
        per_class[r["instrument"]].append((int(r["recording_idx"]), r["split"]))
    for cls, recs in per_class.items():
        recs.sort()
        held = held_out_positions(len(recs))
        published_val = [pos for pos, (_, split) in enumerate(recs) if split == "validation"]
        assert len(held) == len(published_val), cls
    sax = sorted(per_class["sax"])
    assert [sax[p][0] for p in held_out_positions(len(sax))] == [1, 8]  # as published


def test_window_and_frame_arithmetic():
    opts = SubUrmpOptions()
    assert window_ends_ms(2, opts) == tuple(range(500, 2001, 100))
    assert window_ends_ms(Fraction(2099, 1000), opts)[-1] == 2000
    assert window_ends_ms(0.4, opts) == ()
    # A video of 1.25 s at 29.97 fps has 37 frames (0 to 36, the last shown from 1.2012 s). The end rule
    # needs the whole window inside it; the start rule only the window's first frame.
    end, start = SubUrmpOptions(frame="end"), SubUrmpOptions(frame="start")
    assert pair_window_ends_ms(2, 37, FPS, end)[-1] == 1200
    assert pair_window_ends_ms(2, 37, FPS, start)[-1] == 1700  # frame ceil(1.2 * fps) = 36, the last one
    assert pair_window_ends_ms(2, 60, FPS, start) == window_ends_ms(2, opts)
    # start (default): the first frame shown at or after t - 0.5 s. Frame k is shown from k * 1001 / 30000 s.
    assert frame_index(500, FPS) == 0
    assert frame_index(600, FPS) == 3  # frame 2 starts at 66.7 ms, frame 3 at 100.1 ms
    assert frame_index(30_530, FPS) == 900  # frame 900 starts exactly at 30.03 s, the window's start
    assert frame_index(30_531, FPS) == 901
    assert frame_index(600, 30) == 3 and frame_index(601, 30) == 4  # 30 fps: frame 3 starts at exactly 0.1 s
    assert frame_index(1500, FPS, window_ms=1000) == 15
    # end: at 29.97 fps frame 14 is shown from 0.467 s to 0.5005 s: it is the frame at t = 0.5 s.
    assert frame_index(500, FPS, rule="end") == 14
    # At exactly 30 fps, frame 15 starts at 0.5 s; the frame shown just before it is 14.
    assert frame_index(500, 30, rule="end") == 14 and frame_index(533, 30, rule="end") == 15
    with pytest.raises(ValueError, match="frame must be one of start, end"):
        SubUrmpOptions(frame="middle")


# ---------------------------------------------------------------- the build's output


def test_layout_names_and_formats(built: Path):
    df = pd.read_parquet(built / "manifest.parquet")
    assert list(df.columns) == PAIR_SCHEMA.names
    counts = json.loads((built / "build.json").read_text())["counts"]
    assert sum(v["train"] + v["validation"] for v in counts.values()) == len(df)
    for row in df.itertuples():
        t_ms = round(row.t_end * 1000)
        assert row.id == f"{row.recording}_{t_ms}"
        assert row.image_path == f"img/{row.split}/{row.class_name}/{row.id}.jpg"
        assert row.audio_path == f"chunk/{row.split}/{row.class_name}/{row.id}.wav"
        assert (built / f"img_16/{row.split}/{row.class_name}/{row.id}.jpg").is_file()
    # Per recording: t from 500 by 100 while the window lies inside audio and video.
    for rec, group in df.groupby("recording"):
        piece = group.piece.iloc[0]
        ends = sorted(round(t * 1000) for t in group.t_end)
        assert ends == list(range(500, int(SECONDS[piece] * 1000) + 1, 100)), rec
    info = sf.info(str(built / df.audio_path.iloc[0]))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44_100, 2, 22_050, "PCM_16")
    img = Image.open(built / df.image_path.iloc[0])
    assert img.format == "JPEG" and img.size == (48, 40)  # one player's column of a 96x40 duet video
    meta = read_metadata(built / "manifest.parquet")
    assert meta["kind"] == "suburmp" and meta["options"]["window_ms"] == 500


def test_checksums_match_the_files(built: Path):
    df = pd.read_parquet(built / "manifest.parquet")
    for row in df.sample(20, random_state=0).itertuples():
        assert hashlib.sha256((built / row.image_path).read_bytes()).hexdigest() == row.image_sha256
        assert hashlib.sha256((built / row.audio_path).read_bytes()).hexdigest() == row.audio_sha256


def test_images_are_the_first_frame_of_the_window(built: Path):
    df = pd.read_parquet(built / "manifest.parquet")
    assert json.loads((built / "build.json").read_text())["frame_rule"].startswith(
        "the first frame shown at or after the window's start")
    for row in df.itertuples():
        # Independent of the implementation: the first frame whose display starts at or after t_start.
        expected = math.ceil(Fraction(round(row.t_start * 1000), 1000) * FPS)
        assert row.frame_index == expected
        rgb = np.asarray(Image.open(built / row.image_path).convert("RGB"), dtype=np.float64)
        assert decode_frame_number(rgb) == expected % 256, row.id
    assert df.frame_index.min() == 0  # the window starting at 0 s shows the video's first frame


def test_frame_end_keeps_the_frame_just_before_t(tree: Path, built: Path, tmp_path: Path):
    out = tmp_path / "end"
    subprocess.run([sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(tree), str(out), "--frame", "end",
                    "--quiet"], check=True, capture_output=True)
    info = json.loads((out / "build.json").read_text())
    assert info["options"]["frame"] == "end" and "ceil(t * fps) - 1" in info["frame_rule"]
    df = pd.read_parquet(out / "manifest.parquet")
    for row in df.itertuples():
        # Independent of the implementation: the frame whose display interval ends at or after t.
        expected = math.ceil(row.t_end * 30000 / 1001 - 1e-9) - 1
        assert row.frame_index == expected
        rgb = np.asarray(Image.open(out / row.image_path).convert("RGB"), dtype=np.float64)
        assert decode_frame_number(rgb) == expected % 256, row.id
    # The audio does not depend on the frame rule; the images do.
    start = pd.read_parquet(built / "manifest.parquet")
    assert list(df.audio_sha256) == list(start.audio_sha256)
    assert (df.image_sha256 != start.image_sha256).all()


def test_audio_is_the_resampled_window_of_the_track(built: Path, tree: Path):
    df = pd.read_parquet(built / "manifest.parquet")
    row = df[df.recording == df.recording.iloc[0]].iloc[7]
    part = int(row.part)
    folder = row.piece
    code = folder.split("_")[1 + part]
    src, sr = sf.read(tree / folder / f"AuSep_{part}_{code}_{folder[:2]}_{folder.split('_')[1]}.wav")
    ref = soxr.resample(src, sr, 44_100)
    end = round(row.t_end * 44_100)
    chunk, _ = sf.read(built / row.audio_path)
    assert np.allclose(chunk[:, 0], chunk[:, 1])
    assert np.max(np.abs(chunk[:, 0] - ref[end - 22_050:end])) < 2e-3  # 16-bit quantisation, resampler
    assert row.note_coverage == pytest.approx(1.0) and not row.silent
    assert row.mean_f0 in (0.0, pytest.approx(110.0 * part + int(folder[:2])))


def test_recordings_splits_and_indices(built: Path):
    df = pd.read_parquet(built / "manifest.parquet")
    recs = df.drop_duplicates("recording").set_index("recording")
    # NN by (piece, part) within a class; held out: position 1 of each class.
    assert recs.loc["violin00", "piece"] == "01_Tiny_vn_vc" and recs.loc["violin01", "piece"] == "02_Other_vn_fl"
    assert recs.loc["violin02", "piece"] == "04_Four_fl_vn_vc"
    assert sorted(recs.index[recs.split == "validation"]) == ["cello01", "flute01", "violin01"]
    assert df.groupby("recording").split.nunique().max() == 1  # never split inside a recording


# ---------------------------------------------------------------- determinism and resume


def write_odd_crop_table(root: Path, path: Path) -> Path:
    """A --crop-table giving every player of ``root`` a box of odd width and height at odd offsets.

    Odd sizes are where a JPEG encoder pads 4:2:0 luma to whole chroma pairs (and once read
    memory nobody wrote); the players' columns of even-sized videos are usually even.
    """
    from cmav_data.corpora.urmp import parse_folder
    from cmav_data.layout import player_box
    from cmav_data.media import probe_video

    lines = ["folder,part,left,top,right,bottom"]
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        video = probe_video(next(folder.glob("Vid_*.mp4")))
        n = len(parse_folder(folder.name)[2])
        for part in range(1, n + 1):
            left, _, right, _ = player_box(video.width, video.height, n, part)
            left |= 1  # odd offsets; widths and heights odd too, and different per part
            right = left + (right - left - 1) // 2 * 2 - 1
            top = 1 + 2 * (part % 2)
            bottom = top + (video.height - top - 1) // 2 * 2 - 1
            lines.append(f"{folder.name},{part},{left},{top},{right},{bottom}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_same_bytes_for_any_number_of_workers_and_odd_crops(tree: Path, tmp_path: Path):
    crops = write_odd_crop_table(tree, tmp_path / "crops.csv")
    digests = []
    for name, jobs in [("j1", "1"), ("j2", "2"), ("j2-again", "2")]:  # the same command twice, too
        subprocess.run([sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(tree), str(tmp_path / name),
                        "--crop-table", str(crops), "--image-size", "16", "-j", jobs, "--quiet"], check=True)
        digests.append(_tree_digest(tmp_path / name))
    sizes = {Image.open(p).size for p in (tmp_path / "j1" / "img").rglob("*.jpg")}
    assert all(w % 2 and h % 2 for w, h in sizes) and len(sizes) > 1, sizes
    assert digests[0] == digests[1] == digests[2]


def test_identical_takes_are_one_recording_and_split_file(tmp_path: Path):
    root = tmp_path / "URMP"
    for folder in ["01_A_vn_va", "02_B_vn_va", "03_C_va_vc", "04_D_vc_vn"]:
        make_piece(root, folder, seconds=1.0)
    shutil.copyfile(root / "01_A_vn_va" / "AuSep_2_va_01_A.wav", root / "02_B_vn_va" / "AuSep_2_va_02_B.wav")
    write_index(root)
    result = build_suburmp(root, tmp_path / "out", run=RunFlags(progress=False))
    df = pd.read_parquet(result.out / "manifest.parquet")
    violas = sorted(df[df.class_name == "viola"].recording.unique())
    assert violas == ["viola00", "viola01"]  # three viola parts, two takes
    plan = json.loads((result.out / "build.json").read_text())["recordings"]
    assert next(r for r in plan if r["name"] == "viola00")["also_in"] == ["02_B_vn_va/2"]

    split_file = tmp_path / "splits.csv"
    split_file.write_text("recording,split\n" + "\n".join(
        f"{r},{'validation' if r in ('viola00', '04_D_vc_vn/1') else 'train'}"
        for r in ["violin00", "violin01", "violin02", "viola00", "viola01", "cello00", "04_D_vc_vn/1"]) + "\n")
    result = build_suburmp(root, tmp_path / "out2", split_file=split_file, run=RunFlags(progress=False))
    df = pd.read_parquet(result.out / "manifest.parquet")
    val = sorted(df[df.split == "validation"].recording.unique())
    assert val == ["cello01", "viola00"]


def test_resume_after_kill_is_byte_identical(tree: Path, built: Path, tmp_path: Path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(tree), str(out), "--image-size", "16", "--quiet"]
    # Kill -9 as soon as the first recording is done: the build is then interrupted mid-way.
    proc = subprocess.Popen(cmd)
    units = out / ".cmav-build" / "units"
    while proc.poll() is None and not (units.is_dir() and any(units.iterdir())):
        pass
    proc.kill()
    proc.wait()
    done = list(units.glob("*.parquet"))
    assert 0 < len(done) < 9, "the kill should land mid-build"
    for path in out.rglob("*"):  # what a reader can see under a final name is whole
        if path.suffix == ".wav" and not path.name.startswith(".tmp-"):
            assert sf.info(str(path)).frames == 22_050
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 1 and "--resume" in again.stderr
    subprocess.run(cmd + ["--resume"], check=True)
    assert _tree_digest(out) == _tree_digest(built)


# ---------------------------------------------------------------- bad input


def _broken_copy(tree: Path, tmp_path: Path, breaker) -> Path:
    root = tmp_path / "URMP"
    shutil.copytree(tree, root)
    breaker(root)
    return root


@pytest.mark.parametrize(
    "breaker, expected",
    [
        (lambda r: (r / "03_Third_vc_fl" / "AuSep_1_vc_03_Third.wav").write_bytes(b"RIFF\x00\x00"),
         "AuSep_1_vc_03_Third.wav: unreadable or non-audio WAV"),
        (lambda r: (r / "03_Third_vc_fl" / "Vid_03_Third_vc_fl.mp4").unlink(), "Vid_03_Third_vc_fl.mp4: missing file"),
        (lambda r: _truncate(r / "03_Third_vc_fl" / "Vid_03_Third_vc_fl.mp4"), "Vid_03_Third_vc_fl.mp4: "),
        (lambda r: make_piece(r, "05_Long_vn_vc", seconds=3.0, video_seconds=1.0, size="96x40"),
         "track and video lengths differ by"),
        (lambda r: make_piece(r, "06_Odd_vn_xyz", seconds=1.0, size="96x40"), "unknown instrument code xyz"),
        (lambda r: _cut(r / "03_Third_vc_fl" / "AuSep_1_vc_03_Third.wav", 3000),
         "AuSep_1_vc_03_Third.wav: truncated: its header says"),
        (lambda r: write_tone(r / "03_Third_vc_fl" / "AuSep_1_vc_03_Third.wav", 1.2, sr=22_050),
         "AuSep_1_vc_03_Third.wav: unexpected sample rate 22050 Hz (URMP is 48000)"),
    ],
    ids=["corrupt-wav", "missing-video", "truncated-mp4", "length-mismatch", "unknown-code", "truncated-wav",
         "sample-rate"],
)
def test_bad_input_names_the_file(tree: Path, tmp_path: Path, breaker, expected):
    root = _broken_copy(tree, tmp_path, breaker)
    cmd = [sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(root)]
    strict = subprocess.run(cmd + [str(tmp_path / "a"), "--quiet"], capture_output=True, text=True)
    assert strict.returncode == 1 and expected in strict.stderr and "Traceback" not in strict.stderr, strict.stderr
    tolerant = subprocess.run(cmd + [str(tmp_path / "b"), "--quiet", "--fault-tolerant"], capture_output=True, text=True)
    assert tolerant.returncode == 1 and "Traceback" not in tolerant.stderr
    failures = [json.loads(line) for line in (tmp_path / "b" / "failures.jsonl").read_text().splitlines()]
    assert failures and any(expected in f"{f['path']}: {f['cause']}" for f in failures)
    df = pd.read_parquet(tmp_path / "b" / "manifest.parquet")
    assert {"01_Tiny_vn_vc", "02_Other_vn_fl", "04_Four_fl_vn_vc"} <= set(df.piece)


def test_allow_failures_exits_zero(tree: Path, tmp_path: Path):
    root = _broken_copy(tree, tmp_path, lambda r: (r / "03_Third_vc_fl" / "Vid_03_Third_vc_fl.mp4").unlink())
    allowed = subprocess.run([sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(root), str(tmp_path / "c"),
                              "--quiet", "--fault-tolerant", "--allow-failures"], capture_output=True, text=True)
    assert allowed.returncode == 0 and "Vid_03_Third_vc_fl.mp4: missing file" in allowed.stderr


def _cut(path: Path, n_bytes: int) -> None:
    path.write_bytes(path.read_bytes()[:n_bytes])


def test_empty_annotations_and_non_mono_tracks_are_warnings_said_plainly(tree: Path, tmp_path: Path):
    def breaker(root: Path) -> None:
        (root / "03_Third_vc_fl" / "Notes_1_vc_03_Third.txt").write_bytes(b"")
        (root / "03_Third_vc_fl" / "F0s_2_fl_03_Third.txt").write_bytes(b"")
        for path, right_gain in ((root / "02_Other_vn_fl" / "AuSep_1_vn_02_Other.wav", -0.9),
                                 (root / "04_Four_fl_vn_vc" / "AuSep_1_fl_04_Four.wav", 1.0)):
            mono, sr = sf.read(path)
            sf.write(path, np.stack([mono, right_gain * mono], axis=1), sr, subtype="PCM_24")

    root = _broken_copy(tree, tmp_path, breaker)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(root), str(out), "--quiet"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    warnings = sorted(line for line in done.stderr.splitlines() if line.startswith("warning: "))
    assert warnings == sorted([
        f"warning: {root}/03_Third_vc_fl/Notes_1_vc_03_Third.txt: empty file (no annotations); "
        "note coverage recorded as missing (null)",
        f"warning: {root}/03_Third_vc_fl/F0s_2_fl_03_Third.txt: empty file (no annotations); "
        "mean F0 recorded as missing (null)",
        f"warning: {root}/02_Other_vn_fl/AuSep_1_vn_02_Other.wav: 2 channels, URMP's tracks are mono; mixed to "
        "channel 1 alone (the loudest): ITS 2 CHANNELS ARE IN ANTI-PHASE, their mean is 26 dB quieter; "
        "averaging would cancel them",
        f"warning: {root}/04_Four_fl_vn_vc/AuSep_1_fl_04_Four.wav: 2 channels, URMP's tracks are mono; mixed to "
        "the mean of its 2 channels",
    ]), done.stderr
    recorded = json.loads((out / "build.json").read_text())["warnings"]
    assert sorted(f"warning: {w}" for w in recorded) == warnings
    df = pd.read_parquet(out / "manifest.parquet")
    part = {key: group for key, group in df.groupby(["piece", "part"])}
    notes_gone, f0_gone = part[("03_Third_vc_fl", 1)], part[("03_Third_vc_fl", 2)]
    assert notes_gone.note_coverage.isna().all() and notes_gone.mean_f0.notna().all()
    assert f0_gone.mean_f0.isna().all() and (f0_gone.note_coverage > 0.9).all()
    assert df.drop(index=notes_gone.index).note_coverage.notna().all()
    anti = part[("02_Other_vn_fl", 1)]
    chunk, _ = sf.read(out / anti.audio_path.iloc[3])
    mono, _ = sf.read(tree / "02_Other_vn_fl" / "AuSep_1_vn_02_Other.wav")
    # The loud channel's level, not the mean's (a twentieth of it).
    assert np.sqrt(np.mean(chunk**2)) == pytest.approx(np.sqrt(np.mean(mono**2)), rel=0.05)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_bad_options_and_unrelated_out(tree: Path, built: Path, tmp_path: Path):
    with pytest.raises(BuildError, match="not empty"):
        build_suburmp(tree, built, run=RunFlags(progress=False))
    with pytest.raises(BuildError, match="other inputs or options"):
        build_suburmp(tree, built, SubUrmpOptions(hop_ms=200), run=RunFlags(resume=True, progress=False))
    bad = subprocess.run([sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(tree), str(tmp_path / "x"),
                          "--window", "0.0005"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--window" in bad.stderr


def test_embed_stores_media_in_parquet_shards(tree: Path, built: Path, tmp_path: Path):
    from cmav_data.shards import load_pairs, verify

    out = tmp_path / "embedded"
    cmd = [sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(tree), str(out), "--embed", "--quiet"]
    refused = subprocess.run(cmd + ["--image-size", "16"], capture_output=True, text=True)
    assert refused.returncode == 1 and "--image-size" in refused.stderr
    subprocess.run(cmd + ["--shard-size", "100KB"], check=True)
    assert not (out / "img").exists() and not (out / "chunk").exists()
    shards = sorted(p.name for p in (out / "data").glob("*.parquet"))
    assert len(shards) > 2 and shards[0] == f"train-00000-of-{sum(s.startswith('train') for s in shards):05d}.parquet"
    embedded = pd.concat(pd.read_parquet(out / "data" / s) for s in shards)  # pandas reads them as they are
    files = pd.read_parquet(built / "manifest.parquet")
    assert len(embedded) == len(files)
    assert verify(out, deep=True, progress=False).ok
    # The same pairs and the same bytes as the one-file-per-pair build.
    a = load_pairs(out, media=True)
    b = load_pairs(built, media=True)
    assert a.equals(b)


# ---------------------------------------------------------------- colours of the crops

PATCHES = [(200, 30, 40), (30, 180, 60), (40, 50, 220), (128, 128, 128)]


COLOUR_PATHS = pytest.mark.parametrize("encode_args, planar", [
    ([], True),  # untagged limited range: read as BT.601, as FFmpeg does
    (["-vf", "scale=out_color_matrix=bt709", "-colorspace", "bt709"], False),  # swscale RGB with BT.709
    (["-vf", "scale=out_range=full", "-color_range", "pc"], True),  # full range: no expansion
], ids=["untagged", "bt709", "full-range"])


def _patches_frame(tmp_path: Path, encode_args: list[str]):
    """The first decoded frame of a lossless H.264 of the four PATCHES, 32 x 64 each."""
    import av
    import imageio_ffmpeg

    frame = np.zeros((64, 128, 3), np.uint8)
    for i, colour in enumerate(PATCHES):
        frame[:, i * 32 : (i + 1) * 32] = colour
    video = tmp_path / "patches.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", "128x64", "-r", "30", "-i", "-", *encode_args, "-c:v", "libx264", "-qp", "0",
                    "-pix_fmt", "yuv420p", str(video)], input=frame.tobytes() * 3, check=True)
    with av.open(str(video)) as container:
        return next(container.decode(video=0))


def _encode_crop(crop: tuple[np.ndarray, ...], quality: int) -> bytes:
    from cmav_data.images import encode_jpeg_planes, encode_jpeg_rgb

    return encode_jpeg_planes(crop, quality) if len(crop) == 3 else encode_jpeg_rgb(crop[0], quality)


@COLOUR_PATHS
def test_crops_keep_the_source_colours(tmp_path: Path, encode_args, planar):
    from cmav_data.recipes.suburmp import _frame_crops

    decoded = _patches_frame(tmp_path, encode_args)
    crops = _frame_crops(decoded, [(i * 32, 0, (i + 1) * 32, 64) for i in range(4)])
    for crop, colour in zip(crops, PATCHES):
        assert (len(crop) == 3) == planar
        rgb = np.asarray(Image.open(io.BytesIO(_encode_crop(crop, 95))).convert("RGB"), np.float64)[8:-8, 8:-8]
        assert np.abs(rgb.mean(axis=(0, 1)) - colour).max() <= 4, (colour, rgb.mean(axis=(0, 1)))


@COLOUR_PATHS
def test_odd_crops_encode_the_same_whatever_memory_surrounds_them(tmp_path: Path, encode_args, planar):
    """A crop's bytes depend on its pixels only, not on what lies past its right or bottom edge."""
    from cmav_data.recipes.suburmp import _frame_crops

    decoded = _patches_frame(tmp_path, encode_args)
    boxes = [(1, 1, 32, 64), (33, 3, 96, 40), (97, 0, 128, 63), (0, 0, 127, 64)]  # odd widths, heights, offsets
    for box, crop in zip(boxes, _frame_crops(decoded, boxes)):
        expected = _encode_crop(crop, 90)
        for fill in (0, 255):  # the same pixels inside buffers whose next columns and rows differ
            surrounded = []
            for plane in crop:
                buffer = np.full((plane.shape[0] + 2, plane.shape[1] + 3, *plane.shape[2:]), fill, np.uint8)
                buffer[: plane.shape[0], : plane.shape[1]] = plane
                surrounded.append(buffer[: plane.shape[0], : plane.shape[1]])
            assert _encode_crop(tuple(surrounded), 90) == expected, (box, fill)
        decoded_crop = Image.open(io.BytesIO(expected))
        assert decoded_crop.size == (box[2] - box[0], box[3] - box[1])


def test_crop_planes_odd_boxes_and_levels():
    from cmav_data.images import crop_planes

    levels = np.arange(256, dtype=np.uint8)
    y = np.tile(levels, (5, 1))  # 256 x 5 luma; chroma 128 x 3
    u = np.tile(levels[::2], (3, 1))
    crop_y, crop_u, crop_v = crop_planes((y, u, u), (3, 1, 8, 4), limited_range=True)
    assert crop_y.shape == (3, 5) and crop_u.shape == crop_v.shape == (2, 3)  # ceil of half the odd sizes
    full_y = crop_planes((y, u, u), (0, 0, 256, 5), limited_range=True)[0][0].astype(float)
    assert np.abs(full_y - np.clip((levels.astype(float) - 16) * 255 / 219, 0, 255)).max() <= 0.5
    assert full_y[16] == 0 and full_y[235] == 255
    chroma = crop_planes((y, u, u), (0, 0, 256, 5), limited_range=True)[1][0].astype(float)
    assert chroma[64] == 128  # the neutral level stays neutral
    assert np.array_equal(crop_planes((y, u, u), (3, 1, 8, 4), limited_range=False)[0], y[1:4, 3:8])
    with pytest.raises(ValueError, match="not inside"):
        crop_planes((y, u, u), (250, 0, 257, 5), limited_range=True)


def test_crop_box_outside_the_video_is_a_named_failure(tree: Path, tmp_path: Path):
    table = tmp_path / "crops.csv"
    table.write_text("folder,part,left,top,right,bottom\n01_Tiny_vn_vc,2,48,0,200,40\n")
    with pytest.raises(BuildError, match=r"crop box \(48, 0, 200, 40\).*not inside the 96x40 video"):
        build_suburmp(tree, tmp_path / "out", crop_table=table, run=RunFlags(progress=False))


def test_wav_bytes_are_libsndfiles():
    from cmav_data.media import wav_bytes

    rng = np.random.default_rng(0)
    edges = np.array([-1.0, 32767 / 32768, 0.5 / 32768, 1.5 / 32768, -0.5 / 32768, 0.0, 0.1, -0.1], np.float32)
    for x in (edges, rng.uniform(-1, 32767 / 32768, 22050).astype(np.float32)):
        for channels in (1, 2):
            expected = io.BytesIO()
            sf.write(expected, np.repeat(x[:, None], channels, axis=1), 44100, subtype="PCM_16", format="WAV")
            assert wav_bytes(x, 44100, channels) == expected.getvalue()
