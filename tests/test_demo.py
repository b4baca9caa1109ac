"""The demo URMP corpus: plan coverage, URMP names and formats, sound/notes/picture consistency."""

from __future__ import annotations

import csv
import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from cmav_data.cli import main
from cmav_data.corpora.urmp import inspect_urmp
from cmav_data.demo import DemoError, DemoOptions, make_demo_urmp, pieces_per_instrument, plan_corpus, render_piece
from cmav_data.demo.colour_baseline import bootstrap_accuracy, colour_features, nearest_centroid
from cmav_data.demo.players import PlayerSprites, Pose, player_look
from cmav_data.demo.render import RELEASE
from cmav_data.instruments import INSTRUMENTS
from cmav_data.layout import player_box
from cmav_data.manifests import read_table

FPS = Fraction(30000, 1001)
CODE = "(" + "|".join(INSTRUMENTS) + ")"
FOLDER_RE = re.compile(rf"^(\d\d)_([A-Z][A-Za-z]*)((?:_{CODE})+)$")


def piece_folders(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.is_dir())


def read_notes(path: Path) -> np.ndarray:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert all(len(r) == 3 for r in rows), path
    return np.array(rows, dtype=float).reshape(-1, 3)


def decode(video: Path) -> tuple[list[np.ndarray], av.video.stream.VideoStream]:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return frames, (stream.codec_context.name, stream.codec_context.pix_fmt, stream.average_rate,
                        len(container.streams.audio))


# --- plan (no rendering) -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_plan_covers_every_instrument_in_three_pieces(seed):
    plans = plan_corpus(DemoOptions(seed=seed))
    assert len(plans) == 16
    counts = pieces_per_instrument(plans)
    assert set(counts) == set(INSTRUMENTS)
    assert min(counts.values()) >= 3, counts
    assert {len(p.instruments) for p in plans} == {2, 3, 4, 5}  # duets to quintets
    for p in plans:
        assert FOLDER_RE.match(p.folder), p.folder
        assert 20.0 <= p.seconds <= 40.0


@pytest.mark.parametrize("pieces", [1, 2, 3, 4, 6])
def test_small_plans_cover_as_many_instruments_as_they_have_parts(pieces):
    plans = plan_corpus(DemoOptions(pieces=pieces))
    parts = sum(len(p.instruments) for p in plans)
    assert len({c for p in plans for c in p.instruments}) == min(len(INSTRUMENTS), parts)


def test_bad_options_are_rejected_with_a_clear_message():
    with pytest.raises(DemoError, match="seconds"):
        DemoOptions(seconds=(30.0, 20.0))
    with pytest.raises(DemoError, match="size"):
        DemoOptions(size=(961, 540))


# --- looks: no colour cue to the instrument ------------------------------------------------------

def test_looks_are_seeded_per_piece_and_player():
    assert player_look(5, 3, 2) == player_look(5, 3, 2)
    a, b = player_look(5, 3, 1), player_look(5, 3, 2)
    assert (a.wall, a.floor, a.chair) == (b.wall, b.floor, b.chair)  # one room per piece
    assert a.suit != b.suit and a.light != b.light and a.wood != b.wood  # its players differ
    assert a.wall != player_look(5, 4, 1).wall and a.wall != player_look(6, 3, 1).wall  # other piece, other seed


def test_a_player_looks_the_same_whatever_instrument_it_holds():
    look = player_look(0, 1, 1)
    violin, trumpet = PlayerSprites("vn", look, 48, 96)(None), PlayerSprites("tpt", look, 48, 96)(None)
    assert np.array_equal(violin[:8], trumpet[:8])  # the wall above the head: same pixels
    assert not np.array_equal(violin, trumpet)  # the drawing differs
    other = PlayerSprites("vn", player_look(0, 2, 1), 48, 96)(None)
    assert not np.array_equal(violin[:8], other[:8])  # same instrument, another piece: another wall


