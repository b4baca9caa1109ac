"""URMP: the University of Rochester Multi-Modal Music Performance dataset, as a typed tree.

Origin: B. Li, X. Liu, K. Dinesh, Z. Duan, G. Sharma, "Creating a Multitrack Classical Music
Performance Dataset for Multimodal Music Analysis: Challenges, Insights, and Applications",
IEEE Transactions on Multimedia 21(2), 2019. https://labsites.rochester.edu/air/projects/URMP.html
License: CC BY-NC-SA 4.0 (as distributed by the authors; ``LICENSE_INFO``, citation ``BIBTEX``). The
corpus is not downloadable from here; ``cmav-data make-demo-urmp`` generates a corpus in exactly this layout.

Layout: 44 piece folders ``NN_Name_i1_i2..`` (11 duets, 12 trios, 14 quartets, 7 quintets; 149
separated tracks). In each: ``AuMix_<folder>.wav`` (mix), ``AuSep_K_iK_NN_Name.wav`` (separated
track of part K), ``Notes_K_iK_NN_Name.txt`` (onset s, pitch Hz, duration s), ``F0s_K_iK_NN_Name.txt``
(time s, F0 Hz, 0 when unvoiced), ``Sco_<folder>.mid`` (score), ``Vid_<folder>.mp4`` (one assembled
video, players side by side). Audio: WAV 48 kHz mono; video: H.264 1920x1080 at 29.97 fps.

Known quirks, handled here rather than ignored:
- the folder name rules a part's instrument: ``15_Surprise_tpt_tpt_tbn``'s third part is a trombone
  although its files say ``tpt`` (the committed index records the code the files carry);
- ``24_Pirates`` and ``25_Pirates`` share a byte-identical viola take: detected by checksum and
  reported as one take, so a split can keep it on one side.

The index of the 44 pieces (folder, parts, instruments, file codes) is committed as
``manifests/urmp_index.csv``; a corpus may carry its own ``cmav_index.csv`` in the same format
(the demo corpus does), which then takes its place.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from cmav_data.checksum import sha256_file
from cmav_data.instruments import INSTRUMENTS, Instrument
from cmav_data.manifests import reference_path
from cmav_data.media import AudioInfo, MediaError, probe_audio, probe_video, read_audio_mono
from cmav_data.progress import progress_map

BIBTEX = """@article{li2019urmp,
  title   = {Creating a Multitrack Classical Music Performance Dataset for Multimodal Music
             Analysis: Challenges, Insights, and Applications},
  author  = {Li, Bochen and Liu, Xinzhao and Dinesh, Karthik and Duan, Zhiyao and Sharma, Gaurav},
  journal = {IEEE Transactions on Multimedia},
  volume  = {21}, number = {2}, pages = {522--535},
  year    = {2019}
}"""
LICENSE_INFO = ("Creative Commons Attribution-NonCommercial-ShareAlike 4.0 (CC BY-NC-SA 4.0), as distributed "
                "by the authors.")
URMP_SAMPLE_RATE = 48_000
CORPUS_INDEX_NAME = "cmav_index.csv"
COMMITTED_INDEX = reference_path("urmp_index.csv")

_FOLDER_RE = re.compile(r"^(?P<num>\d{2})_(?P<name>[A-Za-z0-9]+)(?P<codes>(?:_[a-z]+)+)$")


class UrmpError(Exception):
    """A URMP tree that cannot be read at all (the message names the path and the cause)."""


@dataclass(frozen=True)
class IndexPart:
    folder: str
    part: int
    instrument: str  # code from the folder name: the part's real instrument
    file_code: str  # code the part's file names carry (differs for 15_Surprise part 3)


@dataclass(frozen=True)
class UrmpIndex:
    """Which pieces a corpus should hold; read from a CSV like ``manifests/urmp_index.csv``."""

    path: Path
    parts: dict[str, tuple[IndexPart, ...]]  # folder -> parts in order

    @classmethod
    def read(cls, path: str | os.PathLike) -> "UrmpIndex":
        path = Path(path)
        by_folder: dict[str, list[IndexPart]] = defaultdict(list)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    by_folder[row["folder"]].append(
                        IndexPart(row["folder"], int(row["part"]), row["instrument"], row["file_code"])
                    )
        except (OSError, KeyError, ValueError) as e:
            raise UrmpError(f"{path}: not a readable URMP index ({e})") from None
        return cls(path, {k: tuple(sorted(v, key=lambda p: p.part)) for k, v in by_folder.items()})

    @classmethod
    def for_tree(cls, root: str | os.PathLike) -> "UrmpIndex":
        """The tree's own ``cmav_index.csv`` if it has one, else the committed 44-piece index."""
        own = Path(root) / CORPUS_INDEX_NAME
        return cls.read(own if own.is_file() else COMMITTED_INDEX)


