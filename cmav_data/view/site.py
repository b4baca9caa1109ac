"""``build_view``: a built or a shard dataset -> a static site of its pairs (``cmav-data view``).

Layout of the site (default ``DATASET/view/``)::

    index.html                  overview: counts per class and split, thumbnails, recordings
    rec/<recording>-NNN.html    a recording's pairs, at most ``page_size`` per page, in time order
    media/img, media/wav        each pair's image and sound (hard links or copies), by sha256
    media/thumb-h128, lms-v1    the thumbnails and LMS pictures, by the sha256 of their source

Media are made in parallel on the injected Executor and collected in input order; pages are written
from the collected records, so the bytes do not depend on the number of workers. A rerun recomputes
nothing that is already there (content-keyed names) and rewrites the pages (pages of an earlier
layout that are no longer linked are removed from ``rec/``).
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from cmav_data.atomic import write_text
from cmav_data.progress import progress_map
from cmav_data.shards.index import INDEX_NAME, ShardsError, read_index
from cmav_data.shards.load import load_pairs
from cmav_data.view.pages import (PAGE_SIZE, GroupSummary, PairView, RecordingSummary, overview_page, page_file,
                                  recording_page)
from cmav_data.view.thumbs import MediaReadError, PairMedia, PairMediaJob, make_pair_media

SAMPLES_PER_GROUP = 4  # thumbnails per (class, split) on the overview


class ViewError(Exception):
    """Bad input for the viewer; ``str`` is one line naming the file and the cause."""


@dataclass(frozen=True)
class ViewResult:
    out: Path
    n_pairs: int
    n_recordings: int
    n_pages: int
    n_computed: int  # pairs whose thumbnail or LMS picture had to be made (0 on a full rerun)


def _media_of_built(root: Path, site: Path, pairs, executor, progress: bool) -> dict[str, PairMedia]:
    jobs = [PairMediaJob(str(site), pid, image_path=str(root / img), audio_path=str(root / aud))
            for pid, img, aud in zip(pairs["id"], pairs["image_path"], pairs["audio_path"])]
    return {job.name: m for job, m in zip(jobs, progress_map(make_pair_media, jobs, executor, desc="view",
                                                                unit="pair", enabled=progress))}


def _media_of_shards(root: Path, site: Path, executor, progress: bool) -> dict[str, PairMedia]:
    # One shard at a time, so at most one shard's media sit in memory.
    out: dict[str, PairMedia] = {}
    for shard in read_index(root).shards:
        path = root / shard.path
        try:
            table = pq.read_table(path, columns=["id", "image_bytes", "audio_bytes"])
        except OSError as e:
            raise ViewError(f"{path}: cannot read shard ({e}); run cmav-data verify") from None
        jobs = [PairMediaJob(str(site), f"{pid} ({path.name})", image_bytes=img, audio_bytes=aud)
                for pid, img, aud in zip(*(table.column(c).to_pylist() for c in ("id", "image_bytes", "audio_bytes")))]
        for pid, m in zip(table.column("id").to_pylist(),
                          progress_map(make_pair_media, jobs, executor, desc=f"view {path.name}", unit="pair",
                                       enabled=progress)):
            out[pid] = m
    return out


def _samples(group: list[PairView]) -> list[PairView]:
    """Up to SAMPLES_PER_GROUP pairs spread evenly over the group, sounding ones preferred."""
    pool = [p for p in group if not p.silent] or group
    k = min(SAMPLES_PER_GROUP, len(pool))
    return [pool[(2 * i + 1) * len(pool) // (2 * k)] for i in range(k)]


def build_view(dataset: str | os.PathLike, out: str | os.PathLike | None = None, executor: Executor | None = None,
               page_size: int = PAGE_SIZE, progress: bool = True) -> ViewResult:
    """Write the static viewer site of ``dataset`` (built or shards) into ``out`` (default DATASET/view)."""
    root = Path(dataset)
    site = Path(out) if out is not None else root / "view"
    if page_size < 1:
        raise ViewError(f"page size must be at least 1, not {page_size}")
    try:
        pairs = load_pairs(root)
        shards = (root / INDEX_NAME).is_file()
        media = _media_of_shards(root, site, executor, progress) if shards else \
            _media_of_built(root, site, pairs, executor, progress)
    except (ShardsError, MediaReadError) as e:
        raise ViewError(str(e)) from None
    missing = [pid for pid in pairs["id"] if pid not in media]
    if missing:
        raise ViewError(f"{root / INDEX_NAME}: {len(missing)} pairs have no media in the shards, e.g. {missing[0]}")

    views = [PairView(r.id, r.split, r.class_name, r.recording, float(r.t_start), float(r.t_end),
                      float(r.note_coverage), float(r.mean_f0), bool(r.silent), media[r.id].image,
                      media[r.id].thumb, media[r.id].audio, media[r.id].lms)
             for r in pairs.itertuples(index=False)]
    by_recording: dict[tuple[str, str, str], list[PairView]] = {}
    for v in views:
        by_recording.setdefault((v.class_name, v.split, v.recording), []).append(v)
    title = f"{root.resolve().name} · cmav viewer"
    recordings, written = [], set()
    for (class_name, split, recording), group in sorted(by_recording.items()):
        group.sort(key=lambda p: (p.t_end, p.id))
        n_pages = -(-len(group) // page_size)
        rec = RecordingSummary(recording, class_name, split, len(group), sum(p.silent for p in group), n_pages)
        recordings.append(rec)
        for page in range(1, n_pages + 1):
            name = page_file(recording, page)
            write_text(site / "rec" / name, recording_page(title, rec, group[(page - 1) * page_size: page * page_size], page))
            written.add(name)
    for stale in sorted((site / "rec").glob("*.html")):
        if stale.name not in written:
            stale.unlink()

    groups, samples = [], []
    for class_name, split in sorted({(v.class_name, v.split) for v in views}):
        group = [v for v in views if (v.class_name, v.split) == (class_name, split)]
        groups.append(GroupSummary(class_name, split, len(group), len({v.recording for v in group}),
                                   sum(v.silent for v in group)))
        samples += _samples(sorted(group, key=lambda p: (p.recording, p.t_end, p.id)))
    kind = "Parquet shards" if shards else "a built dataset (file layout)"
    write_text(site / "index.html", overview_page(title, groups, recordings, samples, note=f"Read from {kind}."))
    return ViewResult(site, len(views), len(recordings), len(written), sum(m.computed for m in media.values()))
