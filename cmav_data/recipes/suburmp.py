"""Sub-URMP: image/sound pairs of one player at a time, built from a URMP tree.

Origin: L. Chen, S. Srivastava, Z. Duan, C. Xu, "Deep Cross-Modal Audio-Visual Generation",
ACM Multimedia Thematic Workshops 2017 (arXiv:1704.08292). The published release has 13 classes,
72 recordings, 80,805 pairs (71,230 train / 9,575 validation); its per-recording facts are committed
in ``manifests/suburmp_published_recordings.csv``. Sources: URMP (CC BY-NC-SA 4.0). Citation and terms:
``BIBTEX``, ``LICENSE_INFO`` (with ``cmav_data.corpora.urmp``'s for URMP itself).

Conventions (the published release's, the defaults here):
- a recording is one player's separated track (``AuSep``); byte-identical tracks that appear in two
  pieces (URMP's 24/25 Pirates viola) are one recording, attributed to the first piece;
- membership (``cmav_data.recipes.membership``): on a URMP copy, the published release's 72
  recordings, matched to URMP's tracks by class and duration (and by the release's own audio with
  ``release_dir``), numbered and split as published; elsewhere, or when asked, ``all`` tracks
  (Sub-URMP-style, not the release), numbered and split by the rules below;
- recording index NN (``all``): per class, recordings in order of (piece number, part index), from 00;
- a pair is a window of ``window`` seconds every ``hop`` seconds, named ``<class><NN>_<t>`` with t the
  window's END in milliseconds (500, 600, ...); a window is kept while it lies inside the audio and
  its image frame (below) inside the video;
- sound: the window of the track resampled to 44.1 kHz (soxr HQ), 16-bit PCM WAV with two identical
  channels (as published);
- image (``frame="start"``, the paper's): the first frame shown at or after the window's start
  t - window, frame ``ceil((t - window) * fps)`` counted from 0; ``frame="end"``: the frame shown
  just before t, ``ceil(t * fps) - 1`` (both in exact integer arithmetic: at 30000/1001 fps some
  window starts fall exactly on a frame's start, where a float product could round either way), cropped to the player's
  column (``cmav_data.layout.player_box``, or a row of ``manifests/suburmp_crops.csv``), JPEG at the
  crop's own resolution, encoded from the video's 4:2:0 YCbCr (BT.601, or untagged: only the range
  is expanded; other colorspaces go through RGB). The published images came from per-player
  footage URMP does not distribute; cmav's are crops of the public assembled video;
- split (``all``) by whole recording: per class one recording held out for validation, two for classes with
  10 or more recordings; held out are the recordings at positions 1 and n-2 of the class's NN order
  (position 1 alone when one is held out). On the published class sizes this gives exactly the
  published number of held-out recordings per class (sax: 01 and 08, as published).
Per pair the manifest also records the note coverage of the window (``Notes_*``), its mean voiced
F0 (``F0s_*``), and a silent flag (RMS below ``silence_dbfs``).

Input that is not URMP's format follows inspect-urmp's rules (``cmav_data.corpora.urmp``): a track
whose WAV is shorter than its header says, or not at 48 kHz, is a failure naming the file (what
``inspect-urmp --strict`` fails on; ``--fault-tolerant`` builds the rest). Warnings, in
``build.json`` and on stderr: an empty ``Notes_``/``F0s_`` file (note coverage / mean F0 are then
null, not 0), and a track that is not mono, with how it was mixed: the mean of its channels, or the
loudest channel alone when that mean is more than 20 dB quieter (anti-phase channels would cancel).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections import defaultdict, deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Collection, Iterator

import av
import numpy as np
import pyarrow as pa
from av.video.reformatter import Colorspace
from PIL import Image
from tqdm import tqdm

from cmav_data.atomic import write_bytes, write_text
from cmav_data.checksum import sha256_bytes, sha256_file
from cmav_data.corpora.urmp import LICENSE_INFO as URMP_LICENSE_INFO
from cmav_data.corpora.urmp import (MISSING_FILE, Part, Piece, UrmpError, annotation_problem, channels_problem,
                                    load_urmp, read_f0s, read_notes, sample_rate_problem)
from cmav_data.images import crop_planes, encode_jpeg, encode_jpeg_planes, encode_jpeg_rgb, pad_square
from cmav_data.instruments import CLASS_NAMES
from cmav_data.layout import player_box
from cmav_data.manifest import PAIR_SCHEMA, SPLITS, table_metadata, write_table
from cmav_data.manifests import reference_path
from cmav_data.media import MediaError, probe_audio, probe_video, read_audio_mono, resample, wav_bytes
from cmav_data.progress import progress_map
from cmav_data.recipes.build import (BuildDir, BuildError, RunFlags, UnitFailure, build_versions, guarded_build,
                                     split_counts)
from cmav_data.recipes.membership import (Candidate, Membership, MembershipError, MembershipRequest, choose_mode,
                                          match_by_duration, membership_csv, published_table, read_table_file,
                                          settle_by_audio, summary)

BIBTEX = """@inproceedings{chen2017deep,
  title     = {Deep Cross-Modal Audio-Visual Generation},
  author    = {Chen, Lele and Srivastava, Sudhanshu and Duan, Zhiyao and Xu, Chenliang},
  booktitle = {Proceedings of the Thematic Workshops of ACM Multimedia 2017},
  pages     = {349--357},
  year      = {2017}
}"""
# Sub-URMP's media are cut from URMP's recordings; cmav has not found a licence of the release's own.
LICENSE_INFO = f"Cut from URMP's recordings, so under URMP's terms: {URMP_LICENSE_INFO}"
FRAME_RULES = ("start", "end")
FRAME_RULE_TEXT = {
    "start": "the first frame shown at or after the window's start: frame ceil((t - window) * fps) from 0 "
             "(the paper's first frame of each chunk)",
    "end": "the frame shown just before the window's end t: frame ceil(t * fps) - 1 from 0",
}
ENCODER_THREADS = 2
MAX_PENDING_CROPS = 16
# Colorspaces whose YCbCr is JPEG's (BT.601); FFmpeg also reads untagged video as BT.601.
BT601 = {int(Colorspace.ITU601), int(Colorspace.FCC), 2, 6}  # 2: unspecified, 6: SMPTE 170M
FULL_RANGE = 2  # AVCOL_RANGE_JPEG
COMMITTED_CROPS = reference_path("suburmp_crops.csv")


@dataclass(frozen=True)
class SubUrmpOptions:
    """Every option that changes the bytes of a build (recorded in the manifest's metadata)."""

    sample_rate: int = 44_100
    window_ms: int = 500
    hop_ms: int = 100
    channels: int = 2
    jpeg_quality: int = 90
    image_size: int | None = None  # also write a square copy (padded, then resized) of this size
    drop_silent: bool = False
    silence_dbfs: float = -60.0
    max_length_mismatch: float = 1.0  # seconds a track and its video may differ by
    frame: str = "start"  # which frame of the window is its image: FRAME_RULES, see frame_index

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.hop_ms <= 0:
            raise ValueError("window and hop must be positive")
        if self.frame not in FRAME_RULES:
            raise ValueError(f"frame must be one of {', '.join(FRAME_RULES)}, got {self.frame!r}")
        if self.window_ms * self.sample_rate % 1000:
            raise ValueError(f"a {self.window_ms} ms window is not a whole number of samples at {self.sample_rate} Hz")


@dataclass(frozen=True)
class Recording:
    """One player's take: the unit of work and of resume."""

    name: str  # <class><NN>
    class_name: str
    class_index: int
    nn: int
    piece: str
    part: int
    split: str
    audio: str
    notes: str
    f0s: str
    video: str
    crop: tuple[int, int, int, int]
    audio_sha256: str
    video_sha256: str
    also_in: tuple[str, ...] = ()  # other part keys carrying the identical take
    window_ends_ms: tuple[int, ...] = ()


@dataclass
class SubUrmpPlan:
    recordings: list[Recording]
    failures: list[UnitFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    membership_mode: str = "all"
    membership_statement: str = ""
    membership: Membership | None = None  # None with membership "all"
    tracks: dict[str, tuple[str, int]] = field(default_factory=dict)  # take key -> (piece folder, part)


# ----------------------------------------------------------------------------------------------
# Planning: names, NN indices, splits, windows; media are probed, not decoded.


@dataclass(frozen=True)
class _PieceProbe:
    folder: str
    video_sha256: str | None
    video_frames: int | None
    fps: Fraction | None
    size: tuple[int, int] | None
    parts: tuple[tuple[int, str | None, int | None, int | None], ...]  # (part, sha256, frames, sr)
    failures: tuple[UnitFailure, ...]
    warnings: tuple[str, ...]


_Take = tuple[Piece, Part, _PieceProbe, int | None, int | None]  # piece, part, probe, audio frames, rate


def _probe_piece(piece: Piece) -> _PieceProbe:
    """Probe a piece's media. The rules of what is not URMP's format are inspect-urmp's
    (``cmav_data.corpora.urmp``): its problems are failures here, except empty annotations and
    non-mono tracks, which are warnings (null note coverage / F0; the mix is said)."""
    failures, warnings = [], []
    video_sha = fps = size = n_frames = None
    try:
        v = probe_video(piece.video)
        video_sha, fps, size, n_frames = sha256_file(piece.video), v.fps, (v.width, v.height), v.n_frames
    except MediaError as e:
        failures.append(UnitFailure(piece.folder, e.path, e.cause))
    parts = []
    for part in piece.parts:
        try:
            info = probe_audio(part.audio)
            if cause := sample_rate_problem(info):
                raise MediaError(part.audio, cause)
            for annotation, what in ((part.notes, "note coverage"), (part.f0s, "mean F0")):
                cause = annotation_problem(annotation)
                if cause == MISSING_FILE:
                    raise MediaError(annotation, cause)
                if cause:
                    warnings.append(f"{annotation}: {cause}; {what} recorded as missing (null)")
            if cause := channels_problem(part.audio, info):
                warnings.append(f"{part.audio}: {cause}")
            parts.append((part.index, sha256_file(part.audio), info.frames, info.samplerate))
        except MediaError as e:
            failures.append(UnitFailure(part.key, e.path, e.cause))
            parts.append((part.index, None, None, None))
    return _PieceProbe(piece.folder, video_sha, n_frames, fps, size, tuple(parts), tuple(failures),
                       tuple(warnings))


def read_crop_table(path: str | os.PathLike) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """(piece folder, part) -> crop box, from a CSV with columns folder,part,left,top,right,bottom."""
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                out[(row["folder"], int(row["part"]))] = tuple(int(row[k]) for k in ("left", "top", "right", "bottom"))
            except (KeyError, ValueError) as e:
                raise BuildError(f"{path}: bad crop row {row} ({e})") from None
    return out


def read_split_file(path: str | os.PathLike) -> dict[str, str]:
    """recording name (``violin03``) or part key (``24_Pirates_vn_vn_va_vc/3``) -> split."""
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#") or row == ["recording", "split"]:
                continue
            if len(row) != 2 or row[1].strip() not in SPLITS:
                raise BuildError(f"{path}: line {lineno}: expected 'recording,split' with split in {SPLITS}")
            out[row[0].strip()] = row[1].strip()
    return out


def held_out_positions(n: int) -> tuple[int, ...]:
    """Positions (in NN order) of a class's validation recordings under the default rule."""
    if n < 2:
        return ()  # a class with one recording stays in train (reported as a warning)
    if n >= 10:
        return (1, n - 2)
    return (1,)


def window_ends_ms(audio_seconds: Fraction, options: SubUrmpOptions) -> tuple[int, ...]:
    """Window ends t (ms) from ``window_ms`` by ``hop_ms`` while the window lies inside the track."""
    limit = audio_seconds * 1000
    if limit < options.window_ms:
        return ()
    n = int((limit - options.window_ms) // options.hop_ms) + 1
    return tuple(options.window_ms + k * options.hop_ms for k in range(n))


def pair_window_ends_ms(audio_seconds: Fraction, video_frames: int, fps: Fraction,
                        options: SubUrmpOptions) -> tuple[int, ...]:
    """The pairs' window ends: windows inside the track whose image frame is in the video.

    With the end rule the window must end by the video's end; with the start rule only its first
    frame must exist, so a video cut a few frames short of its audio (URMP's are cut to whole frames)
    loses no pair and a track's pairs are its length's, as the release's are.
    """
    return tuple(t for t in window_ends_ms(audio_seconds, options)
                 if frame_index(t, fps, options.window_ms, options.frame) < video_frames)


def frame_index(t_ms: int, fps: Fraction | int, window_ms: int = 500, rule: str = "start") -> int:
    """The image frame of the window ending at t (frames counted from 0, frame k shown from k / fps).

    ``start``: the first frame shown at or after the window's start, ceil((t - window) * fps);
    ``end``: the frame shown just before t, ceil(t * fps) - 1. Integer ceilings: exact, and fast on
    the per-pair path.
    """
    fps = Fraction(fps)
    ms = t_ms - window_ms if rule == "start" else t_ms
    ceil = -(-ms * fps.numerator // (1000 * fps.denominator))
    return ceil if rule == "start" else ceil - 1


def source_corpus(urmp_dir: str | os.PathLike) -> dict:
    """What the source corpus is, for build.json and the published card: URMP, or a synthetic
    corpus made by ``make-demo-urmp`` (its ``demo.json``: generator, seed, scores, soundfont)."""
    marker = Path(urmp_dir) / "demo.json"
    if not marker.is_file():
        return {"synthetic": False, "corpus": "URMP"}
    try:
        demo = json.loads(marker.read_bytes())
        return {
            "synthetic": True,
            "corpus": "cmav demo corpus",
            "generator": demo["generator"],
            "seed": demo["options"]["seed"],
            "options": demo["options"],
            "scores": sorted({p["music21"]["corpus_path"] for p in demo["pieces"]}),
            "soundfont": demo["soundfont"],
            "demo_json_sha256": sha256_file(marker),
        }
    except (ValueError, KeyError, TypeError) as e:
        raise BuildError(f"{marker}: not a demo.json written by make-demo-urmp ({type(e).__name__}: {e})") from None


def plan_suburmp(urmp_dir: str | os.PathLike, options: SubUrmpOptions, split_file: str | os.PathLike | None = None,
                 crop_table: str | os.PathLike | None = None, executor: Executor | None = None,
                 progress: bool = True, membership: MembershipRequest = MembershipRequest()) -> SubUrmpPlan:
    try:
        corpus = load_urmp(urmp_dir)
        demo_marker = Path(urmp_dir) / "demo.json"
        mode, statement = choose_mode(membership.mode, [p.folder for p in corpus.pieces], membership.file,
                                      membership.release_dir, demo_marker if demo_marker.is_file() else None)
    except (UrmpError, MembershipError) as e:
        raise BuildError(str(e)) from None
    plan = SubUrmpPlan(recordings=[], membership_mode=mode, membership_statement=statement)
    for problem in corpus.problems:
        if "in the index" in problem.cause:  # a partial copy, or pieces a user added
            plan.warnings.append(str(problem))
        else:
            plan.failures.append(UnitFailure(Path(problem.path).name, problem.path, problem.cause))
    crops = read_crop_table(COMMITTED_CROPS)
    if crop_table:
        crops.update(read_crop_table(crop_table))
    splits = read_split_file(split_file) if split_file else None

    probes = {p.folder: p for p in progress_map(_probe_piece, corpus.pieces, executor, desc="probe", unit="piece",
                                                 enabled=progress)}
    # One entry per distinct take, in (piece, part) order; identical takes join the first one.
    takes: list[_Take] = []
    first_by_sha: dict[str, int] = {}
    also: dict[int, list[str]] = defaultdict(list)
    for piece in corpus.pieces:
        probe = probes[piece.folder]
        plan.failures.extend(probe.failures)
        plan.warnings.extend(probe.warnings)
        for part, (_, sha, frames, sr) in zip(piece.parts, probe.parts):
            if sha is not None and sha in first_by_sha:
                also[first_by_sha[sha]].append(part.key)
                continue
            if sha is not None:
                first_by_sha[sha] = len(takes)
            takes.append((piece, part, probe, frames, sr))

    plan.tracks = {part.key: (piece.folder, part.index) for piece, part, *_ in takes}
    if mode == "all":
        names, split_of = _every_take(takes, plan, warn_lonely=splits is None)
    else:
        names, split_of = _matched_takes(takes, options, membership, plan)
    for i, (piece, part, probe, frames, sr) in enumerate(takes):
        if i not in names:
            continue  # left out of the membership (listed in membership.csv)
        name = names[i]
        split = split_of[i]
        if splits is not None:
            split = splits.get(name) or splits.get(part.key) or next(
                (splits[k] for k in also[i] if k in splits), None)
            if split is None:
                raise BuildError(f"{split_file}: no split for recording {name} ({part.key})")
        if frames is None or probe.video_frames is None:
            continue  # its failure is already recorded
        audio_s = Fraction(frames, sr)
        video_s = probe.video_frames / probe.fps
        if abs(audio_s - video_s) > Fraction(options.max_length_mismatch).limit_denominator(1000):
            plan.failures.append(UnitFailure(
                name, str(piece.video),
                f"track and video lengths differ by {float(abs(audio_s - video_s)):.2f} s "
                f"({part.audio.name}: {float(audio_s):.2f} s, video: {float(video_s):.2f} s)"))
            continue
        width, height = probe.size
        crop = crops.get((piece.folder, part.index)) or player_box(width, height, len(piece.parts), part.index)
        left, top, right, bottom = crop
        if not (0 <= left < right <= width and 0 <= top < bottom <= height):
            plan.failures.append(UnitFailure(name, str(piece.video), f"crop box {crop} (crop table) is not "
                                             f"inside the {width}x{height} video"))
            continue
        plan.recordings.append(Recording(
            name=name, class_name=part.instrument.class_name, class_index=CLASS_NAMES.index(part.instrument.class_name),
            nn=int(name[-2:]), piece=piece.folder, part=part.index, split=split, audio=str(part.audio),
            notes=str(part.notes), f0s=str(part.f0s), video=str(piece.video), crop=crop,
            audio_sha256=probe.parts[part.index - 1][1], video_sha256=probe.video_sha256,
            also_in=tuple(also[i]),
            window_ends_ms=pair_window_ends_ms(audio_s, probe.video_frames, probe.fps, options),
        ))
    plan.recordings.sort(key=lambda r: (r.class_index, r.nn))
    return plan


def _every_take(takes: list[_Take], plan: SubUrmpPlan, warn_lonely: bool) -> tuple[dict[int, str], dict[int, str]]:
    """Membership ``all``: names (NN in (piece, part) order) and splits (held-out positions) per take."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, (_, part, *_rest) in enumerate(takes):
        by_class[part.instrument.class_name].append(i)
    lonely = sorted(c for c, members in by_class.items() if len(members) < 2)
    if lonely and warn_lonely:
        plan.warnings.append(f"no validation data for {', '.join(lonely)}: one recording each")
    names, split_of = {}, {}
    for class_name, members in by_class.items():
        held = {members[p] for p in held_out_positions(len(members))}
        for nn, i in enumerate(members):
            names[i] = f"{class_name}{nn:02d}"
            split_of[i] = "validation" if i in held else "train"
    return names, split_of


def _matched_takes(takes: list[_Take], options: SubUrmpOptions, request: MembershipRequest,
                   plan: SubUrmpPlan) -> tuple[dict[int, str], dict[int, str]]:
    """Membership ``release`` or ``file``: the table's names and splits for the takes matched to it."""
    try:
        table = read_table_file(request.file) if request.file else published_table()
        # The table's t values fix its window and hop; the build's own window code turns each take's
        # length into window ends under them (the release's recordings are whole tracks).
        windows = replace(options, window_ms=table.window_ms, hop_ms=table.hop_ms)
    except (MembershipError, ValueError) as e:
        raise BuildError(str(e)) from None
    candidates = []
    for piece, part, probe, frames, sr in takes:
        ends = window_ends_ms(Fraction(frames, sr), windows) if frames is not None else ()
        candidates.append(Candidate(part.key, piece.number, part.index, part.instrument.class_name,
                                    (ends[0], ends[-1], len(ends)) if ends else None))
    membership = match_by_duration(table, candidates)
    if request.release_dir:
        audio_of = {part.key: part.audio for _, part, *_rest in takes}

        def track_audio(key: str, sample_rate: int) -> np.ndarray:
            x, sr_in, _mix = read_audio_mono(audio_of[key])
            return resample(x, sr_in, sample_rate)

        try:
            membership = settle_by_audio(membership, candidates, request.release_dir, track_audio)
        except (MembershipError, MediaError) as e:
            raise BuildError(str(e)) from None
    plan.membership = membership
    unmatched = membership.unmatched
    if unmatched and not request.allow_unmatched:
        raise BuildError(
            f"{len(unmatched)} of the {len(membership.assignments)} recordings of {table.source} match no track of "
            "this tree (a copy that does not match is most likely incomplete or another version of URMP; "
            "--allow-unmatched builds the rest):\n" + "\n".join(f"  {a.recording.name}: {a.note}" for a in unmatched))
    if unmatched:
        plan.warnings.append(f"{len(unmatched)} recordings of {table.source} unmatched and left out (--allow-unmatched): "
                             f"{', '.join(a.recording.name for a in unmatched)}; see membership.csv")
    by_rule = [a.recording.name for a in membership.matched if a.how == "rule"]
    if by_rule:
        plan.warnings.append(f"{len(by_rule)} recordings matched by the tie rule, not by audio: {', '.join(by_rule)}; "
                             "see membership.csv (--release-dir settles them by the release's own audio)")
    position = {part.key: i for i, (_, part, *_rest) in enumerate(takes)}
    names = {position[a.track]: a.recording.name for a in membership.matched}
    split_of = {position[a.track]: a.recording.split for a in membership.matched}
    return names, split_of


# ----------------------------------------------------------------------------------------------
# Building one piece: audio chunks per recording, then one pass over the video for all its players.


@dataclass(frozen=True)
class _PieceJob:
    out: str
    video: str
    fps: Fraction
    recordings: tuple[Recording, ...]
    options: SubUrmpOptions
    decode_threads: int  # 0: FFmpeg's choice (frame threads on all cores)


def media_paths(rec: Recording, t_ms: int, image_size: int | None = None) -> tuple[str, str, str | None]:
    """Relative paths of a pair's image, audio and optional square image (the published layout)."""
    name = f"{rec.name}_{t_ms}"
    sub = f"{rec.split}/{rec.class_name}/{name}"
    square = f"img_{image_size}/{sub}.jpg" if image_size else None
    return f"img/{sub}.jpg", f"chunk/{sub}.wav", square


def _window_stats(rec: Recording,
                  options: SubUrmpOptions) -> Iterator[tuple[int, bytes, float | None, float | None, bool]]:
    """(t_ms, wav bytes, note coverage, mean F0, silent) per window of a recording; coverage and F0
    are None when their annotation file holds nothing (the plan warned)."""
    x, sr_in, _mix = read_audio_mono(rec.audio)  # the plan said how, for a track that is not mono
    x = resample(x, sr_in, options.sample_rate)
    notes = read_notes(rec.notes)
    f0s = read_f0s(rec.f0s)
    f0s = f0s[np.argsort(f0s[:, 0], kind="stable")]  # searchsorted below needs time order
    f0_times = f0s[:, 0]
    n = options.window_ms * options.sample_rate // 1000
    w = options.window_ms / 1000
    for t_ms in rec.window_ends_ms:
        end = t_ms * options.sample_rate // 1000
        chunk = x[end - n:end]
        if len(chunk) < n:  # resampling may shorten the track's tail by a sample
            chunk = np.pad(chunk, (0, n - len(chunk)))
        chunk = np.clip(chunk, -1.0, 32767 / 32768)  # libsndfile wraps, not clips, on overflow
        rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
        silent = rms <= 10 ** (options.silence_dbfs / 20)
        t1 = t_ms / 1000
        t0 = t1 - w
        coverage = _note_coverage(notes, t0, t1) / w if len(notes) else None
        rows = f0s[np.searchsorted(f0_times, t0, "left") : np.searchsorted(f0_times, t1, "left")]
        voiced = rows[rows[:, 1] > 0, 1]
        mean_f0 = (float(voiced.mean()) if len(voiced) else 0.0) if len(f0s) else None
        yield t_ms, wav_bytes(chunk, options.sample_rate, options.channels), coverage, mean_f0, silent


def _note_coverage(notes: np.ndarray, t0: float, t1: float) -> float:
    """Seconds of [t0, t1) covered by at least one note (overlapping notes counted once)."""
    if not len(notes):
        return 0.0
    # Only the few notes that overlap the window enter the loop (a piece has hundreds).
    near = notes[(notes[:, 0] < t1) & (notes[:, 0] + notes[:, 2] > t0)]
    starts = np.clip(near[:, 0], t0, t1)
    ends = np.clip(near[:, 0] + near[:, 2], t0, t1)
    covered, reach = 0.0, t0
    for s, e in sorted(zip(starts, ends)):
        s = max(s, reach)
        if e > s:
            covered += e - s
            reach = e
    return covered


def _build_piece(job: _PieceJob) -> list[UnitFailure]:
    """Write every pair of the job's recordings, then their unit files. Returns failures."""
    out = Path(job.out)
    opts = job.options
    rows: dict[str, list[dict]] = {}
    failures = []
    wanted: dict[int, list[tuple[Recording, dict]]] = defaultdict(list)
    for rec in job.recordings:
        try:
            rec_rows = []
            for t_ms, wav, coverage, mean_f0, silent in _window_stats(rec, opts):
                if opts.drop_silent and silent:
                    continue
                img_rel, wav_rel, _ = media_paths(rec, t_ms, opts.image_size)
                write_bytes(out / wav_rel, wav)
                row = dict(
                    id=f"{rec.name}_{t_ms}", split=rec.split, class_name=rec.class_name, class_index=rec.class_index,
                    recording=rec.name, piece=rec.piece, part=rec.part, t_start=(t_ms - opts.window_ms) / 1000,
                    t_end=t_ms / 1000, frame_index=frame_index(t_ms, job.fps, opts.window_ms, opts.frame), image_path=img_rel, image_sha256="",
                    audio_path=wav_rel, audio_sha256=sha256_bytes(wav), note_coverage=coverage, mean_f0=mean_f0,
                    silent=silent, source_audio_sha256=rec.audio_sha256, source_video_sha256=rec.video_sha256,
                )
                rec_rows.append(row)
                wanted[row["frame_index"]].append((rec, row))
            rows[rec.name] = rec_rows
        except MediaError as e:
            failures.append(UnitFailure(rec.name, e.path, e.cause))
    try:
        _cut_images(job, wanted)
    except MediaError as e:
        return failures + [UnitFailure(name, e.path, e.cause) for name in sorted(rows)]
    _write_units(out, job, rows)
    return failures


def _save_crop(pixels: tuple[np.ndarray, ...], rec: Recording, row: dict, out: Path, opts: SubUrmpOptions) -> None:
    """Encode and write one crop: ``pixels`` is (Y, Cb, Cr) planes or a 1-tuple of an RGB array."""
    if len(pixels) == 3:
        data = encode_jpeg_planes(pixels, opts.jpeg_quality)
    else:
        data = encode_jpeg_rgb(pixels[0], opts.jpeg_quality)
    write_bytes(out / row["image_path"], data)
    row["image_sha256"] = sha256_bytes(data)
    if opts.image_size:  # the square is made from the crop as written, so the two always agree
        square = media_paths(rec, int(round(row["t_end"] * 1000)), opts.image_size)[2]
        crop = Image.open(io.BytesIO(data)).convert("RGB")
        write_bytes(out / square, encode_jpeg(pad_square(crop, opts.image_size), opts.jpeg_quality))


def _frame_crops(frame: av.VideoFrame, boxes: list[tuple[int, int, int, int]]) -> list[tuple[np.ndarray, ...]]:
    """Copies of the ``boxes`` of a decoded frame, as full-range 4:2:0 planes ready for JPEG.

    JPEG stores full-range BT.601 YCbCr: BT.601 frames (and untagged ones, read as BT.601 and
    limited range as FFmpeg does) need only a range expansion, done while copying each crop.
    Frames in other colorspaces (BT.709...) are converted to RGB by swscale with their own matrix.
    """
    if frame.colorspace not in BT601:
        rgb = frame.to_ndarray(format="rgb24")
        return [(np.ascontiguousarray(rgb[top:bottom, left:right]),) for left, top, right, bottom in boxes]
    limited = not (frame.color_range == FULL_RANGE or frame.format.name.startswith("yuvj"))
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")  # e.g. 4:2:2 or 10-bit sources; levels are kept
    planes = tuple(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes)
    return [crop_planes(planes, box, limited) for box in boxes]


def _numbered_frames(container, stream, job: _PieceJob, wanted: Collection[int]) -> Iterator[tuple[int, av.VideoFrame]]:
    """(frame number, frame) in presentation order, decoding no more than the wanted frames need.

    Frames are numbered by their timestamps, ``(pts - start) * fps`` (URMP's videos have a constant
    frame rate). A packet whose frame no pair wants is decoded only if other frames depend on it
    (``skip_frame=NONREF``): H.264's non-reference B-frames cost a third of the decode here and most
    are not wanted; the wanted frames decode to the same pixels either way. A video without a start
    time is decoded whole and its frames counted.
    """
    context = stream.codec_context
    start = stream.start_time
    if start is None:
        yield from enumerate(container.decode(stream))
        return

    def number(pts: int | None) -> int | None:
        if pts is None:
            return None
        exact = (pts - start) * stream.time_base * job.fps
        return round(exact) if abs(exact - round(exact)) < Fraction(1, 4) else None

    for packet in container.demux(stream):
        n = number(packet.pts)
        wanted_here = n is None or n in wanted  # off-grid: decode it, so the check below names the problem
        context.skip_frame = "DEFAULT" if wanted_here else "NONREF"
        for frame in packet.decode():
            index = number(frame.pts)
            if index is None:
                raise MediaError(job.video, f"frame at pts {frame.pts} is not on the {float(job.fps):.3f} fps grid "
                                            "(variable frame rate or no timestamps)")
            yield index, frame


def _cut_images(job: _PieceJob, wanted: dict[int, list[tuple[Recording, dict]]]) -> None:
    """One decode of the video; each wanted frame is cropped for every player that needs it.

    JPEG encoding (which releases the GIL) runs on two more threads while the next frames decode;
    the crops are copied out of the frame first. The bytes do not depend on the threads.
    """
    out = Path(job.out)
    opts = job.options
    if not wanted:
        return
    last = max(wanted)
    try:
        with av.open(job.video) as container, ThreadPoolExecutor(ENCODER_THREADS) as encoders:
            stream = container.streams.video[0]
            if job.decode_threads:
                stream.codec_context.thread_count = job.decode_threads
            else:
                stream.thread_type = "AUTO"
            saves: deque = deque()
            for index, frame in _numbered_frames(container, stream, job, wanted):
                if index in wanted:
                    players = wanted.pop(index)
                    crops = _frame_crops(frame, [rec.crop for rec, _ in players])
                    for (rec, row), crop in zip(players, crops):
                        saves.append(encoders.submit(_save_crop, crop, rec, row, out, opts))
                        while len(saves) > MAX_PENDING_CROPS:  # bound memory when encoding lags decoding
                            saves.popleft().result()
                if index >= last:
                    break
            for save in saves:
                save.result()
    except MediaError:
        raise
    except Exception as e:  # PyAV's decode errors on corrupt or truncated data
        if isinstance(e, OSError) and e.filename and Path(e.filename).is_relative_to(out):
            raise  # writing OUT failed (a full disk, a file-size limit): no fault of the video
        raise MediaError(job.video, f"video decode failed ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if wanted:
        raise MediaError(job.video, f"video ends before frame {min(wanted)} (truncated?)")


def _write_units(out: Path, job: _PieceJob, rows: dict[str, list[dict]]) -> None:
    """Mark the job's recordings done, after all their media are in place."""
    build = BuildDir(out)
    for name, rec_rows in rows.items():
        write_table(pa.Table.from_pylist(rec_rows, schema=PAIR_SCHEMA), build.unit_path(name), {})


# ----------------------------------------------------------------------------------------------
# The recipe.


@dataclass
class BuildResult:
    out: Path
    n_pairs: int
    counts: dict[str, dict[str, int]]  # class -> split -> pairs
    failures: list[UnitFailure]
    warnings: list[str]
    seconds: float
    membership: dict  # build.json's "membership" entry


@guarded_build("build-suburmp", out="out_dir",
               inputs={"urmp_dir": "URMP_DIR", "split_file": "--split-file", "crop_table": "--crop-table"})
def build_suburmp(urmp_dir: str | os.PathLike, out_dir: str | os.PathLike, options: SubUrmpOptions = SubUrmpOptions(),
                  *, split_file: str | os.PathLike | None = None, crop_table: str | os.PathLike | None = None,
                  embed: bool = False, shard_size: int = 256 * 10**6,
                  membership: MembershipRequest = MembershipRequest(), executor: Executor | None = None,
                  run: RunFlags = RunFlags()) -> BuildResult:
    """Build Sub-URMP from a URMP tree into ``out_dir``. See the module docstring for conventions.

    ``run.workers``: how many pieces the executor runs at once. Pieces go longest first; with one
    worker, FFmpeg decodes on every core; with several, each decodes on one thread (frame threads
    cost about 20% more CPU per frame) except the last ``workers`` pieces, whose threads fill the
    cores that the finished pieces free. Neither changes the output.

    Raises BuildError on the first bad input unless ``run.fault_tolerant``, in which case the rest is
    built and the failures are returned (and written to ``failures.jsonl``).
    With ``embed`` the media end up inside Parquet shards (``data/<split>-NNNNN-of-NNNNN.parquet``,
    ``index.json``: the layout ``cmav-data publish`` writes) instead of one file per image and sound.
    ``membership``: which tracks are built, under which names and splits (``--membership``); a
    matched membership also writes ``membership.csv``.
    """
    if embed and options.image_size:
        raise BuildError("--embed stores each pair's crop only; drop --image-size and resize when loading")
    started = time.perf_counter()
    plan = plan_suburmp(urmp_dir, options, split_file, crop_table, executor, run.progress, membership)
    corpus = source_corpus(urmp_dir)  # read before the build, so a bad demo.json stops it at once
    if plan.failures and not run.fault_tolerant:
        raise BuildError("bad input (--fault-tolerant builds the rest):\n" + "\n".join(f"  {f}" for f in plan.failures))
    build = BuildDir(out_dir)
    plan_record = {
        "kind": "suburmp",
        "options": asdict(options),
        "membership": plan.membership_mode,
        "recordings": [{"name": r.name, "split": r.split, "audio_sha256": r.audio_sha256,
                        "video_sha256": r.video_sha256, "crop": r.crop} for r in plan.recordings],
        "embed": {"shard_size": shard_size} if embed else None,
    }
    build.start(plan_record, resume=run.resume, overwrite=run.overwrite)
    if plan.membership is not None:
        write_text(build.root / "membership.csv", membership_csv(plan.membership, plan.tracks))

    jobs = []
    by_video: dict[str, list[Recording]] = defaultdict(list)
    for rec in plan.recordings:
        if not build.is_done(rec.name):
            by_video[rec.video].append(rec)
    probes = {video: probe_video(video) for video in sorted(by_video)}
    longest_first = sorted(by_video, key=lambda video: (-probes[video].n_frames, video))
    for i, video in enumerate(longest_first):
        alone_at_the_end = run.workers == 1 or i >= len(longest_first) - run.workers
        jobs.append(_PieceJob(str(build.root), video, probes[video].fps, tuple(by_video[video]), options,
                              decode_threads=0 if alone_at_the_end else 1))
    failures = list(plan.failures)
    n_done = sum(build.is_done(r.name) for r in plan.recordings)
    with tqdm(total=len(plan.recordings), initial=n_done, desc="recordings", unit="rec", position=0,
              disable=not run.progress, dynamic_ncols=True) as recs_bar, \
         tqdm(total=sum(len(r.window_ends_ms) for r in plan.recordings), desc="pairs", unit="pair", position=1,
              disable=not run.progress, dynamic_ncols=True) as pairs_bar:
        pairs_bar.update(sum(len(r.window_ends_ms) for r in plan.recordings if build.is_done(r.name)))
        for job, job_failures in zip(jobs, progress_map(_build_piece, jobs, executor, enabled=False)):
            if job_failures and not run.fault_tolerant:
                raise BuildError("bad input (--fault-tolerant builds the rest):\n" + "\n".join(f"  {f}" for f in job_failures))
            failures.extend(job_failures)
            recs_bar.set_postfix_str(Path(job.video).parent.name, refresh=False)
            recs_bar.update(len(job.recordings))
            pairs_bar.update(sum(len(r.window_ends_ms) for r in job.recordings))

    order = [r.name for r in plan.recordings]
    metadata = table_metadata("suburmp", asdict(options))
    table = build.assemble(order, PAIR_SCHEMA, metadata)
    counts = split_counts(table)
    membership_entry = summary(plan.membership_mode, plan.membership_statement, plan.membership,
                               {s: sum(c[s] for c in counts.values()) for s in SPLITS})
    seconds = time.perf_counter() - started
    build.write_failures(failures)
    write_text(build.root / "build.json", json.dumps({
        "kind": "suburmp",
        "schema_version": json.loads(metadata[b"cmav"])["schema_version"],
        "options": asdict(options),
        "frame_rule": FRAME_RULE_TEXT[options.frame],
        "membership": membership_entry,
        "source": str(Path(urmp_dir).resolve()),
        "source_corpus": corpus,
        "n_recordings": len(set(table.column("recording").to_pylist())),
        "n_pairs": table.num_rows,
        "counts": counts,
        "recordings": [{"name": r.name, "split": r.split, "piece": r.piece, "part": r.part,
                        "also_in": list(r.also_in)} for r in plan.recordings],
        "failures": len(failures),
        "warnings": plan.warnings,
        "versions": build_versions(),
        "seconds": round(seconds, 3),
    }, indent=2) + "\n")
    if embed:
        _embed_media(build.root, shard_size, executor, run.progress)
    return BuildResult(build.root, table.num_rows, counts, failures, plan.warnings, seconds, membership_entry)


def _embed_media(root: Path, shard_size: int, executor: Executor | None, progress: bool) -> None:
    """Move the media files into Parquet shards (publish's layout), then remove the files.

    ``index.json`` is written last by publish, so a build killed before it re-publishes on
    ``--resume``, and one killed after it only finishes removing the files.
    """
    from cmav_data.shards.index import INDEX_NAME
    from cmav_data.shards.publish import publish_into_locked_folder

    if not (root / INDEX_NAME).is_file():  # the build holds OUT's lock
        publish_into_locked_folder(root, root, shard_size=shard_size, executor=executor, progress=progress)
    for media_dir in [root / "img", root / "chunk", *root.glob("img_*")]:
        shutil.rmtree(media_dir, ignore_errors=True)
