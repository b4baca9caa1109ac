"""The URMP reader on small real trees: layout, quirks, duplicate takes, and each bad-input problem."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmav_data.corpora.urmp import inspect_urmp, load_urmp
from cmav_data.instruments import INSTRUMENTS
from cmav_data.manifests import read_table
from urmp_tree import make_piece, write_index, write_tone

REPO = Path(__file__).resolve().parent.parent


def test_committed_index_matches_the_published_facts():
    rows = read_table("urmp_index.csv")
    folders = {r["folder"] for r in rows}
    assert len(folders) == 44 and len(rows) == 149
    sizes = [sum(1 for r in rows if r["folder"] == f) for f in folders]
    assert (sizes.count(2), sizes.count(3), sizes.count(4), sizes.count(5)) == (11, 12, 14, 7)
    assert all(r["instrument"] in INSTRUMENTS for r in rows)
    odd = [(r["folder"], r["part"]) for r in rows if r["instrument"] != r["file_code"]]
    assert odd == [("15_Surprise_tpt_tpt_tbn", "3")]


def test_index_is_the_reference_list(shared_dir):
    listed = (shared_dir / "reference" / "urmp_pieces.txt").read_text().split()
    assert sorted(listed) == sorted({r["folder"] for r in read_table("urmp_index.csv")})


@pytest.fixture()
def quirky_tree(tmp_path: Path) -> Path:
    root = tmp_path / "URMP"
    make_piece(root, "15_Surprise_tpt_tpt_tbn", file_codes={3: "tpt"})
    make_piece(root, "24_Pirates_vn_vn_va_vc")
    make_piece(root, "25_Pirates_vn_vn_va_sax")
    # URMP's 24/25 Pirates share one viola take, byte for byte.
    shutil.copyfile(root / "24_Pirates_vn_vn_va_vc" / "AuSep_3_va_24_Pirates.wav",
                    root / "25_Pirates_vn_vn_va_sax" / "AuSep_3_va_25_Pirates.wav")
    return root


def test_quirks_folder_rules_and_identical_takes(quirky_tree: Path):
    corpus = load_urmp(quirky_tree)
    surprise = next(p for p in corpus.pieces if p.number == 15)
    third = surprise.parts[2]
    assert third.instrument.class_name == "trombone"
    assert third.audio.name == "AuSep_3_tpt_15_Surprise.wav" and third.audio.is_file()
    assert any("15_Surprise" in q and "trombone" in q.lower() for q in corpus.quirks)

    insp = inspect_urmp(quirky_tree, progress=False)
    assert insp.duplicate_takes == [["24_Pirates_vn_vn_va_vc/3", "25_Pirates_vn_vn_va_sax/3"]]
    # Only the 41 pieces absent from this partial copy are problems; the three present are clean.
    assert len(insp.problems) == 41
    assert all("piece in the index" in p.cause for p in insp.problems)
    assert insp.players_per_instrument == {"sax": 1, "tbn": 1, "tpt": 2, "va": 2, "vc": 1, "vn": 4}


def _problems(root: Path) -> list[str]:
    return [str(p) for p in inspect_urmp(root, progress=False).problems]


def test_clean_tree_with_its_own_index_has_no_problems(tmp_path: Path):
    root = tmp_path / "URMP"
    make_piece(root, "01_Tiny_vn_vc", seconds=1.5)
    write_index(root, ["01_Tiny_vn_vc"])
    insp = inspect_urmp(root, progress=False)
    assert insp.problems == []
    (piece,) = insp.pieces
    assert piece.audio_duration == pytest.approx(1.5)
    assert piece.video_duration == pytest.approx(1.5, abs=1 / 29.97)
    assert piece.video_size == (64, 36)


def _cut(path: Path, n_bytes: int) -> None:
    """Keep the first bytes of a file: its header still claims the full length."""
    path.write_bytes(path.read_bytes()[:n_bytes])


def _stereo(path: Path, right_gain: float) -> None:
    """Rewrite a mono track as two channels, the right one the left times ``right_gain``."""
    import soundfile as sf

    mono, sr = sf.read(path)
    sf.write(path, np.stack([mono, right_gain * mono], axis=1), sr, subtype="PCM_24")


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (lambda p: (p / "AuSep_2_vc_01_Tiny.wav").unlink(), "AuSep_2_vc_01_Tiny.wav: missing file"),
        (lambda p: (p / "AuSep_1_vn_01_Tiny.wav").write_text("not audio"), "AuSep_1_vn_01_Tiny.wav: unreadable or non-audio WAV"),
        (lambda p: write_tone(p / "AuSep_1_vn_01_Tiny.wav", 1.0, sr=44_100), "AuSep_1_vn_01_Tiny.wav: unexpected sample rate 44100 Hz"),
        (lambda p: (p / "Notes_1_vn_01_Tiny.txt").unlink(), "Notes_1_vn_01_Tiny.txt: missing file"),
        (lambda p: (p / "Vid_01_Tiny_vn_vc.mp4").write_bytes(b"\x00" * 100), "Vid_01_Tiny_vn_vc.mp4: unreadable, truncated or non-video MP4"),
        (lambda p: (p / "Vid_01_Tiny_vn_vc.mp4").unlink(), "Vid_01_Tiny_vn_vc.mp4: missing file"),
        (lambda p: _cut(p / "AuSep_1_vn_01_Tiny.wav", 3000),
         "AuSep_1_vn_01_Tiny.wav: truncated: its header says 144000 bytes of audio data (1.00 s), the file holds 2956"),
        (lambda p: (p / "Notes_1_vn_01_Tiny.txt").write_bytes(b""), "Notes_1_vn_01_Tiny.txt: empty file"),
        (lambda p: (p / "F0s_2_vc_01_Tiny.txt").write_bytes(b""), "F0s_2_vc_01_Tiny.txt: empty file"),
        (lambda p: _stereo(p / "AuSep_1_vn_01_Tiny.wav", 1.0),
         "AuSep_1_vn_01_Tiny.wav: 2 channels, URMP's tracks are mono; mixed to the mean of its 2 channels"),
        (lambda p: _stereo(p / "AuSep_2_vc_01_Tiny.wav", -0.9),
         "AuSep_2_vc_01_Tiny.wav: 2 channels, URMP's tracks are mono; mixed to channel 1 alone (the loudest): "
         "ITS 2 CHANNELS ARE IN ANTI-PHASE, their mean is 26 dB quieter"),
    ],
    ids=["missing-track", "non-audio", "sample-rate", "missing-notes", "corrupt-video", "missing-video",
         "truncated-wav", "empty-notes", "empty-f0s", "stereo", "anti-phase-stereo"],
)
def test_each_problem_names_the_file_and_cause(tmp_path: Path, break_it, expected):
    root = tmp_path / "URMP"
    piece = make_piece(root, "01_Tiny_vn_vc")
    write_index(root, ["01_Tiny_vn_vc"])
    break_it(piece)
    problems = _problems(root)
    assert len(problems) == 1 and expected in problems[0], problems


def test_short_video_unknown_code_and_unindexed_piece(tmp_path: Path):
    root = tmp_path / "URMP"
    make_piece(root, "01_Tiny_vn_vc", seconds=2.0, video_seconds=1.0)
    make_piece(root, "02_Odd_vn_xyz")
    make_piece(root, "03_Extra_fl_cl")
    write_index(root, ["01_Tiny_vn_vc", "02_Odd_vn_xyz"])
    problems = _problems(root)
    assert any("Vid_01_Tiny_vn_vc.mp4: video shorter than the audio" in p for p in problems)
    assert any("02_Odd_vn_xyz: unknown instrument code xyz" in p for p in problems)
    assert any("03_Extra_fl_cl: piece not in the index" in p for p in problems)
    assert len(problems) == 3


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmav_data.cli", *args], capture_output=True, text=True)


def test_cli_strict_json_and_no_traceback(tmp_path: Path):
    root = tmp_path / "URMP"
    piece = make_piece(root, "01_Tiny_vn_vc")
    write_index(root, ["01_Tiny_vn_vc"])
    out = tmp_path / "summary.json"
    ok = _cli("inspect-urmp", str(root), "--json", str(out), "--strict", "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert "1 pieces, 2 players" in ok.stdout
    summary = json.loads(out.read_text())
    assert summary["n_parts"] == 2 and summary["problems"] == []

    (piece / "AuSep_2_vc_01_Tiny.wav").write_bytes(b"RIFF....garbage")
    lenient = _cli("inspect-urmp", str(root), "--quiet")
    strict = _cli("inspect-urmp", str(root), "--strict", "--quiet")
    assert lenient.returncode == 0 and strict.returncode == 1
    assert "AuSep_2_vc_01_Tiny.wav: unreadable or non-audio WAV" in strict.stdout
    assert "Traceback" not in strict.stderr

    write_tone(piece / "AuSep_2_vc_01_Tiny.wav", 1.0)
    _cut(piece / "AuSep_2_vc_01_Tiny.wav", 3000)
    cut = _cli("inspect-urmp", str(root), "--strict", "--quiet")
    assert cut.returncode == 1 and "AuSep_2_vc_01_Tiny.wav: truncated" in cut.stdout

    missing = _cli("inspect-urmp", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "not a directory" in missing.stderr and "Traceback" not in missing.stderr
