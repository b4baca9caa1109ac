"""What the demo corpus will contain, decided before any rendering: pieces, excerpt lengths, instruments.

The scores are real multi-part pieces from music21's bundled corpus (Bach chorales, Corelli, Handel,
Schubert, Monteverdi madrigals, Haydn and Mozart quartets, Trecento songs). Each catalogue entry names
the parts it uses, in score order (highest first, as URMP numbers its parts), and the register of each
part as a choral voice letter (S, A, T, B). Instruments are assigned round-robin from those registers
alone, so the plan is pure and fast (no score is parsed), and its coverage can be checked up front:
each part goes to the least-used instrument whose range holds the register, shifted by at most an
octave. The exact octave transposition is chosen later from the excerpt's real notes.

``like_urmp`` plans URMP's own 44 pieces instead (``plan_like_urmp``): the folder names, piece names,
instrumentation and file codes of ``manifests/urmp_index.csv`` (so ``15_Surprise``'s trombone part
carries ``tpt`` in its file names, as on URMP), and lengths distributed like the published Sub-URMP
recordings' (whole URMP tracks; see ``like_urmp_lengths``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from cmav_data.demo.errors import DemoError
from cmav_data.instruments import INSTRUMENTS, Instrument
from cmav_data.manifests import read_table

MIN_SECONDS = 2.0  # lead-in, tail and a second of music
URMP_SIZE = (1920, 1080)

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
    size: Optional[tuple[int, int]] = None  # video width, height; None: 960x540, or URMP's 1920x1080 if like_urmp
    seed: int = 0
    like_urmp: bool = False  # URMP's 44 pieces (pieces and seconds do not apply)
    time_scale: float = 1.0  # like_urmp: every piece's length times this (at least MIN_SECONDS)

    def __post_init__(self) -> None:
        if self.size is None:
            object.__setattr__(self, "size", URMP_SIZE if self.like_urmp else (960, 540))
        lo, hi = self.seconds
        if not self.time_scale > 0:
            raise DemoError(f"time scale must be positive, got {self.time_scale}")
        if self.pieces < 1:
            raise DemoError(f"pieces must be at least 1, got {self.pieces}")
        if not MIN_SECONDS <= lo <= hi:
            raise DemoError(f"seconds must be a range lo-hi with {MIN_SECONDS:g} <= lo <= hi, got {lo}-{hi}")
        w, h = self.size
        if w < 64 or h < 64 or w % 2 or h % 2:
            raise DemoError(f"size must be even and at least 64x64 (H.264 yuv420p), got {w}x{h}")


@dataclass(frozen=True)
class PiecePlan:
    number: int  # URMP piece number, 1-based
    name: str  # URMP-style piece name (CamelCase letters and digits)
    source: Source
    instruments: tuple[str, ...]  # URMP code per part, in part order
    file_codes: tuple[str, ...]  # code each part's file names carry (URMP's 15_Surprise: tpt for a tbn)
    seconds: float  # length of the piece's audio and video
    seed: int  # seed of everything random inside this piece but the excerpt's place
    music_seed: int  # seed of where the excerpt starts: pieces that share their music share it
    shared_takes: tuple["SharedTake", ...] = ()  # parts played by another piece's take

    @property
    def folder(self) -> str:
        return f"{self.number:02d}_{self.name}_" + "_".join(self.instruments)


@dataclass(frozen=True)
class SharedTake:
    """Part ``part`` of a piece is the very take (audio, notes, look) of ``source``'s ``source_part``."""

    part: int
    source: PiecePlan  # shares its music (score excerpt and length) with the piece
    source_part: int


# URMP's 24_Pirates and 25_Pirates carry one byte-identical viola take: (piece, part, source piece, part).
URMP_SHARED_TAKES = ((25, 3, 24, 3),)


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
    if options.like_urmp:
        return plan_like_urmp(options)
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
        seed = int(rng.integers(2**31))
        plans.append(PiecePlan(number=k + 1, name=source.name, source=source, instruments=tuple(chosen),
                               file_codes=tuple(chosen), seconds=seconds, seed=seed, music_seed=seed))
    return plans