@dataclass(frozen=True)
class Part:
    """One player of a piece: the separated track and its annotations."""

    piece_folder: str
    index: int  # 1-based, left to right in the video
    instrument: Instrument  # from the folder name (rules over the file names)
    file_code: str  # instrument code in this part's file names
    audio: Path  # AuSep_K_code_NN_Name.wav
    notes: Path  # Notes_K_code_NN_Name.txt
    f0s: Path  # F0s_K_code_NN_Name.txt

    @property
    def key(self) -> str:
        return f"{self.piece_folder}/{self.index}"


@dataclass(frozen=True)
class Piece:
    folder: str  # NN_Name_i1_i2..
    number: int
    name: str
    codes: tuple[str, ...]  # instrument codes from the folder name, in part order
    path: Path
    parts: tuple[Part, ...]
    mix: Path
    score: Path
    video: Path

    @property
    def stem(self) -> str:
        return f"{self.number:02d}_{self.name}"


@dataclass(frozen=True)
class Problem:
    """Something wrong with a corpus: the file it concerns and the cause."""

    path: str
    cause: str

    def __str__(self) -> str:
        return f"{self.path}: {self.cause}"


@dataclass
class UrmpCorpus:
    """The pieces found in a tree, plus the problems met while reading its names."""

    root: Path
    index: UrmpIndex
    pieces: list[Piece]
    problems: list[Problem] = field(default_factory=list)
    quirks: list[str] = field(default_factory=list)

    def parts(self) -> Iterable[Part]:
        for piece in self.pieces:
            yield from piece.parts


def parse_folder(folder: str) -> tuple[int, str, tuple[str, ...]] | None:
    """(number, name, codes) of a piece folder name, or None if it is not one."""
    m = _FOLDER_RE.match(folder)
    if not m:
        return None
    return int(m["num"]), m["name"], tuple(m["codes"].strip("_").split("_"))


def load_urmp(root: str | os.PathLike, index: UrmpIndex | None = None) -> UrmpCorpus:
    """Read a URMP tree's names (no media is opened): pieces, parts, and naming problems."""
    root = Path(root)
    if not root.is_dir():
        raise UrmpError(f"{root}: not a directory")
    index = index or UrmpIndex.for_tree(root)
    corpus = UrmpCorpus(root=root, index=index, pieces=[])
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        parsed = parse_folder(folder)
        if parsed is None:
            corpus.problems.append(Problem(str(root / folder), "not a URMP piece folder (NN_Name_codes)"))
            continue
        piece = _read_piece(root / folder, *parsed, index, corpus)
        if piece is not None:
            corpus.pieces.append(piece)
    for folder in sorted(set(index.parts) - set(folders)):
        corpus.problems.append(Problem(str(root / folder), f"piece in the index ({index.path.name}) is missing"))
    if not corpus.pieces and not corpus.problems:
        raise UrmpError(f"{root}: no URMP piece folders found")
    return corpus


def _read_piece(path: Path, number: int, name: str, codes: tuple[str, ...], index: UrmpIndex,
                corpus: UrmpCorpus) -> Piece | None:
    folder = path.name
    if not os.access(path, os.R_OK | os.X_OK):
        corpus.problems.append(Problem(str(path), "cannot read the folder (permission denied)"))
        return None
    unknown = [c for c in codes if c not in INSTRUMENTS]
    if unknown:
        known = ", ".join(sorted(INSTRUMENTS))
        corpus.problems.append(Problem(str(path), f"unknown instrument code {', '.join(unknown)} (known: {known})"))
        return None
    indexed = index.parts.get(folder)
    if indexed is None:
        corpus.problems.append(Problem(str(path), f"piece not in the index ({index.path})"))
    stem = f"{number:02d}_{name}"
    parts = []
    for k, code in enumerate(codes, 1):
        file_code = _file_code(path, k, code, stem, indexed)
        if file_code != code:
            corpus.quirks.append(
                f"{folder} part {k}: files say {file_code!r}, folder says {code!r}; the folder rules ({INSTRUMENTS[code].display_name})"
            )
        parts.append(
            Part(
                piece_folder=folder,
                index=k,
                instrument=INSTRUMENTS[code],
                file_code=file_code,
                audio=path / f"AuSep_{k}_{file_code}_{stem}.wav",
                notes=path / f"Notes_{k}_{file_code}_{stem}.txt",
                f0s=path / f"F0s_{k}_{file_code}_{stem}.txt",
            )
        )
    return Piece(
        folder=folder, number=number, name=name, codes=codes, path=path, parts=tuple(parts),
        mix=path / f"AuMix_{folder}.wav", score=path / f"Sco_{folder}.mid", video=path / f"Vid_{folder}.mp4",
    )


