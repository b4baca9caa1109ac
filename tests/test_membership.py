"""--membership: the published (or a user's) recordings matched to a URMP tree's tracks by class and
duration, ties settled by rule and then by the release's own audio, decoys left out."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from cmav_data.recipes.build import BuildError
from cmav_data.recipes.membership import (Candidate, MembershipError, MembershipRequest, choose_mode,
                                          match_by_duration, published_table, read_table_file, urmp_folders)
from cmav_data.recipes.suburmp import SubUrmpOptions, plan_suburmp, window_ends_ms
from cmav_data.stats import membership_line
from urmp_tree import make_piece, write_index, write_tone

# Piece -> seconds. 03_Gamma is a decoy of no listed duration; 05_Echo's tracks have the violin and
# flute classes and (to 0.1 s) the duration of 02_Beta's: a near-duplicate that only order or audio
# tells apart. 04_Duo has two violins of one length: a tie only audio settles. 01_Alpha's video ends
# 50 ms before its tracks: its recordings still have their tracks' (the published) pair counts.
PIECES = {"01_Alpha_vn_vc": 2.0, "02_Beta_vn_fl": 1.5, "03_Gamma_vn_va": 1.8, "04_Duo_vn_vn": 1.3,
          "05_Echo_vn_fl": 1.55}
MEMBERSHIP = """split,instrument,recording_idx,pairs,first_t,last_t
train,cello,02,16,500,2000
validation,flute,05,11,500,1500
train,violin,01,16,500,2000
train,violin,03,9,500,1300
validation,violin,04,11,500,1500
validation,violin,06,9,500,1300
"""
# What the rule gives: name -> (piece, part).
INTENDED = {"cello02": ("01_Alpha_vn_vc", 2), "flute05": ("02_Beta_vn_fl", 2), "violin01": ("01_Alpha_vn_vc", 1),
            "violin03": ("04_Duo_vn_vn", 1), "violin04": ("02_Beta_vn_fl", 1), "violin06": ("04_Duo_vn_vn", 2)}
DECOYS = {("03_Gamma_vn_va", 1), ("03_Gamma_vn_va", 2), ("05_Echo_vn_fl", 1), ("05_Echo_vn_fl", 2)}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("membership") / "URMP"
    for folder, seconds in PIECES.items():
        make_piece(root, folder, seconds=seconds, size="64x36", video_seconds=seconds - 0.05 * (folder == "01_Alpha_vn_vc"))
    rng = np.random.default_rng(17)
    for k in (1, 2):  # noise, not tones: a chunk correlates with its own take only, and at one place
        write_tone(root / "04_Duo_vn_vn" / f"AuSep_{k}_vn_04_Duo.wav", 1.3,
                   data=0.2 * rng.standard_normal(int(1.3 * 48_000)))
    write_index(root)
    return root


@pytest.fixture(scope="module")
def membership_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mfile") / "mine.csv"
    path.write_text(MEMBERSHIP)
    return path


def _track(tree: Path, folder: str, part: int) -> Path:
    number, name, *codes = folder.split("_")
    return tree / folder / f"AuSep_{part}_{codes[part - 1]}_{number}_{name}.wav"


def write_release_chunks(release: Path, tree: Path, sources: dict[str, tuple[str, int]]) -> None:
    """A release-like chunk/ folder: every 0.5 s window of each source track, as the release stores
    chunks (44.1 kHz, 16-bit, two identical channels), resampled by another quality than the build's."""
    rows = {f"{r['instrument']}{int(r['recording_idx']):02d}": r for r in csv.DictReader(MEMBERSHIP.splitlines())}
    for name, (folder, part) in sources.items():
        row = rows[name]
        x, sr = sf.read(_track(tree, folder, part))
        y = soxr.resample(x, sr, 44_100, quality="VHQ")
        for t in range(int(row["first_t"]), int(row["last_t"]) + 1, 100):
            end = t * 441 // 10
            chunk = y[end - 22_050:end]
            path = release / "chunk" / row["split"] / row["instrument"] / f"{name}_{t}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.stack([chunk, chunk], axis=1), 44_100, subtype="PCM_16")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmav_data.cli", "build-suburmp", *map(str, args), "--quiet"],
                          capture_output=True, text=True)


