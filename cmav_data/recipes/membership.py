"""Which URMP tracks are the published Sub-URMP's recordings, matched by class and duration.

The published release (Chen et al. 2017; ``manifests/suburmp_published_recordings.csv``) has 72
recordings out of URMP's 149 separated tracks, numbered with gaps (flute 00, 01, 02, 05, 08, 09):
the numbering cannot be derived from URMP's order, only matched. Every published recording is a
whole track: its windows end at t = first_t, first_t + hop, ... last_t without gaps, so its pair
count pins its duration to within one hop.

Rules (pure functions; the caller supplies the tracks and their window ends, computed by the
build's own window code with the table's window and hop):
- a track fits a published recording when it has the same class and the same window ends
  (first_t, last_t, pairs);
- a group of published recordings and tracks that fit each other (same class and window ends) with
  one of each is a match ``by duration``. Larger groups (two tracks of one class in one piece,
  pieces that share their music) are settled ``by rule``: published recordings in NN order take the
  tracks in (piece number, part) order, tracks left over are left out. A group with fewer tracks
  than published recordings is ``ambiguous``: none of them is matched;
- with the release's own ``chunk/`` folder, every group is settled ``by audio`` instead: a few
  chunks of each published recording are looked for in each fitting track's audio (resampled to
  the chunks' rate) by normalised cross-correlation within one window either side of their
  nominal place; a recording is a track's when all of its chunks correlate above
  ``AUDIO_MATCH`` (a recording whose audio matches no fitting track is unmatched).
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from cmav_data.instruments import CLASS_NAMES
from cmav_data.manifest import SPLITS
from cmav_data.manifests import read_table
from cmav_data.media import MediaError, read_audio_mono

PUBLISHED_TABLE = "suburmp_published_recordings.csv"
URMP_INDEX = "urmp_index.csv"
COLUMNS = ("split", "instrument", "recording_idx", "pairs", "first_t", "last_t")
MODES = ("auto", "release", "all")
NOT_THE_RELEASE = "Sub-URMP-style, not the release"
AUDIO_MATCH = 0.9  # in the tests the same take resampled otherwise correlates above 0.99, other tracks below 0.3
CHUNKS_PER_RECORDING = 5
SILENT_RMS = 1e-3  # chunks quieter than this (-60 dBFS) say nothing about which take they are
SEARCH_MARGIN_MS = 10  # beyond one window either side: resamplers' delays


@dataclass(frozen=True)
class MembershipRequest:
    """What the user asked for (``--membership``, ``--membership-file``, ``--release-dir``, ``--allow-unmatched``)."""

    mode: str = "auto"
    file: str | None = None
    release_dir: str | None = None
    allow_unmatched: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"membership must be one of {', '.join(MODES)}, got {self.mode!r}")


class MembershipError(Exception):
    """A membership that cannot be read or applied; the message names the file or the choice."""


@dataclass(frozen=True)
class PublishedRecording:
    """One row of a membership table: a recording of the release (or of the user's own file)."""

    class_name: str
    nn: int
    split: str
    pairs: int
    first_t: int  # ms, the first window's end
    last_t: int

    @property
    def name(self) -> str:
        return f"{self.class_name}{self.nn:02d}"


@dataclass(frozen=True)
class MembershipTable:
    source: str  # the published table's name, or the user's file
    recordings: tuple[PublishedRecording, ...]
    window_ms: int  # the window and hop the table's t values imply
    hop_ms: int

    @property
    def pairs(self) -> dict[str, int]:
        return {s: sum(r.pairs for r in self.recordings if r.split == s) for s in SPLITS}


@dataclass(frozen=True)
class Candidate:
    """A URMP track that may be a published recording."""

    key: str  # <piece folder>/<part>
    piece_number: int
    part: int
    class_name: str
    window_ends: tuple[int, int, int] | None  # (first_t, last_t, pairs) with the table's window and hop

    @property
    def order(self) -> tuple[int, int]:
        return self.piece_number, self.part


@dataclass(frozen=True)
class Assignment:
    recording: PublishedRecording
    track: str | None  # the candidate's key, None when unmatched
    how: str  # "duration", "rule", "audio"; for an unmatched recording: "no track", "ambiguous", "audio"
    note: str = ""


@dataclass
class Membership:
    table: MembershipTable
    assignments: list[Assignment]  # in table order
    left_out: dict[str, str] = field(default_factory=dict)  # track key -> why it is left out

    @property
    def matched(self) -> list[Assignment]:
        return [a for a in self.assignments if a.track is not None]

    @property
    def unmatched(self) -> list[Assignment]:
        return [a for a in self.assignments if a.track is None]


# ----------------------------------------------------------------------------------------------
# Tables


def parse_table(rows: Iterable[dict[str, str]], source: str) -> MembershipTable:
    """Rows with the columns of ``suburmp_published_recordings.csv`` -> a checked table."""
    recordings, seen, hops = [], set(), set()
    for line, row in enumerate(rows, 2):
        try:
            values = {k: row[k].strip() for k in COLUMNS}
            rec = PublishedRecording(values["instrument"], int(values["recording_idx"]), values["split"],
                                     int(values["pairs"]), int(values["first_t"]), int(values["last_t"]))
        except (KeyError, AttributeError, ValueError):
            raise MembershipError(f"{source}: line {line}: expected the columns {','.join(COLUMNS)} "
                                  "with whole numbers for the last four") from None
        if rec.class_name not in CLASS_NAMES or rec.split not in SPLITS or not 0 <= rec.nn <= 99 or rec.pairs < 1:
            raise MembershipError(f"{source}: line {line}: {rec.name}: class must be one of the 13, split "
                                  f"train or validation, index 00-99 and pairs at least 1")
        if rec.name in seen:
            raise MembershipError(f"{source}: line {line}: {rec.name} is listed twice")
        if rec.pairs > 1:
            step, rest = divmod(rec.last_t - rec.first_t, rec.pairs - 1)
            if rest or step <= 0:
                raise MembershipError(f"{source}: line {line}: {rec.name}: last_t - first_t is not "
                                      f"(pairs - 1) whole hops")
            hops.add(step)
        elif rec.last_t != rec.first_t:
            raise MembershipError(f"{source}: line {line}: {rec.name}: one pair, but first_t != last_t")
        seen.add(rec.name)
        recordings.append(rec)
    if not recordings:
        raise MembershipError(f"{source}: no recordings")
    windows = {r.first_t for r in recordings}
    if len(windows) != 1 or len(hops) > 1:
        raise MembershipError(f"{source}: every recording must start at the same first_t and step by one hop "
                              f"(found first_t {sorted(windows)}, hops {sorted(hops)})")
    return MembershipTable(source, tuple(recordings), windows.pop(), hops.pop() if hops else 100)


def published_table() -> MembershipTable:
    return parse_table(read_table(PUBLISHED_TABLE), f"manifests/{PUBLISHED_TABLE}")


def read_table_file(path: str | os.PathLike) -> MembershipTable:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return parse_table(list(csv.DictReader(f)), str(path))
    except (OSError, UnicodeDecodeError) as e:
        raise MembershipError(f"{path}: unreadable ({e})") from None


def urmp_folders() -> frozenset[str]:
    """URMP's 44 piece folders, from the committed index."""
    return frozenset(r["folder"] for r in read_table(URMP_INDEX))


# ----------------------------------------------------------------------------------------------
# Which membership a build uses


def choose_mode(requested: str, folders: Iterable[str], membership_file: str | os.PathLike | None,
                release_dir: str | os.PathLike | None = None,
                synthetic: str | os.PathLike | None = None) -> tuple[str, str]:
    """(``release`` | ``file`` | ``all``, the one line that says which and why).

    ``synthetic`` names the marker of a corpus made by ``make-demo-urmp`` (its ``demo.json``): even with
    URMP's 44 folders (``--like-urmp``) its tracks are not URMP's, so it has no published counterpart.
    """
    urmp = urmp_folders()
    held = urmp & set(folders)
    if synthetic is not None and membership_file is None and requested != "all":
        if requested == "release":
            raise MembershipError(f"--membership release matches URMP's own tracks, and this tree is a demo corpus "
                                  f"({synthetic}), so it has no published counterpart: use --membership all "
                                  f"({NOT_THE_RELEASE}) or --membership-file CSV")
        return "all", (f"membership: all (auto: the tree is a demo corpus made by make-demo-urmp, {synthetic}): "
                       f"every track, {NOT_THE_RELEASE}")
    if membership_file is not None:
        if requested == "all":
            raise MembershipError("--membership-file states a membership to match: use it with --membership auto "
                                  "or release, not all")
        mode, line = "file", f"membership: {membership_file} (--membership-file), matched by class and duration"
    elif requested == "all":
        mode, line = "all", f"membership: all (as asked): every track, {NOT_THE_RELEASE}"
    elif held == urmp:
        mode, line = "release", (f"membership: release ({'as asked' if requested == 'release' else 'auto'}: the tree "
                                 f"holds URMP's {len(urmp)} pieces): the published recordings, matched by class and duration")
    elif requested == "release":
        missing = sorted(urmp - held)
        raise MembershipError(
            f"--membership release needs URMP's {len(urmp)} pieces; this tree holds {len(held)} of them (missing "
            f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}), so it has no published counterpart: "
            f"use --membership all ({NOT_THE_RELEASE}) or --membership-file CSV")
    else:
        mode, line = "all", (f"membership: all (auto: the tree holds {len(held)} of URMP's {len(urmp)} pieces, so it "
                             f"is not URMP): every track, {NOT_THE_RELEASE}")
    if release_dir is not None and mode == "all":
        raise MembershipError(f"--release-dir settles a matched membership, and this build matches nothing ({line}): "
                              "use --membership release or --membership-file CSV")
    if release_dir is not None:
        line += f", settled by the audio of {release_dir}"
    return mode, line


