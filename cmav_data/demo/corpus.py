"""Write the demo corpus: URMP's folder layout and file names, one piece per task.

Per piece folder ``NN_Name_i1_i2..``: ``AuMix_<folder>.wav``, ``AuSep_K_iK_NN_Name.wav``,
``Notes_K_iK_NN_Name.txt``, ``F0s_K_iK_NN_Name.txt``, ``Sco_<folder>.mid``, ``Vid_<folder>.mp4``.
At the root: ``cmav_index.csv`` (the columns of manifests/urmp_index.csv, one row per part),
``demo.json`` (options, versions, and each piece's music21 source, measures and transpositions)
and ``contact_sheet.png``. Every piece depends only on its plan (its own seed), so the files do
not depend on the number of workers.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import shutil
from concurrent.futures import Executor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from cmav_data.atomic import sweep_temporaries, write_bytes, write_text
from cmav_data.checksum import sha256_file
from cmav_data.demo.contact_sheet import write_contact_sheet
from cmav_data.demo.errors import DemoError
from cmav_data.demo.plan import DemoOptions, PiecePlan, plan_corpus
from cmav_data.demo.players import Look, player_look
from cmav_data.demo.render import (F0_HOP, f0_text, gain_beside, level_parts, mix_gain, notes_text, render_parts,
                                   score_midi, soundfont_path, write_wav)
from cmav_data.demo.scores import Excerpt, PieceResult, load_excerpt
from cmav_data.demo.video import encode, frame_count, frames
from cmav_data.locking import LOCK_NAME, output_lock
from cmav_data.manifests import read_table
from cmav_data.versions import ffmpeg_binary_version, package_versions

FOLDER_RE = re.compile(r"^(\d{2})_([A-Za-z0-9]+)((?:_[a-z]+)+)$")
INDEX_NAME = "cmav_index.csv"
# Written before the first piece: a folder with it (or with demo.json) is a demo corpus of ours, so
# --force may replace its piece folders; any other non-empty folder (a real URMP copy) is never touched.
MARKER_NAME = ".cmav-demo"


def part_stem(plan: PiecePlan, part: int) -> str:
    """``K_iK_NN_Name`` of 1-based ``part``, as URMP's per-part file names carry it."""
    return f"{part}_{plan.file_codes[part - 1]}_{plan.number:02d}_{plan.name}"


def _performance(plan: PiecePlan) -> tuple[Excerpt, list[np.ndarray], list[Look]]:
    """The notes, separated tracks and looks of ``plan``'s players.

    A shared take is rendered as its own piece renders it (same notes, same gain, same look); the
    other parts get the take's level, or less where the mix would exceed -1 dBFS.
    """
    excerpt = load_excerpt(plan)
    looks = [player_look(plan.seed, plan.number, k) for k in range(1, len(plan.instruments) + 1)]
    if not plan.shared_takes:
        return excerpt, render_parts(excerpt.parts, plan.instruments, excerpt.seconds), looks
    parts, shifts, folds = list(excerpt.parts), list(excerpt.octave_shifts), list(excerpt.folded_notes)
    fixed: dict[int, np.ndarray] = {}
    ceiling = math.inf
    for take in plan.shared_takes:
        theirs = load_excerpt(take.source)
        levelled = level_parts(theirs.parts, take.source.instruments, theirs.seconds)
        gain = mix_gain(levelled)
        ceiling = min(ceiling, gain)
        k, j = take.part - 1, take.source_part - 1
        fixed[k] = levelled[j] * gain  # the very operation render_parts does for the source piece
        parts[k], shifts[k], folds[k] = theirs.parts[j], theirs.octave_shifts[j], theirs.folded_notes[j]
        looks[k] = player_look(take.source.seed, take.source.number, take.source_part)
    own = [k for k in range(len(parts)) if k not in fixed]
    levelled = dict(zip(own, level_parts([parts[k] for k in own], [plan.instruments[k] for k in own], excerpt.seconds)))
    gain = gain_beside(list(levelled.values()), sum(fixed.values()), ceiling)
    tracks = [fixed[k] if k in fixed else levelled[k] * gain for k in range(len(parts))]
    excerpt = dataclasses.replace(excerpt, parts=tuple(parts), octave_shifts=tuple(shifts), folded_notes=tuple(folds))
    return excerpt, tracks, looks


def render_piece(plan: PiecePlan, out_dir: str | Path, size: tuple[int, int]) -> PieceResult:
    """Write all files of one piece folder; returns what was rendered (for the index and demo.json)."""
    folder = Path(out_dir) / plan.folder
    excerpt, tracks, looks = _performance(plan)
    for k, (notes, audio) in enumerate(zip(excerpt.parts, tracks), start=1):
        stem = part_stem(plan, k)
        write_wav(folder / f"AuSep_{stem}.wav", audio)
        write_text(folder / f"Notes_{stem}.txt", notes_text(notes))
        write_text(folder / f"F0s_{stem}.txt", f0_text(notes, excerpt.seconds))
    mix_path = folder / f"AuMix_{plan.folder}.wav"
    write_wav(mix_path, sum(tracks))
    write_bytes(folder / f"Sco_{plan.folder}.mid", score_midi(excerpt.parts, plan.instruments, plan.source.quarter_bpm))
    n_frames = frame_count(excerpt.seconds)
    video_frames = frames(excerpt.parts, tracks, plan.instruments, looks, size, n_frames)
    encode(folder / f"Vid_{plan.folder}.mp4", video_frames, size, mix_path)
    return PieceResult(plan, excerpt)