def _membership_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "membership.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- a build from a membership file


def test_membership_file_picks_numbers_and_splits_the_intended_tracks(tree: Path, membership_file: Path,
                                                                       tmp_path: Path):
    out = tmp_path / "out"
    done = _cli(tree, out, "--membership-file", membership_file)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"membership: {membership_file} (--membership-file), matched by class and duration"
    assert "membership file: 6 of 6 recordings of" in done.stdout and "41 train / 31 validation pairs (table: 41 / 31)" in done.stdout
    assert "4 recordings matched by the tie rule, not by audio: flute05, violin03, violin04, violin06" in done.stderr

    df = pd.read_parquet(out / "manifest.parquet")
    recs = df.drop_duplicates("recording").set_index("recording")
    assert {name: (recs.loc[name, "piece"], recs.loc[name, "part"]) for name in recs.index} == INTENDED
    published = {f"{r['instrument']}{int(r['recording_idx']):02d}": r for r in csv.DictReader(MEMBERSHIP.splitlines())}
    for name, group in df.groupby("recording"):
        assert set(group.split) == {published[name]["split"]}, name
        assert len(group) == int(published[name]["pairs"]), name
        assert round(group.t_end.max() * 1000) == int(published[name]["last_t"])
        assert group.image_path.str.startswith(f"img/{published[name]['split']}/").all()

    rows = _membership_rows(out)
    matched = {r["recording"]: (r["piece"], int(r["part"]), r["how"]) for r in rows if r["status"] == "matched"}
    assert {k: v[:2] for k, v in matched.items()} == INTENDED
    assert matched["violin01"][2] == "duration" and matched["violin03"][2] == "rule"
    left = {(r["piece"], int(r["part"])): r["note"] for r in rows if r["status"] == "left_out"}
    assert set(left) == DECOYS
    assert left[("03_Gamma_vn_va", 2)] == "no published viola recording of 14 pairs"
    assert "tie: violin04 and 02_Beta_vn_fl/1, 05_Echo_vn_fl/1" in left[("05_Echo_vn_fl", 1)]

    info = json.loads((out / "build.json").read_text())["membership"]
    assert (info["mode"], info["matched"], info["recordings_in_table"], info["unmatched"]) == ("file", 6, 6, [])
    assert info["pairs"] == info["table_pairs"] == {"train": 16 + 16 + 9, "validation": 11 + 11 + 9}
    assert info["by_rule"] == ["flute05", "violin03", "violin04", "violin06"] and info["left_out_tracks"] == 4

    # The line `cmav-data stats` prints and writes into stats.md (called in-process: the command's
    # contact sheet needs librosa and matplotlib, slow to import).
    assert membership_line(out) == (f"membership file: 6 of 6 recordings of {membership_file} matched; "
                                    "41 train / 31 validation pairs (table: 41 / 31)")


def test_release_dir_settles_ties_by_audio(tree: Path, membership_file: Path, tmp_path: Path):
    # The release's violin03 is the Duo's second part: the opposite of what the rule would say.
    truth = dict(INTENDED, violin03=("04_Duo_vn_vn", 2), violin06=("04_Duo_vn_vn", 1))
    release = tmp_path / "release"
    write_release_chunks(release, tree, truth)
    request = MembershipRequest(file=str(membership_file), release_dir=str(release))
    plan = plan_suburmp(tree, SubUrmpOptions(), progress=False, membership=request)
    assert {r.name: (r.piece, r.part) for r in plan.recordings} == truth
    assert {a.how for a in plan.membership.assignments} == {"audio"}
    note = next(a.note for a in plan.membership.assignments if a.recording.name == "violin03")
    assert re.fullmatch(r"5 chunks, correlation >= (0\.99\d|1\.000), found \+0\.0 ms from their nominal place", note)
    assert set(plan.membership.left_out) == {f"{f}/{p}" for f, p in DECOYS}
    assert plan.membership.left_out["05_Echo_vn_fl/1"] == "its audio is none of violin04 (--release-dir)"
    assert not any("tie rule" in w for w in plan.warnings)

    # A recording whose chunks are another take (here: a cello's) matches no track: an error naming it.
    shutil.rmtree(release / "chunk" / "validation" / "flute")
    write_release_chunks(release, tree, {"flute05": ("01_Alpha_vn_vc", 2)})
    with pytest.raises(BuildError, match=r"1 of the 6 recordings .* match no track(.|\n)*flute05: its audio "
                                         r"\(5 chunks\) matches no flute track of that duration"):
        plan_suburmp(tree, SubUrmpOptions(), progress=False, membership=request)