def like_urmp_lengths(n: int) -> list[float]:
    """``n`` piece lengths (s) spread like the published Sub-URMP recordings': the (i + 0.5)/n quantiles.

    Each published recording is a whole URMP track (it starts at t = 500 ms and runs without gaps
    to ``last_t``, the end of its last window, so its length is ``last_t`` to within 0.1 s), and a
    piece's tracks share one length. The 72 recordings average about 112 s (34-269 s); taking
    quantiles rather than draws keeps that distribution for any seed.
    """
    durations = np.sort([int(r["last_t"]) / 1000 for r in read_table("suburmp_published_recordings.csv")])
    return [round(float(np.quantile(durations, (i + 0.5) / n)), 2) for i in range(n)]


def _shares_music(a: tuple[str, tuple[str, ...]], b: tuple[str, tuple[str, ...]]) -> bool:
    """Consecutive URMP pieces of one name and size are one arrangement for other instruments."""
    return a[0] == b[0] and len(a[1]) == len(b[1])


def plan_like_urmp(options: DemoOptions) -> list[PiecePlan]:
    """URMP's 44 pieces from the committed index: names, instrumentation and file codes as URMP's.

    Pieces that share their music (consecutive pieces with one name and number of players, e.g.
    21-23 Rejouissance) share one score excerpt and one length, as URMP's arrangements do, and
    25_Pirates' viola is 24_Pirates' take (``URMP_SHARED_TAKES``), byte for byte as on URMP. Each
    group takes the catalogue score of its size used least so far, best register fit first (seeded
    ties); lengths are ``like_urmp_lengths`` in a seeded order, times ``time_scale``.
    """
    pieces: dict[str, list[dict[str, str]]] = {}
    for row in read_table("urmp_index.csv"):
        pieces.setdefault(row["folder"], []).append(row)
    entries = []
    for folder, rows in pieces.items():
        rows = sorted(rows, key=lambda r: int(r["part"]))
        entries.append((int(rows[0]["piece"]), rows[0]["name"], tuple(r["instrument"] for r in rows),
                        tuple(r["file_code"] for r in rows), folder))
    groups: list[list[tuple]] = []
    for entry in sorted(entries):
        if groups and _shares_music(groups[-1][-1][1:3], entry[1:3]):
            groups[-1].append(entry)
        else:
            groups.append([entry])
    rng = np.random.default_rng([options.seed, 1])
    lengths = like_urmp_lengths(len(groups))
    order = rng.permutation(len(groups))
    tie_rank = {s.corpus_path: i for i, s in enumerate(rng.permutation(np.array(CATALOGUE, dtype=object)))}
    used = {s.corpus_path: 0 for s in CATALOGUE}
    plans = []
    for g, group in enumerate(groups):
        codes = group[0][2]
        candidates = [s for s in CATALOGUE if len(s.parts) == len(codes)]
        if not candidates:
            raise DemoError(f"{group[0][4]}: no catalogue score has {len(codes)} parts")

        def misfit(source: Source) -> int:
            return sum(octave_fit(*REGISTERS[v], INSTRUMENTS[c])[0] for v, c in zip(source.voices, codes))

        source = min(candidates, key=lambda s: (used[s.corpus_path], misfit(s), tie_rank[s.corpus_path]))
        used[source.corpus_path] += 1
        seconds = max(MIN_SECONDS, round(lengths[order[g]] * options.time_scale, 2))
        music_seed = int(rng.integers(2**31))
        for number, name, instruments, file_codes, folder in group:
            plan = PiecePlan(number=number, name=name, source=source, instruments=instruments, file_codes=file_codes,
                             seconds=seconds, seed=int(rng.integers(2**31)), music_seed=music_seed)
            if plan.folder != folder:
                raise DemoError(f"urmp_index.csv: folder {folder} does not match its rows ({plan.folder})")
            plans.append(plan)
    by_number = {p.number: p for p in plans}
    for number, part, source_number, source_part in URMP_SHARED_TAKES:
        plan, source = by_number[number], by_number[source_number]
        if (plan.source, plan.music_seed, plan.seconds) != (source.source, source.music_seed, source.seconds) or \
                plan.instruments[part - 1] != source.instruments[source_part - 1]:
            raise DemoError(f"{plan.folder} part {part}: cannot share the take of {source.folder} part {source_part}")
        by_number[number] = dataclasses.replace(plan, shared_takes=(SharedTake(part, source, source_part),))
    return [by_number[p.number] for p in plans]


def pieces_per_instrument(plans: list[PiecePlan]) -> dict[str, int]:
    """How many pieces each of the 13 instruments plays in (0 for absent ones)."""
    counts = {code: 0 for code in INSTRUMENTS}
    for plan in plans:
        for code in set(plan.instruments):
            counts[code] += 1
    return counts