# ----------------------------------------------------------------------------------------------
# Matching


def _groups(table: MembershipTable, candidates: list[Candidate]) -> tuple[dict[tuple, list[PublishedRecording]],
                                                                          dict[tuple, list[Candidate]]]:
    """Recordings (in NN order) and tracks (in (piece, part) order) by (class, first_t, last_t, pairs)."""
    published: dict[tuple, list[PublishedRecording]] = defaultdict(list)
    for r in sorted(table.recordings, key=lambda r: (r.class_name, r.nn)):
        published[(r.class_name, r.first_t, r.last_t, r.pairs)].append(r)
    tracks: dict[tuple, list[Candidate]] = defaultdict(list)
    for c in sorted(candidates, key=lambda c: c.order):
        if c.window_ends is not None:
            tracks[(c.class_name, *c.window_ends)].append(c)
    return published, tracks


def match_by_duration(table: MembershipTable, candidates: Iterable[Candidate]) -> Membership:
    """Assign tracks to the table's recordings by class and window ends (rules in the module docstring)."""
    candidates = sorted(candidates, key=lambda c: c.order)
    published, groups = _groups(table, candidates)
    assigned: dict[str, Assignment] = {}
    left_out: dict[str, str] = {}
    for key, recs in published.items():
        tracks = groups.get(key, [])
        seconds = f"{(key[2]) / 1000:.1f} s"
        if not tracks:
            for r in recs:
                assigned[r.name] = Assignment(r, None, "no track", f"no {r.class_name} track whose windows end "
                                              f"{r.first_t}..{r.last_t} ms ({r.pairs} pairs, about {seconds})")
            continue
        if len(tracks) < len(recs):
            note = (f"{len(recs)} published recordings ({', '.join(r.name for r in recs)}) but "
                    f"{len(tracks)} track(s) ({', '.join(t.key for t in tracks)}) of that class and duration")
            for r in recs:
                assigned[r.name] = Assignment(r, None, "ambiguous", note)
            for t in tracks:
                left_out[t.key] = f"ambiguous: {note}"
            continue
        if len(tracks) == len(recs) == 1:
            assigned[recs[0].name] = Assignment(recs[0], tracks[0].key, "duration")
            continue
        note = (f"tie: {', '.join(r.name for r in recs)} and {', '.join(t.key for t in tracks)} fit each other; "
                "NN order took (piece, part) order")
        for r, t in zip(recs, tracks):
            assigned[r.name] = Assignment(r, t.key, "rule", note)
        for t in tracks[len(recs):]:
            left_out[t.key] = note
    wanted = set(published)
    for c in candidates:
        if c.window_ends is None:
            left_out.setdefault(c.key, "no windows: unreadable (see the failures) or shorter than one window")
        elif (c.class_name, *c.window_ends) not in wanted:
            left_out.setdefault(c.key, f"no published {c.class_name} recording of {c.window_ends[2]} pairs")
    return Membership(table, [assigned[r.name] for r in table.recordings], dict(sorted(left_out.items())))