def _file_code(path: Path, k: int, code: str, stem: str, indexed: tuple[IndexPart, ...] | None) -> str:
    """The code part K's files carry: the index's if given, else whatever AuSep_K_*_stem.wav says."""
    if indexed and len(indexed) >= k:
        return indexed[k - 1].file_code
    found = sorted(path.glob(f"AuSep_{k}_*_{stem}.wav"))
    return found[0].name.split("_")[2] if len(found) == 1 else code


# ----------------------------------------------------------------------------------------------
# Annotations


def read_notes(path: str | os.PathLike) -> np.ndarray:
    """``Notes_*`` as an array [n, 3] of (onset s, pitch Hz, duration s)."""
    return _read_columns(path, 3)


def read_f0s(path: str | os.PathLike) -> np.ndarray:
    """``F0s_*`` as an array [n, 2] of (time s, F0 Hz; 0 when unvoiced)."""
    return _read_columns(path, 2)


def _read_columns(path: str | os.PathLike, n_columns: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "missing file")
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                values = [float(x) for x in fields[:n_columns]]
            except ValueError:
                values = []
            if len(values) != n_columns or not np.isfinite(values).all():
                raise MediaError(path, f"line {lineno}: expected {n_columns} numbers, got {line.strip()[:60]!r}")
            rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, n_columns)


# ----------------------------------------------------------------------------------------------
# Rules shared by inspect-urmp and build-suburmp: what in a track or annotation is not URMP's format.


def sample_rate_problem(info: AudioInfo) -> str | None:
    """URMP's tracks are 48 kHz. Another rate is an inspect-urmp problem and a build-suburmp
    failure (``--fault-tolerant`` builds the rest): resampled chunks would not be the dataset's."""
    if info.samplerate != URMP_SAMPLE_RATE:
        return f"unexpected sample rate {info.samplerate} Hz (URMP is {URMP_SAMPLE_RATE})"
    return None


def channels_problem(path: str | os.PathLike, info: AudioInfo) -> str | None:
    """URMP's tracks are mono. For another channel count, how build-suburmp mixes the track
    (``cmav_data.media.downmix``: reads the samples): an inspect-urmp problem, a build warning."""
    if info.channels == 1:
        return None
    return f"{info.channels} channels, URMP's tracks are mono; mixed to {read_audio_mono(path)[2]}"


MISSING_FILE = "missing file"


def annotation_problem(path: str | os.PathLike) -> str | None:
    """A ``Notes_``/``F0s_`` file that is missing (an inspect-urmp problem and a build failure) or
    holds no annotations (an inspect-urmp problem; build-suburmp warns and records null)."""
    path = Path(path)
    if not path.is_file():
        return MISSING_FILE
    with open(path, "rb") as f:
        if not f.read().strip():
            return "empty file (no annotations)"
    return None


# ----------------------------------------------------------------------------------------------
# Inspection: open the media, measure durations, find problems and duplicate takes.


@dataclass(frozen=True)
class PartReport:
    key: str
    instrument: str
    duration: float | None
    samplerate: int | None
    sha256: str | None


@dataclass(frozen=True)
class PieceReport:
    folder: str
    n_players: int
    audio_duration: float | None  # longest separated track, seconds
    video_duration: float | None
    video_size: tuple[int, int] | None
    parts: tuple[PartReport, ...]


@dataclass
class Inspection:
    """What ``inspect-urmp`` reports: per-piece facts, players per instrument, problems, quirks."""

    root: str
    index: str
    pieces: list[PieceReport]
    problems: list[Problem]
    quirks: list[str]
    duplicate_takes: list[list[str]]  # groups of part keys whose separated tracks are byte-identical

    @property
    def players_per_instrument(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for piece in self.pieces:
            for part in piece.parts:
                counts[part.instrument] += 1
        return dict(sorted(counts.items()))

    @property
    def total_duration(self) -> float:
        return sum(p.audio_duration or 0.0 for p in self.pieces)

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "index": self.index,
            "n_pieces": len(self.pieces),
            "n_parts": sum(p.n_players for p in self.pieces),
            "players_per_instrument": self.players_per_instrument,
            "total_duration": round(self.total_duration, 3),
            "pieces": [asdict(p) for p in self.pieces],
            "duplicate_takes": self.duplicate_takes,
            "quirks": self.quirks,
            "problems": [asdict(p) for p in self.problems],
        }


