"""A contact sheet of the demo corpus: frames of one piece with the notes each player sounds.

The piece with the most players is shown at four moments (in each quarter of the piece, the frame
where most players sound); under every frame, each player's note name (or a rest sign) sits under
that player's column, so one can check at a glance that the pictures follow the music.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cmav_data.atomic import atomic_path
from cmav_data.demo.scores import PieceResult
from cmav_data.demo.video import FPS, frame_count
from cmav_data.layout import player_box

TILE_WIDTH = 480
LABEL_HEIGHT = 26
HEADER_HEIGHT = 34
GAP = 6
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
REST = "-"


def note_name(midi: int) -> str:
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def sounding(notes, t: float):
    return next((n for n in notes if n.onset <= t < n.onset + n.duration), None)


def chosen_frames(result: PieceResult, count: int = 4) -> list[int]:
    """In each of ``count`` equal spans of the piece, the first frame where most players sound."""
    n_frames = frame_count(result.excerpt.seconds)
    chosen = []
    for k in range(count):
        span = range(k * n_frames // count, (k + 1) * n_frames // count, 3)
        chosen.append(max(span, key=lambda f: sum(
            sounding(notes, f / float(FPS)) is not None for notes in result.excerpt.parts)))
    return chosen


def decode_frames(video: Path, wanted: Sequence[int]) -> dict[int, np.ndarray]:
    import av

    out = {}
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= max(wanted):
                break
    return out


def write_contact_sheet(path: Path, corpus_dir: Path, results: Sequence[PieceResult]) -> None:
    result = max(results, key=lambda r: len(r.plan.instruments))  # first of the largest ensembles
    wanted = chosen_frames(result)
    decoded = decode_frames(corpus_dir / result.plan.folder / f"Vid_{result.plan.folder}.mp4", wanted)
    height, width = decoded[wanted[0]].shape[:2]
    tile_h = round(height * TILE_WIDTH / width)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=12)
    cols, rows = 2, (len(wanted) + 1) // 2
    sheet = Image.new("RGB", (cols * TILE_WIDTH + (cols + 1) * GAP,
                              HEADER_HEIGHT + rows * (tile_h + LABEL_HEIGHT + GAP) + GAP), (250, 250, 248))
    draw = ImageDraw.Draw(sheet)
    codes = result.plan.instruments
    draw.text((GAP, 9), f"{result.plan.folder}   ({result.plan.source.corpus_path}, "
              f"measures {result.excerpt.first_measure}-{result.excerpt.last_measure})", fill=(20, 20, 20), font=font)
    for i, f in enumerate(wanted):
        x = GAP + (i % cols) * (TILE_WIDTH + GAP)
        y = HEADER_HEIGHT + (i // cols) * (tile_h + LABEL_HEIGHT + GAP)
        sheet.paste(Image.fromarray(decoded[f]).resize((TILE_WIDTH, tile_h), Image.LANCZOS), (x, y))
        t = f / float(FPS)
        draw.text((x + 4, y + 3), f"{t:5.2f} s", fill=(255, 255, 255), font=small, stroke_width=2, stroke_fill=(0, 0, 0))
        for k, (code, notes) in enumerate(zip(codes, result.excerpt.parts), start=1):
            left, _top, right, _bottom = player_box(TILE_WIDTH, tile_h, len(codes), k)
            note = sounding(notes, t)
            label = f"{code} {note_name(note.midi)}" if note else f"{code} {REST}"
            draw.text((x + (left + right) / 2, y + tile_h + LABEL_HEIGHT / 2), label, anchor="mm",
                      fill=(20, 20, 20) if note else (150, 150, 150), font=font)
    with atomic_path(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