def chunk_path(release_dir: Path, rec: PublishedRecording, t_ms: int) -> Path:
    return release_dir / "chunk" / rec.split / rec.class_name / f"{rec.name}_{t_ms}.wav"


def sample_times(rec: PublishedRecording, hop_ms: int, n: int = CHUNKS_PER_RECORDING) -> list[int]:
    """Up to ``n`` window ends spread evenly over a recording (its first and last included)."""
    k = min(n, rec.pairs)
    steps = sorted({i * (rec.pairs - 1) // max(k - 1, 1) for i in range(k)})
    return [rec.first_t + s * hop_ms for s in steps]


def read_chunks(release_dir: Path, rec: PublishedRecording, hop_ms: int) -> tuple[int, list[tuple[int, np.ndarray]]]:
    """(sample rate, [(t, mono samples)]) of the non-silent sampled chunks found in the release."""
    chunks, rates = [], set()
    for t in sample_times(rec, hop_ms):
        path = chunk_path(release_dir, rec, t)
        if not path.is_file():
            continue
        try:
            x, sr, _mix = read_audio_mono(path)
        except MediaError as e:
            raise MembershipError(str(e)) from None
        rates.add(sr)
        if len(x) and float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) > SILENT_RMS:
            chunks.append((t, x))
    if len(rates) > 1:
        raise MembershipError(f"{release_dir}: chunks of {rec.name} have several sample rates {sorted(rates)}")
    return (rates.pop() if rates else 0), chunks


def chunk_correlation(chunk: np.ndarray, track: np.ndarray, end: int, radius: int) -> tuple[float, int]:
    """Best normalised cross-correlation of ``chunk`` with ``track`` ending within ``end`` +- ``radius``
    samples, and the offset (samples) at which it is found."""
    n = len(chunk)
    lo = end - n - radius
    segment = np.zeros(n + 2 * radius, np.float64)
    a, b = max(lo, 0), min(end + radius, len(track))
    if b > a:
        segment[a - lo : b - lo] = track[a:b]
    size = 1 << int(np.ceil(np.log2(len(segment) + n)))
    corr = np.fft.irfft(np.fft.rfft(segment, size) * np.conj(np.fft.rfft(chunk.astype(np.float64), size)), size)
    corr = corr[: len(segment) - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(segment ** 2)])
    window_energy = energy[n:] - energy[:-n]
    norm = np.sqrt(np.maximum(window_energy, 0) * float(np.dot(chunk, chunk)))
    ncc = np.where(norm > 1e-12, corr / np.maximum(norm, 1e-12), 0.0)
    best = int(np.argmax(ncc))
    return float(ncc[best]), best - radius