# A video may end up to this much before its audio without it counting as a problem:
# URMP's assembled videos are cut to whole frames.
VIDEO_SHORTFALL_TOLERANCE = 0.1


def inspect_urmp(root: str | os.PathLike, index: UrmpIndex | None = None, executor: Executor | None = None,
                 progress: bool = True) -> Inspection:
    corpus = load_urmp(root, index)
    reports = list(progress_map(_inspect_piece, corpus.pieces, executor, desc="inspect", unit="piece",
                                enabled=progress))
    problems = list(corpus.problems)
    pieces = []
    for piece_report, piece_problems in reports:
        pieces.append(piece_report)
        problems.extend(piece_problems)
    return Inspection(
        root=str(corpus.root), index=str(corpus.index.path), pieces=pieces, problems=problems,
        quirks=corpus.quirks, duplicate_takes=find_duplicate_takes(pieces),
    )


def _inspect_piece(piece: Piece) -> tuple[PieceReport, list[Problem]]:
    problems: list[Problem] = []
    part_reports = []
    for part in piece.parts:
        duration = samplerate = digest = None
        try:
            info = probe_audio(part.audio)
            duration, samplerate = info.duration, info.samplerate
            for cause in (sample_rate_problem(info), channels_problem(part.audio, info)):
                if cause:
                    problems.append(Problem(str(part.audio), cause))
            digest = sha256_file(part.audio)
        except MediaError as e:
            problems.append(Problem(e.path, e.cause))
        for annotation in (part.notes, part.f0s):
            if cause := annotation_problem(annotation):
                problems.append(Problem(str(annotation), cause))
        part_reports.append(PartReport(part.key, part.instrument.code, duration, samplerate, digest))
    for extra in (piece.mix, piece.score):
        if not extra.is_file():
            problems.append(Problem(str(extra), "missing file"))
    durations = [p.duration for p in part_reports if p.duration is not None]
    audio_duration = max(durations) if durations else None
    video_duration = video_size = None
    try:
        video = probe_video(piece.video)
        video_duration, video_size = video.duration, (video.width, video.height)
        if audio_duration is not None and video_duration < audio_duration - VIDEO_SHORTFALL_TOLERANCE:
            problems.append(Problem(str(piece.video), f"video shorter than the audio ({video_duration:.2f} s < {audio_duration:.2f} s)"))
    except MediaError as e:
        problems.append(Problem(e.path, e.cause))
    report = PieceReport(piece.folder, len(piece.parts), audio_duration, video_duration, video_size,
                         tuple(part_reports))
    return report, problems


def find_duplicate_takes(pieces: Iterable[PieceReport]) -> list[list[str]]:
    by_digest: dict[str, list[str]] = defaultdict(list)
    for piece in pieces:
        for part in piece.parts:
            if part.sha256:
                by_digest[part.sha256].append(part.key)
    return sorted(keys for keys in by_digest.values() if len(keys) > 1)


def format_inspection(insp: Inspection) -> str:
    """The human-readable summary ``inspect-urmp`` prints."""
    lines = [f"URMP tree {insp.root}  (index: {insp.index})", ""]
    lines.append(f"{'piece':<34} {'players':>7} {'audio s':>9} {'video s':>9}  size")
    for p in insp.pieces:
        audio = f"{p.audio_duration:9.2f}" if p.audio_duration is not None else f"{'-':>9}"
        video = f"{p.video_duration:9.2f}" if p.video_duration is not None else f"{'-':>9}"
        size = f"{p.video_size[0]}x{p.video_size[1]}" if p.video_size else "-"
        lines.append(f"{p.folder:<34} {p.n_players:>7} {audio} {video}  {size}")
    n_parts = sum(p.n_players for p in insp.pieces)
    lines += ["", f"{len(insp.pieces)} pieces, {n_parts} players, {insp.total_duration / 60:.1f} min of audio", ""]
    lines.append("players per instrument:")
    for code, n in insp.players_per_instrument.items():
        lines.append(f"  {INSTRUMENTS[code].class_name:<12} ({code:>3}) {n:>4}")
    if insp.duplicate_takes:
        lines += ["", "identical takes (one recording, several pieces):"]
        lines += [f"  {' = '.join(group)}" for group in insp.duplicate_takes]
    if insp.quirks:
        lines += ["", "known quirks handled:"] + [f"  {q}" for q in insp.quirks]
    lines += ["", f"problems: {len(insp.problems)}"] + [f"  {p}" for p in insp.problems]
    return "\n".join(lines)