def index_csv(plans: list[PiecePlan]) -> str:
    """cmav_index.csv: exactly the columns of manifests/urmp_index.csv, one row per part."""
    columns = list(read_table("urmp_index.csv")[0])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for plan in plans:
        for k, code in enumerate(plan.instruments, start=1):
            row = {"folder": plan.folder, "piece": plan.number, "name": plan.name, "part": k,
                   "instrument": code, "file_code": plan.file_codes[k - 1]}
            writer.writerow([row[c] for c in columns])
    return buf.getvalue()


# What demo.json records under "versions" (sorted there); "ffmpeg" is the program that encodes the videos.
DEMO_PACKAGES = ("cmav", "ffmpeg", "music21", "pretty_midi", "tinysoundfont", "numpy", "soundfile", "pillow")


def _take_of(plan: PiecePlan, part: int) -> Optional[str]:
    """``folder/part`` of the take that ``part`` shares, if it shares one."""
    return next((f"{t.source.folder}/{t.source_part}" for t in plan.shared_takes if t.part == part), None)


def demo_json(options: DemoOptions, results: list[PieceResult]) -> str:
    """demo.json: how the corpus was made, so each piece can be traced to its score."""
    sf2 = Path(soundfont_path())
    doc = {
        "generator": "cmav-data make-demo-urmp",
        "options": asdict(options),
        "versions": package_versions(DEMO_PACKAGES, ffmpeg=ffmpeg_binary_version),
        "soundfont": {"file": sf2.name, "sha256": sha256_file(sf2)},
        "audio": {"sample_rate": 48000, "subtype": "PCM_24", "channels": 1},
        "video": {"fps": "30000/1001", "codec": "h264", "pix_fmt": "yuv420p", "size": list(options.size)},
        "f0_hop_seconds": F0_HOP,
        "pieces": [
            {
                "folder": r.plan.folder,
                "seconds": r.excerpt.seconds,
                "music21": {
                    "corpus_path": r.plan.source.corpus_path,
                    "score_parts": list(r.plan.source.parts),
                    "measures": [r.excerpt.first_measure, r.excerpt.last_measure],
                    "passes": r.excerpt.passes,
                    "quarter_bpm": r.plan.source.quarter_bpm,
                },
                "parts": [
                    {"part": k, "instrument": code, "file_code": file_code, "same_take_as": _take_of(r.plan, k),
                     "transpose_semitones": 12 * shift,
                     "notes_folded_an_octave": folded, "notes": len(notes)}
                    for k, (code, file_code, shift, folded, notes) in enumerate(
                        zip(r.plan.instruments, r.plan.file_codes, r.excerpt.octave_shifts, r.excerpt.folded_notes,
                            r.excerpt.parts), start=1)
                ],
            }
            for r in results
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def _check_out(out: Path, force: bool) -> None:
    """Refuse, before anything is written, an output that is a file, or not empty without --force,
    or not a demo corpus (a real URMP copy is never touched)."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
        if not force:
            raise DemoError(f"{out}: not empty; choose another folder or overwrite with --force")
        if not (out / MARKER_NAME).is_file() and not (out / "demo.json").is_file():
            raise DemoError(f"{out}: not empty and not a demo corpus made by make-demo-urmp (no {MARKER_NAME} or "
                            "demo.json): --force only replaces a demo corpus; choose another folder")


def _prepare(out: Path, plans: list[PiecePlan]) -> None:
    """Clear what an earlier run into this demo corpus left that the new one would not overwrite."""
    # Piece folders of an earlier, larger or different corpus would contradict the new index.
    keep = {p.folder for p in plans}
    for child in out.iterdir():
        if child.is_dir() and FOLDER_RE.match(child.name) and child.name not in keep:
            shutil.rmtree(child)
    # A killed run leaves the half-written temporaries of the pieces it was rendering.
    sweep_temporaries(out)
    write_text(out / MARKER_NAME, "a demo corpus made by cmav-data make-demo-urmp\n")


def make_demo_urmp(
    out_dir: str | Path,
    options: DemoOptions = DemoOptions(),
    executor: Optional[Executor] = None,
    progress: bool = True,
    force: bool = False,
) -> list[Path]:
    """Generate the demo corpus in ``out_dir``; returns the piece folders in piece order.

    ``executor`` renders pieces in parallel (None: one after another); ``force`` allows a non-empty
    ``out_dir`` (its files are overwritten, piece folders not in the new corpus removed).
    """
    out = Path(out_dir)
    plans = plan_corpus(options)
    _check_out(out, force)
    with output_lock(out, "make-demo-urmp"):  # one writer: another run's temporaries are not leftovers
        return _make(out, plans, options, executor, progress)


def _make(out: Path, plans: list[PiecePlan], options: DemoOptions, executor: Optional[Executor],
          progress: bool) -> list[Path]:
    _prepare(out, plans)
    bar = tqdm(total=len(plans), desc="demo pieces", unit="piece", disable=not progress)
    results: dict[int, PieceResult] = {}
    if executor is None:
        for plan in plans:
            results[plan.number] = render_piece(plan, out, options.size)
            bar.update()
    else:
        futures = [executor.submit(render_piece, plan, out, options.size) for plan in plans]
        for future in as_completed(futures):
            result = future.result()
            results[result.plan.number] = result
            bar.update()
    bar.close()
    ordered = [results[p.number] for p in plans]
    write_text(out / INDEX_NAME, index_csv(plans))
    write_contact_sheet(out / "contact_sheet.png", out, ordered)
    write_text(out / "demo.json", demo_json(options, ordered))  # last: its presence means complete
    return [out / p.folder for p in plans]