def settle_by_audio(membership: Membership, candidates: Iterable[Candidate], release_dir: str | os.PathLike,
                    track_audio: Callable[[str, int], np.ndarray]) -> Membership:
    """Re-decide every group of fitting tracks with the release's chunks (module docstring).

    ``track_audio(key, sample_rate)``: a track's mono samples at the chunks' rate, resampled as the
    build resamples. A group whose recordings have no usable chunk in ``release_dir`` keeps its
    duration match (noted).
    """
    release_dir = Path(release_dir)
    table = membership.table
    recs_by_group, by_group = _groups(table, list(candidates))
    result = {a.recording.name: a for a in membership.assignments}
    left_out = dict(membership.left_out)
    for key, recs in recs_by_group.items():
        tracks = by_group.get(key, [])
        if not tracks:
            continue
        found = {r.name: read_chunks(release_dir, r, table.hop_ms) for r in recs}
        if any(not chunks for _, chunks in found.values()):
            for r in recs:
                result[r.name] = replace(result[r.name], note=(result[r.name].note + "; " if result[r.name].note else "")
                                         + f"no usable chunk in {release_dir}: not checked by audio")
            continue
        scores: list[tuple[float, int, int, int]] = []  # (-score, rec position, track position, offset)
        audio_cache: dict[tuple[str, int], np.ndarray] = {}  # one group's tracks: a track fits one group
        for i, r in enumerate(recs):
            sr, chunks = found[r.name]
            radius = (table.window_ms + SEARCH_MARGIN_MS) * sr // 1000
            for j, t in enumerate(tracks):
                if (t.key, sr) not in audio_cache:
                    audio_cache[(t.key, sr)] = track_audio(t.key, sr)
                track = audio_cache[(t.key, sr)]
                found_at = [chunk_correlation(x, track, t_ms * sr // 1000, radius) for t_ms, x in chunks]
                scores.append((-min(s for s, _ in found_at), i, j, int(np.median([o for _, o in found_at]))))
        taken_recs, taken_tracks = {}, set()
        for neg, i, j, offset in sorted(scores):
            if -neg < AUDIO_MATCH or i in taken_recs or j in taken_tracks:
                continue
            taken_recs[i] = (j, -neg, offset)
            taken_tracks.add(j)
        for i, r in enumerate(recs):
            n_chunks = len(found[r.name][1])
            if i in taken_recs:
                j, score, offset = taken_recs[i]
                sr = found[r.name][0]
                result[r.name] = Assignment(r, tracks[j].key, "audio", f"{n_chunks} chunks, correlation >= {score:.3f}, "
                                            f"found {1000 * offset / sr:+.1f} ms from their nominal place")
            else:
                best = max((-neg, tracks[j].key) for neg, ii, j, _ in scores if ii == i)
                result[r.name] = Assignment(r, None, "audio", f"its audio ({n_chunks} chunks) matches no "
                                            f"{r.class_name} track of that duration (best: {best[1]}, {best[0]:.3f})")
        for j, t in enumerate(tracks):
            if j in taken_tracks:
                left_out.pop(t.key, None)
            else:
                left_out[t.key] = f"its audio is none of {', '.join(r.name for r in recs)} (--release-dir)"
    return Membership(table, [result[r.name] for r in table.recordings], dict(sorted(left_out.items())))


# ----------------------------------------------------------------------------------------------
# Reports


def membership_csv(membership: Membership, tracks: dict[str, tuple[str, int]]) -> str:
    """``membership.csv``: each table recording (matched or not, and why), then each track left out.

    ``tracks``: candidate key -> (piece folder, part).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["recording", "split", "pairs", "status", "piece", "part", "how", "note"])
    for a in membership.assignments:
        r = a.recording
        piece, part = tracks[a.track] if a.track else ("", "")
        writer.writerow([r.name, r.split, r.pairs, "matched" if a.track else "unmatched", piece, part, a.how, a.note])
    for key, why in membership.left_out.items():
        piece, part = tracks[key]
        writer.writerow(["", "", "", "left_out", piece, part, "", why])
    return out.getvalue()


def summary(mode: str, statement: str, membership: Membership | None, pairs: dict[str, int]) -> dict:
    """The ``membership`` entry of build.json: what was matched, and the pairs against the reference's."""
    reference = membership.table if membership else published_table()
    out = {"mode": mode, "statement": statement, "table": reference.source,
           "pairs": {s: pairs.get(s, 0) for s in SPLITS}, "table_pairs": reference.pairs}
    if membership is None:
        out["note"] = f"every track of the tree: {NOT_THE_RELEASE}; the table's pairs are the release's"
        return out
    out.update(recordings_in_table=len(membership.assignments), matched=len(membership.matched),
               unmatched=[a.recording.name for a in membership.unmatched],
               by_rule=[a.recording.name for a in membership.matched if a.how == "rule"],
               by_audio=[a.recording.name for a in membership.matched if a.how == "audio"],
               left_out_tracks=len(membership.left_out))
    return out


def describe(entry: dict) -> str:
    """One line from a build.json ``membership`` entry (for the build's output and ``stats``)."""
    got, ref = entry["pairs"], entry["table_pairs"]
    pairs = f"{got['train']:,} train / {got['validation']:,} validation pairs"
    reference = f"{ref['train']:,} / {ref['validation']:,}"
    if entry["mode"] == "all":
        return f"membership all ({NOT_THE_RELEASE}): {pairs} (the release has {reference})"
    what = "published recordings" if entry["mode"] == "release" else f"recordings of {entry['table']}"
    return (f"membership {entry['mode']}: {entry['matched']} of {entry['recordings_in_table']} {what} matched; "
            f"{pairs} (table: {reference})")
