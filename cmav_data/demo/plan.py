"""What the demo corpus will contain, decided before any rendering: pieces, excerpt lengths, instruments.

The scores are real multi-part pieces from music21's bundled corpus (Bach chorales, Corelli, Handel,
Schubert, Monteverdi madrigals, Haydn and Mozart quartets, Trecento songs). Each catalogue entry names
the parts it uses, in score order (highest first, as URMP numbers its parts), and the register of each
part as a choral voice letter (S, A, T, B). Instruments are assigned round-robin from those registers
alone, so the plan is pure and fast (no score is parsed), and its coverage can be checked up front:
each part goes to the least-used instrument whose range holds the register, shifted by at most an
octave. The exact octave transposition is chosen later from the excerpt's real notes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmav_data.demo.errors import DemoError
from cmav_data.instruments import INSTRUMENTS, Instrument

# Typical tessitura of each voice (MIDI note numbers, sounding), as choral and quartet writing uses it.
REGISTERS: dict[str, tuple[int, int]] = {"S": (60, 81), "A": (53, 74), "T": (48, 69), "B": (38, 62)}
# A register may stick out of an instrument's range by this many semitones (the few notes there are
# folded by an octave at render time).
RANGE_TOLERANCE = 4
MAX_OCTAVE_SHIFT = 1


@dataclass(frozen=True)
class Source:
    """One music21 corpus work the demo cuts excerpts from."""

    corpus_path: str  # as music21.corpus.parse takes it
    name: str  # URMP-style piece name: CamelCase letters only
    parts: tuple[int, ...]  # indices into the score's parts, in score order
    voices: str  # register letter per used part, e.g. "SATB"
    quarter_bpm: float  # performance tempo in quarter notes per minute


# Interleaved by size so that any prefix mixes duets, trios, quartets and quintets; the first few
# parse quickly (small test corpora).
CATALOGUE: tuple[Source, ...] = (
    Source("bach/bwv66.6", "Chorale", (0, 1, 2, 3), "SATB", 84),
    Source("corelli/opus3no1/1grave", "Grave", (0, 1, 2), "SSB", 60),
    Source("monteverdi/madrigal.3.1", "Madrigal", (0, 1, 2, 3, 4), "SSATB", 100),
    Source("mozart/k80/movement1", "Quartet", (0, 3), "SB", 60),
    Source("bach/bwv269", "Chorale", (0, 1, 3), "SAB", 96),
    Source("trecento/PMFC_04-Cara mi donna", "Cara", (0, 1, 2), "ATT", 120),
    Source("bach/bwv1.6", "Chorale", (0, 1, 2, 3, 4), "ASATB", 76),
    Source("schubert/Lindenbaum", "Lindenbaum", (0, 2), "SB", 90),
    Source("mozart/k458/movement3", "Quartet", (0, 1, 2, 3), "SATB", 56),
    Source("handel/rinaldo/Lascia_chio_pianga", "Lascia", (0, 1, 2), "SAB", 60),
    Source("monteverdi/madrigal.4.1", "Madrigal", (0, 1, 2, 3, 4), "SSATB", 96),
    Source("trecento/Fava_Dicant_nunc_iudei", "Dicant", (0, 1), "TB", 160),
    Source("mozart/k155/movement1", "Quartet", (0, 1, 2, 3), "SATB", 120),
    Source("haydn/opus74no1/movement1", "Quartet", (0, 1, 2, 3), "SATB", 126),
    Source("haydn/opus1no1/movement1", "Quartet", (0, 1, 2, 3), "SATB", 132),
    Source("mozart/k156/movement1", "Quartet", (1, 3), "AB", 132),
)


@dataclass(frozen=True)
class DemoOptions:
    """Generation options of the demo corpus; the same options give byte-identical files."""

    pieces: int = 16
    seconds: tuple[float, float] = (20.0, 40.0)  # length range of each piece (a single length if equal)
    size: tuple[int, int] = (960, 540)  # video width, height
    seed: int = 0

    def __post_init__(self) -> None:
        lo, hi = self.seconds
        if self.pieces < 1:
            raise DemoError(f"pieces must be at least 1, got {self.pieces}")
        if not 2.0 <= lo <= hi:
            raise DemoError(f"seconds must be a range lo-hi with 2 <= lo <= hi, got {lo}-{hi}")
        w, h = self.size
        if w < 64 or h < 64 or w % 2 or h % 2:
            raise DemoError(f"size must be even and at least 64x64 (H.264 yuv420p), got {w}x{h}")


@dataclass(frozen=True)
class PiecePlan:
    number: int  # URMP piece number, 1-based
    source: Source
    instruments: tuple[str, ...]  # URMP code per part, in part order
    seconds: float  # length of the piece's audio and video
    seed: int  # seed of everything random inside this piece

    @property
    def folder(self) -> str:
        return f"{self.number:02d}_{self.source.name}_" + "_".join(self.instruments)


def parse_seconds(text: str) -> tuple[float, float]:
    """``"20-40"`` -> (20.0, 40.0); ``"3"`` -> (3.0, 3.0)."""
    try:
        lo, _, hi = text.partition("-")
        return float(lo), float(hi or lo)
    except ValueError:
        raise DemoError(f"seconds: expected a number or a range like 20-40, got {text!r}") from None


def parse_size(text: str) -> tuple[int, int]:
    """``"960x540"`` -> (960, 540)."""
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise DemoError(f"size: expected WIDTHxHEIGHT like 960x540, got {text!r}") from None


def octave_fit(low: int, high: int, inst: Instrument) -> tuple[int, int]:
    """(semitones outside the range, octaves) of the best octave shift of [low, high] into ``inst``'s range."""
    def outside(octaves: int) -> int:
        return max(0, inst.low_midi - low - 12 * octaves) + max(0, high + 12 * octaves - inst.high_midi)

    return min((outside(k), abs(k)) for k in range(-MAX_OCTAVE_SHIFT - 1, MAX_OCTAVE_SHIFT + 2))