def test_missing_or_ambiguous_recordings(tree: Path, membership_file: Path, tmp_path: Path):
    mine = tmp_path / "missing.csv"
    mine.write_text(membership_file.read_text() + "train,oboe,03,12,500,1600\n")
    out = tmp_path / "out"
    refused = _cli(tree, out, "--membership-file", mine)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "1 of the 7 recordings of" in refused.stderr and "--allow-unmatched builds the rest" in refused.stderr
    assert "oboe03: no oboe track whose windows end 500..1600 ms (12 pairs, about 1.6 s)" in refused.stderr
    assert not out.exists()

    allowed = _cli(tree, out, "--membership-file", mine, "--allow-unmatched")
    assert allowed.returncode == 0, allowed.stderr
    assert "1 recordings of" in allowed.stderr and "unmatched and left out (--allow-unmatched): oboe03" in allowed.stderr
    df = pd.read_parquet(out / "manifest.parquet")
    assert set(df.recording) == set(INTENDED)
    oboe = next(r for r in _membership_rows(out) if r["recording"] == "oboe03")
    assert (oboe["status"], oboe["how"], oboe["piece"]) == ("unmatched", "no track", "")
    info = json.loads((out / "build.json").read_text())["membership"]
    assert (info["matched"], info["recordings_in_table"], info["unmatched"]) == (6, 7, ["oboe03"])
    assert info["table_pairs"] == {"train": 41 + 12, "validation": 31} and info["pairs"] == {"train": 41, "validation": 31}

    # Three published violins of one length, two tracks: which two is not known, so none is matched.
    three = tmp_path / "three.csv"
    three.write_text(membership_file.read_text() + "train,violin,07,9,500,1300\n")
    with pytest.raises(BuildError) as e:
        plan_suburmp(tree, SubUrmpOptions(), progress=False, membership=MembershipRequest(file=str(three)))
    assert "violin07: 3 published recordings (violin03, violin06, violin07) but 2 track(s) (04_Duo_vn_vn/1, " \
           "04_Duo_vn_vn/2) of that class and duration" in str(e.value)


