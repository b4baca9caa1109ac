"""Excerpts of music21 corpus scores as timed notes, one monophonic line per part.

An excerpt starts on a bar line chosen with the piece's music seed and lasts the piece's length minus
a short silent lead-in and tail (URMP takes begin and end in silence too); a score shorter than that
is played again from its start (``passes`` times in all), so every piece has its planned length.
Tied notes are merged; a chord keeps its top note and overlapping notes are cut at the next onset,
because each URMP player plays one note at a time. Each part is moved by whole octaves into its instrument's range;
the few notes still outside are folded by octaves. Velocities vary around a per-part level so the
dynamics (and the players' breathing) vary.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from cmav_data.demo.errors import DemoError
from cmav_data.demo.plan import PiecePlan
from cmav_data.instruments import Instrument, instrument

LEAD_IN = 0.5  # seconds of silence before the first note
TAIL = 0.5  # seconds after the last note-off (room for the release)


class ScoreError(DemoError):
    """A corpus score cannot give the excerpt a plan asks for."""


@dataclass(frozen=True)
class Note:
    onset: float  # seconds from the start of the piece
    duration: float  # seconds, note-on to note-off
    midi: int  # sounding pitch after transposition
    velocity: int  # MIDI velocity 1..127


@dataclass(frozen=True)
class Excerpt:
    parts: tuple[tuple[Note, ...], ...]
    seconds: float  # length of the piece: the plan's (to the score's grid)
    first_measure: int  # measure numbers of the score, inclusive (the last one in the last pass)
    last_measure: int
    passes: int  # times the score is played through (more than 1 when it is shorter than the piece)
    octave_shifts: tuple[int, ...]  # per part, in octaves
    folded_notes: tuple[int, ...]  # per part, notes folded by extra octaves to fit the range


@dataclass(frozen=True)
class PieceResult:
    """A rendered piece: its plan and the excerpt it was rendered from (for demo.json and the contact sheet)."""

    plan: PiecePlan
    excerpt: Excerpt


def _parse(corpus_path: str):
    from music21 import corpus  # heavy import, only where scores are read

    score = corpus.parse(corpus_path)
    return score.scores[0] if hasattr(score, "scores") and not hasattr(score, "parts") else score


@dataclass(frozen=True)
class _ScoreLines:
    lines: tuple[tuple[tuple[float, float, int], ...], ...]  # monophonic (onset, end, midi) per used part
    measures: tuple[tuple[int, float], ...]  # (number, offset) of the first used part's measures
    quarters: float  # length of the score in quarter notes


@functools.lru_cache(maxsize=None)  # small (notes as tuples); pieces sharing a score parse it once
def _score_lines(corpus_path: str, parts: tuple[int, ...]) -> _ScoreLines:
    score = _parse(corpus_path)
    if max(parts) >= len(score.parts):
        raise ScoreError(f"{corpus_path}: has {len(score.parts)} parts, the catalogue uses {parts}")
    measures = tuple((int(m.number), float(m.offset)) for m in score.parts[parts[0]].getElementsByClass("Measure"))
    return _ScoreLines(tuple(tuple(_monophonic(_part_notes(score.parts[i]))) for i in parts), measures,
                       float(score.highestTime))


def _part_notes(part) -> list[tuple[float, float, int]]:
    """(onset, end, midi) in quarter notes, ties merged, chords reduced to their top note.

    A note tied from the previous one at the same pitch extends it (music21's stripTies does the
    same, but deep-copies the whole part first, which costs seconds on a long movement).
    """
    out: list[tuple[float, float, int]] = []
    for n in part.flatten().notes:
        ql = float(n.duration.quarterLength)
        if ql <= 0:  # grace notes take no time
            continue
        midi = max(p.midi for p in n.pitches)
        onset = float(n.offset)
        tied = n.tie is not None and n.tie.type in ("stop", "continue")
        if tied and out and out[-1][2] == midi and abs(out[-1][1] - onset) < 1e-9:
            out[-1] = (out[-1][0], onset + ql, midi)
        else:
            out.append((onset, onset + ql, midi))
    return out


def _monophonic(notes: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """One note at a time: the highest of simultaneous onsets, each cut at the next onset."""
    notes = sorted(notes, key=lambda n: (n[0], -n[2]))
    out: list[tuple[float, float, int]] = []
    for onset, end, midi in notes:
        if out and out[-1][0] == onset:
            continue
        if out and out[-1][1] > onset:
            out[-1] = (out[-1][0], onset, out[-1][2])
        out.append((onset, end, midi))
    return out


def _fit_octaves(midis: list[int], inst: Instrument) -> tuple[int, list[int], int]:
    """(octave shift, fitted pitches, folded count): the shift leaving fewest notes out, then smallest."""
    def outside(shift: int) -> int:
        return sum(not inst.low_midi <= m + 12 * shift <= inst.high_midi for m in midis)

    shift = min(range(-3, 4), key=lambda s: (outside(s), abs(s)))
    fitted, folded = [], 0
    for m in midis:
        m += 12 * shift
        f = m
        while f < inst.low_midi:
            f += 12
        while f > inst.high_midi:
            f -= 12
        folded += f != m
        fitted.append(f)
    return shift, fitted, folded


def load_excerpt(plan: PiecePlan) -> Excerpt:
    """The notes of every part of ``plan``'s excerpt, timed in seconds, in the instruments' ranges."""
    source = plan.source
    score = _score_lines(source.corpus_path, source.parts)
    sec_per_quarter = 60.0 / source.quarter_bpm
    span = (plan.seconds - LEAD_IN - TAIL) / sec_per_quarter
    lines, measures, once = score.lines, score.measures, score.quarters
    passes = max(1, math.ceil(span / once)) if once > 0 else 1
    lines = [[(o + r * once, e + r * once, m) for r in range(passes) for o, e, m in line] for line in lines]
    measures = [(num, off + r * once) for r in range(passes) for num, off in measures]
    total = once * passes

    def notes_in(line, start):
        return [(max(o, start), min(e, start + span), m) for o, e, m in line if start <= o < start + span]

    # Try bar lines in a seeded order; take the first where every player has something to play.
    starts = [off for _num, off in measures if off + span <= total] or [0.0]
    order = np.random.default_rng(plan.music_seed).permutation(len(starts))
    start = starts[order[0]]
    for k in order:
        if all(notes_in(line, starts[k]) for line in lines):
            start = starts[k]
            break
    end = min(start + span, total)

    rng = np.random.default_rng(plan.seed)  # the performance: each piece's own dynamics
    parts, shifts, folds = [], [], []
    for line, code in zip(lines, plan.instruments):
        cut = notes_in(line, start)
        shift, midis, folded = _fit_octaves([m for _o, _e, m in cut], instrument(code))
        level = rng.uniform(72, 104)
        jitter = rng.normal(0, 8, len(cut))
        parts.append(tuple(
            Note(
                onset=round(LEAD_IN + (o - start) * sec_per_quarter, 6),
                duration=round((e - o) * sec_per_quarter, 6),
                midi=int(m),
                velocity=int(np.clip(round(level + j), 1, 127)),
            )
            for (o, e, _m), m, j in zip(cut, midis, jitter)
        ))
        shifts.append(shift)
        folds.append(folded)

    def measure_at(offset: float) -> int:
        """Number of the last measure begun by ``offset`` (numbers restart with each pass)."""
        begun = [(off, num) for num, off in measures if off <= offset]
        return max(begun)[1] if begun else (measures[0][0] if measures else 0)

    return Excerpt(
        parts=tuple(parts),
        seconds=round(LEAD_IN + (end - start) * sec_per_quarter + TAIL, 6),
        first_measure=measure_at(start),
        last_measure=measure_at(max(start, end - 1e-6)),
        octave_shifts=tuple(shifts),
        folded_notes=tuple(folds),
        passes=passes,
    )