def register_candidates(voice: str) -> tuple[str, ...]:
    """Instrument codes that can play a part in register ``voice`` (within tolerance, <= 1 octave shift)."""
    low, high = REGISTERS[voice]
    out = []
    for code, inst in INSTRUMENTS.items():
        outside, octaves = octave_fit(low, high, inst)
        if outside <= RANGE_TOLERANCE and octaves <= MAX_OCTAVE_SHIFT:
            out.append(code)
    return tuple(sorted(out))


def plan_corpus(options: DemoOptions) -> list[PiecePlan]:
    """The pieces of the corpus, in order; instruments round-robin (least used first, seeded ties)."""
    rng = np.random.default_rng([options.seed, 0])
    # A seeded order of instruments breaks ties between equally used ones.
    tie_rank = {code: i for i, code in enumerate(rng.permutation(sorted(INSTRUMENTS)))}
    used = {code: 0 for code in INSTRUMENTS}
    lo, hi = options.seconds
    plans = []
    for k in range(options.pieces):
        source = CATALOGUE[k % len(CATALOGUE)]
        chosen: list[str] = []
        for voice in source.voices:
            code = min(
                register_candidates(voice),
                # Prefer instruments not yet in this piece, so pieces spread over instruments.
                key=lambda c: (c in chosen, used[c], tie_rank[c]),
            )
            chosen.append(code)
            used[code] += 1
        seconds = round(float(rng.uniform(lo, hi)), 2)
        plans.append(
            PiecePlan(number=k + 1, source=source, instruments=tuple(chosen), seconds=seconds,
                      seed=int(rng.integers(2**31)))
        )
    return plans


def pieces_per_instrument(plans: list[PiecePlan]) -> dict[str, int]:
    """How many pieces each of the 13 instruments plays in (0 for absent ones)."""
    counts = {code: 0 for code in INSTRUMENTS}
    for plan in plans:
        for code in set(plan.instruments):
            counts[code] += 1
    return counts