def sprite_colour_accuracy(look_of, players: int = 10, held_out: int = 3) -> float:
    """Mean-colour nearest-centroid accuracy on sprites: each class's last ``held_out`` players validate."""
    images, labels, groups, validation = [], [], [], []
    for ci, code in enumerate(sorted(INSTRUMENTS)):
        for p in range(players):
            sprites = PlayerSprites(code, look_of(ci, p), 36, 64)
            for pose in (None, Pose(1, 2, 0), Pose(4, 4, 3)):
                images.append(sprites(pose))
                labels.append(ci)
                groups.append(f"{code}{p}")
                validation.append(p >= players - held_out)
    x, y, val = colour_features(np.stack(images)), np.array(labels), np.array(validation)
    predicted = nearest_centroid(x[~val], y[~val], x[val])
    return bootstrap_accuracy(predicted == y[val], np.array(groups)[val])[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_colour_tells_no_instrument_but_would_find_a_per_class_palette(seed):
    # The demo's looks: every player of every class in a piece (room) of its own.
    assert sprite_colour_accuracy(lambda ci, p: player_look(seed, 13 * p + ci, 1)) < 0.25  # chance: 1/13
    # Control: one look per class (the old per-instrument backdrop) is found at once.
    assert sprite_colour_accuracy(lambda ci, p: player_look(seed, ci, 1)) > 0.9


# --- the tiny corpus ------------------------------------------------------------------------------

def test_layout_and_names_are_urmps(tiny_demo_urmp):
    folders = piece_folders(tiny_demo_urmp)
    assert len(folders) >= 4
    for folder in folders:
        m = FOLDER_RE.match(folder.name)
        assert m, folder.name
        nn, name, codes = m.group(1), m.group(2), m.group(3)[1:].split("_")
        expected = {f"AuMix_{folder.name}.wav", f"Sco_{folder.name}.mid", f"Vid_{folder.name}.mp4"}
        for k, code in enumerate(codes, start=1):
            expected |= {f"{kind}_{k}_{code}_{nn}_{name}.{ext}" for kind, ext in
                         (("AuSep", "wav"), ("Notes", "txt"), ("F0s", "txt"))}
        assert {p.name for p in folder.iterdir()} == expected
    # The builders split by recording: several instruments must recur across pieces.
    recurring = [c for c, n in pieces_per_instrument(plan_corpus(json_options(tiny_demo_urmp))).items() if n >= 2]
    assert len(recurring) >= 3


def json_options(corpus: Path) -> DemoOptions:
    o = json.loads((corpus / "demo.json").read_text())["options"]
    return DemoOptions(pieces=o["pieces"], seconds=tuple(o["seconds"]), size=tuple(o["size"]), seed=o["seed"])


def test_index_and_demo_json_describe_the_folders(tiny_demo_urmp):
    urmp_columns = list(read_table("urmp_index.csv")[0])
    with open(tiny_demo_urmp / "cmav_index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == urmp_columns
    by_folder: dict[str, list[dict]] = {}
    for r in rows:
        by_folder.setdefault(r["folder"], []).append(r)
    assert sorted(by_folder) == [p.name for p in piece_folders(tiny_demo_urmp)]
    for folder, parts in by_folder.items():
        codes = folder.split("_")[2:]
        assert [r["instrument"] for r in parts] == codes
        assert [int(r["part"]) for r in parts] == list(range(1, len(codes) + 1))
        assert {r["name"] for r in parts} == {folder.split("_")[1]}
    doc = json.loads((tiny_demo_urmp / "demo.json").read_text())
    from music21 import corpus

    for piece in doc["pieces"]:
        assert corpus.getWork(piece["music21"]["corpus_path"])  # traceable to a real corpus score
        first, last = piece["music21"]["measures"]
        assert first <= last
        assert [p["instrument"] for p in piece["parts"]] == piece["folder"].split("_")[2:]
    assert doc["versions"]["music21"]
    assert (tiny_demo_urmp / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_audio_is_48k_mono_24bit_and_the_mix_is_the_sum(tiny_demo_urmp):
    for folder in piece_folders(tiny_demo_urmp):
        mix, sr = sf.read(folder / f"AuMix_{folder.name}.wav")
        seps = []
        for path in sorted(folder.glob("AuSep_*.wav")):
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.subtype, info.format) == (48000, 1, "PCM_24", "WAV")
            seps.append(sf.read(path)[0])
        assert sf.info(folder / f"AuMix_{folder.name}.wav").subtype == "PCM_24"
        assert sr == 48000 and all(len(s) == len(mix) for s in seps)
        assert np.max(np.abs(mix - sum(seps))) < 1e-5 * len(seps)  # 24-bit rounding only
        assert 0.5 < np.max(np.abs(mix)) < 1.0


def test_notes_and_f0_match_the_rendered_audio(tiny_demo_urmp):
    for folder in piece_folders(tiny_demo_urmp):
        for notes_path in sorted(folder.glob("Notes_*.txt")):
            stem = notes_path.name[len("Notes_"):-len(".txt")]
            audio, sr = sf.read(folder / f"AuSep_{stem}.wav")
            notes = read_notes(notes_path)
            assert len(notes) > 0, notes_path
            covered = np.zeros(len(audio), dtype=bool)
            for onset, hz, duration in notes:
                a, b = int(onset * sr), int((onset + duration) * sr)
                assert np.sqrt(np.mean(audio[a:b] ** 2)) > 1e-3, (notes_path, onset)  # energy where a note is
                assert 25 < hz < 4200
                covered[a : int((onset + duration + RELEASE) * sr) + 2] = True
            assert np.max(np.abs(audio[~covered]), initial=0.0) < 1e-6  # silence where none
            f0 = np.loadtxt(folder / f"F0s_{stem}.txt", delimiter="\t", ndmin=2)
            assert np.allclose(np.diff(f0[:, 0]), 0.01)
            assert abs(f0[-1, 0] - len(audio) / sr) <= 0.011
            for onset, hz, duration in notes:
                mid = int(round((onset + duration / 2) / 0.01))
                assert f0[mid, 1] == pytest.approx(hz, abs=1e-3)
            voiced = f0[:, 1] > 0
            in_note = np.zeros(len(f0), dtype=bool)
            for onset, _hz, duration in notes:
                in_note |= (f0[:, 0] >= onset - 1e-9) & (f0[:, 0] < onset + duration)
            assert np.array_equal(voiced, in_note)


def test_video_is_h264_as_long_as_the_audio(tiny_demo_urmp):
    for folder in piece_folders(tiny_demo_urmp):
        frames, (codec, pix_fmt, rate, n_audio) = decode(folder / f"Vid_{folder.name}.mp4")
        seconds = sf.info(folder / f"AuMix_{folder.name}.wav").duration
        assert (codec, pix_fmt, rate, n_audio) == ("h264", "yuv420p", FPS, 1)
        assert frames[0].shape == (136, 240, 3)
        assert abs(len(frames) / float(FPS) - seconds) <= 1 / float(FPS)


def test_each_player_moves_when_playing_and_rests_when_silent(tiny_demo_urmp):
    for folder in piece_folders(tiny_demo_urmp):
        frames, _ = decode(folder / f"Vid_{folder.name}.mp4")
        h, w = frames[0].shape[:2]
        times = np.arange(len(frames)) / float(FPS)
        notes_files = sorted(folder.glob("Notes_*.txt"), key=lambda p: int(p.name.split("_")[1]))
        margin = 1.5 / float(FPS) + RELEASE
        for k, path in enumerate(notes_files, start=1):
            left, top, right, bottom = player_box(w, h, len(notes_files), k)
            region = np.stack([f[top:bottom, left:right].astype(float) for f in frames])
            notes = read_notes(path)
            playing = np.zeros(len(frames), dtype=bool)
            near = np.zeros(len(frames), dtype=bool)
            for onset, _hz, duration in notes:
                playing |= (times >= onset + 0.5 / float(FPS)) & (times < onset + duration - 0.5 / float(FPS))
                near |= (times > onset - margin) & (times < onset + duration + margin)
            silent = ~near
            assert silent.sum() >= 5 and playing.sum() >= 5, (path, silent.sum(), playing.sum())
            rest = region[silent].mean(axis=0)
            silent_change = np.abs(region[silent] - rest).mean(axis=(1, 2, 3))
            playing_change = np.abs(region[playing] - rest).mean(axis=(1, 2, 3))
            assert silent_change.max() < 1.0, path  # static at rest (codec noise only)
            assert playing_change.min() > 3 * max(silent_change.max(), 0.3), path


def test_backdrops_follow_the_piece_not_the_instrument(tiny_demo_urmp):
    """The wall above each player, in the first frame: shared within a piece (up to the player's
    light), different between pieces, also for players of the same instrument."""
    walls: dict[str, list[np.ndarray]] = {}
    for folder in piece_folders(tiny_demo_urmp):
        frame = decode(folder / f"Vid_{folder.name}.mp4")[0][0].astype(float)
        codes = folder.name.split("_")[2:]
        piece_walls = []
        for k, code in enumerate(codes, start=1):
            left, _top, right, _bottom = player_box(frame.shape[1], frame.shape[0], len(codes), k)
            wall = frame[2:10, left + 2:right - 2].reshape(-1, 3).mean(axis=0)
            piece_walls.append(wall / wall.sum())  # chromaticity: the room's hue, whatever the exposure
            walls.setdefault(code, []).append(wall)
        assert np.ptp(piece_walls, axis=0).max() < 0.08, folder.name  # one room (white balance differs)
    recurring = {code: w for code, w in walls.items() if len(w) >= 2}
    assert recurring
    for code, ws in recurring.items():
        for i in range(len(ws)):
            for j in range(i):
                assert np.abs(ws[i] - ws[j]).max() > 3, code  # another piece, another wall


def test_a_piece_renders_identically_again(tiny_demo_urmp, tmp_path):
    """Same seed, other worker layout (serial here, a process pool for the fixture): same output."""
    plan = plan_corpus(json_options(tiny_demo_urmp))[1]
    render_piece(plan, tmp_path, (240, 136))
    again, first = tmp_path / plan.folder, tiny_demo_urmp / plan.folder
    for path in sorted(first.iterdir()):
        if path.suffix != ".mp4":
            assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    frames_a, _ = decode(first / f"Vid_{plan.folder}.mp4")
    frames_b, _ = decode(again / f"Vid_{plan.folder}.mp4")
    assert len(frames_a) == len(frames_b)
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b))