def test_auto_uses_all_on_a_small_tree_and_release_is_refused(tree: Path, tmp_path: Path):
    out = tmp_path / "auto"
    done = _cli(tree, out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == ("membership: all (auto: the tree holds 0 of URMP's 44 pieces, so it is not "
                                           "URMP): every track, Sub-URMP-style, not the release")
    assert not (out / "membership.csv").exists()
    info = json.loads((out / "build.json").read_text())["membership"]
    assert info["mode"] == "all" and info["table_pairs"] == {"train": 71_230, "validation": 9_575}
    df = pd.read_parquet(out / "manifest.parquet")
    assert df.recording.nunique() == 10  # every track, named in (piece, part) order
    assert set(df[df.piece == "04_Duo_vn_vn"].recording) == {"violin03", "violin04"}  # violins 00-02 come before

    refused = _cli(tree, tmp_path / "release", "--membership", "release")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "this tree holds 0 of them" in refused.stderr and "use --membership all" in refused.stderr
    assert "--membership-file CSV" in refused.stderr
    no_table = _cli(tree, tmp_path / "r2", "--release-dir", tmp_path)
    assert no_table.returncode == 1 and "--release-dir settles a matched membership" in no_table.stderr


# ---------------------------------------------------------------- pure functions on the published facts


def test_choose_mode_on_urmps_pieces():
    folders = sorted(urmp_folders())
    assert len(folders) == 44
    mode, line = choose_mode("auto", folders + ["99_Extra_vn_vc"], None)
    assert mode == "release" and "auto: the tree holds URMP's 44 pieces" in line
    assert choose_mode("release", folders, None)[0] == "release"
    assert choose_mode("all", folders, None)[0] == "all"
    partial = [f for f in folders if f != "24_Pirates_vn_vn_va_vc"]
    mode, line = choose_mode("auto", partial, None)
    assert mode == "all" and "43 of URMP's 44 pieces" in line
    with pytest.raises(MembershipError, match="holds 43 of them \\(missing 24_Pirates_vn_vn_va_vc\\)"):
        choose_mode("release", partial, None)
    assert choose_mode("release", partial, "mine.csv")[0] == "file"
    # a demo corpus with URMP's 44 folders (make-demo-urmp --like-urmp) is not URMP
    mode, line = choose_mode("auto", folders, None, synthetic="demo/urmp/demo.json")
    assert mode == "all" and "demo corpus made by make-demo-urmp" in line
    with pytest.raises(MembershipError, match="is a demo corpus"):
        choose_mode("release", folders, None, synthetic="demo/urmp/demo.json")
    assert choose_mode("auto", folders, "mine.csv", synthetic="demo/urmp/demo.json")[0] == "file"
    with pytest.raises(MembershipError, match="not all"):
        choose_mode("all", folders, "mine.csv")


def test_the_published_recordings_match_tracks_of_their_durations():
    """Tracks whose lengths are the published recordings' (to within a hop) are all matched, through the
    build's own window code; decoys of other lengths are left out; the pairs are the published ones."""
    table = published_table()
    assert (len(table.recordings), table.window_ms, table.hop_ms) == (72, 500, 100)
    opts = SubUrmpOptions()
    candidates = []
    for i, r in enumerate(table.recordings):
        for extra_ms, suffix in ((50, ""), (-150, "decoy")):  # a decoy one hop shorter
            seconds = Fraction(r.last_t + extra_ms, 1000)
            ends = window_ends_ms(seconds, opts)
            candidates.append(Candidate(f"{i:02d}_P{suffix}/{1 + len(suffix) % 2}", i, 1 + bool(suffix), r.class_name,
                                        (ends[0], ends[-1], len(ends))))
    membership = match_by_duration(table, candidates)
    assert len(membership.matched) == 72 and not membership.unmatched
    assert all(a.track.endswith("_P/1") for a in membership.matched)
    assert sum(a.recording.pairs for a in membership.matched if a.recording.split == "train") == 71_230
    assert table.pairs == {"train": 71_230, "validation": 9_575}
    # The release's own ties (two tracks of one class and length: flute 925 and 1740, sax 745, violin 1305
    # and 455) are settled by the rule; every other recording by its duration alone.
    by_rule = sorted(a.recording.name for a in membership.matched if a.how == "rule")
    assert by_rule == ["flute00", "flute01", "flute05", "flute08", "sax02", "sax03", "violin02", "violin03",
                       "violin04", "violin05"]
    assert len(membership.left_out) == 72 and all("decoy" in k for k in membership.left_out)


def test_a_bad_membership_file_is_one_line_naming_it(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("split,instrument,recording_idx,pairs,first_t,last_t\ntrain,violin,01,16,500,2000\n"
                   "train,violin,01,3,500,700\n")
    with pytest.raises(MembershipError, match=f"{bad}: line 3: violin01 is listed twice"):
        read_table_file(bad)
    bad.write_text("split,instrument,recording_idx,pairs,first_t,last_t\ntest,violin,01,16,500,2000\n")
    with pytest.raises(MembershipError, match="line 2: violin01: class must be one of the 13, split train or validation"):
        read_table_file(bad)
    bad.write_text("split,instrument,recording_idx,pairs,first_t,last_t\ntrain,violin,01,16,500,2050\n")
    with pytest.raises(MembershipError, match="not \\(pairs - 1\\) whole hops"):
        read_table_file(bad)