def test_another_seed_gives_another_corpus():
    a, b = plan_corpus(DemoOptions(seed=0)), plan_corpus(DemoOptions(seed=1))
    assert [p.seconds for p in a] != [p.seconds for p in b]


def test_refuses_a_non_empty_output(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DemoError, match="not empty"):
        make_demo_urmp(tmp_path, DemoOptions(pieces=1, seconds=(2.0, 2.0), size=(64, 64)), progress=False)
    result = CliRunner().invoke(main, ["make-demo-urmp", str(tmp_path), "--quiet"])
    assert result.exit_code == 1
    assert "not empty" in result.output and "Traceback" not in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_makes_a_one_piece_corpus(tmp_path):
    out = tmp_path / "urmp"
    result = CliRunner().invoke(main, ["make-demo-urmp", str(out), "--pieces", "1", "--seconds", "2",
                                       "--size", "96x64", "-j", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    (folder,) = piece_folders(out)
    assert FOLDER_RE.match(folder.name)
    assert json.loads((out / "demo.json").read_text())["options"]["seconds"] == [2.0, 2.0]
    bad = CliRunner().invoke(main, ["make-demo-urmp", str(tmp_path / "x"), "--size", "big"])
    assert bad.exit_code == 2 and "WIDTHxHEIGHT" in bad.output


# --- --like-urmp: URMP's 44 pieces ---------------------------------------------------------------

def urmp_index_by_folder() -> dict[str, list[dict[str, str]]]:
    by_folder: dict[str, list[dict[str, str]]] = {}
    for row in read_table("urmp_index.csv"):
        by_folder.setdefault(row["folder"], []).append(row)
    return by_folder


def test_like_urmp_plans_the_index_pieces_with_the_release_lengths():
    plans = plan_corpus(DemoOptions(like_urmp=True))
    index = urmp_index_by_folder()
    assert [p.folder for p in plans] == list(index) and len(plans) == 44
    for p in plans:
        rows = index[p.folder]
        assert p.name == rows[0]["name"] and p.number == int(rows[0]["piece"])
        assert p.file_codes == tuple(r["file_code"] for r in rows)
    assert plans[14].folder == "15_Surprise_tpt_tpt_tbn" and plans[14].file_codes == ("tpt", "tpt", "tpt")
    mean = np.mean([p.seconds for p in plans])
    assert 100 < mean < 125, mean  # the published recordings average about 112 s
    assert DemoOptions(like_urmp=True).size == (1920, 1080)
    by_number = {p.number: p for p in plans}
    for a, b in ((21, 23), (24, 25), (40, 41)):  # arrangements of one music: one excerpt, one length
        assert (by_number[a].source, by_number[a].music_seed, by_number[a].seconds) == (
            by_number[b].source, by_number[b].music_seed, by_number[b].seconds)
        assert by_number[a].seed != by_number[b].seed  # but their own performance and looks
    scaled = plan_corpus(DemoOptions(like_urmp=True, time_scale=0.1))
    assert [s.seconds for s in scaled] == [max(2.0, round(p.seconds * 0.1, 2)) for p in plans]


def test_like_urmp_tree_has_urmps_names_and_files_and_passes_the_reader(tmp_path):
    out = tmp_path / "urmp44"
    result = CliRunner().invoke(main, ["make-demo-urmp", str(out), "--like-urmp", "--time-scale", "0.01",
                                       "--size", "96x64", "-j", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    index = urmp_index_by_folder()
    assert [p.name for p in piece_folders(out)] == sorted(index)
    for folder, rows in index.items():
        stem = f"{int(rows[0]['piece']):02d}_{rows[0]['name']}"
        expected = {f"AuMix_{folder}.wav", f"Sco_{folder}.mid", f"Vid_{folder}.mp4"}
        for r in rows:
            expected |= {f"{kind}_{r['part']}_{r['file_code']}_{stem}.{ext}"
                         for kind, ext in (("AuSep", "wav"), ("Notes", "txt"), ("F0s", "txt"))}
        assert {p.name for p in (out / folder).iterdir()} == expected, folder
    with open(out / "cmav_index.csv", newline="") as f:
        assert tuple(csv.DictReader(f)) == read_table("urmp_index.csv")  # the tree's index is URMP's
    inspection = inspect_urmp(out, progress=False)
    assert inspection.problems == []
    assert len(inspection.pieces) == 44 and sum(p.n_players for p in inspection.pieces) == 149
    assert any(q.startswith("15_Surprise_tpt_tpt_tbn part 3") for q in inspection.quirks)
    assert inspection.duplicate_takes == [["24_Pirates_vn_vn_va_vc/3", "25_Pirates_vn_vn_va_sax/3"]]
    assert all(p.video_size == (96, 64) for p in inspection.pieces)
    strict = CliRunner().invoke(main, ["inspect-urmp", str(out), "--strict", "--quiet"])
    assert strict.exit_code == 0, strict.output


def test_like_urmp_options_that_do_not_apply_are_refused(tmp_path):
    both = CliRunner().invoke(main, ["make-demo-urmp", str(tmp_path / "a"), "--like-urmp", "--pieces", "3"])
    assert both.exit_code == 2 and "--pieces" in both.output and "--like-urmp" in both.output
    lone = CliRunner().invoke(main, ["make-demo-urmp", str(tmp_path / "b"), "--time-scale", "0.1"])
    assert lone.exit_code == 2 and "--like-urmp" in lone.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_shared_take_is_byte_identical_and_the_mix_stays_in_range(tmp_path):
    plans = {p.number: p for p in plan_corpus(DemoOptions(like_urmp=True, time_scale=0.02, size=(96, 64)))}
    (take,) = plans[25].shared_takes
    assert (take.part, take.source.number, take.source_part) == (3, 24, 3)
    for number in (24, 25):
        render_piece(plans[number], tmp_path, (96, 64))
    a, b = tmp_path / plans[24].folder, tmp_path / plans[25].folder
    for kind in ("AuSep_3_va_{}_Pirates.wav", "Notes_3_va_{}_Pirates.txt", "F0s_3_va_{}_Pirates.txt"):
        assert (a / kind.format(24)).read_bytes() == (b / kind.format(25)).read_bytes(), kind
    assert (a / "AuSep_1_vn_24_Pirates.wav").read_bytes() != (b / "AuSep_1_vn_25_Pirates.wav").read_bytes()
    mix = sf.read(b / f"AuMix_{plans[25].folder}.wav")[0]
    seps = sum(sf.read(path)[0] for path in sorted(b.glob("AuSep_*.wav")))
    assert np.max(np.abs(mix - seps)) < 1e-4 and 0.3 < np.max(np.abs(mix)) < 1.0
