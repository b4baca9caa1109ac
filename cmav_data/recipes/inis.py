"""INIS: ImageNet photos of instruments, each paired with sound windows of the same instrument.

Origin: L. Chen, S. Srivastava, Z. Duan, C. Xu, "Deep Cross-Modal Audio-Visual Generation", ACM
Multimedia Thematic Workshops 2017 (arXiv:1704.08292): about 1,200 ImageNet photos per category,
checked by hand, paired with instrument sounds. The paper's exact five categories could not be
confirmed, so the default set is five of ImageNet-1k's classes that are also Sub-URMP classes (every
photo can then be paired with sounds of its instrument): bassoon, cello, flute, sax, trombone. They
span the three URMP families (woodwind, string, brass) and have distinct silhouettes; the other
candidates pair up into look-alikes (violin/cello, oboe/clarinet) or sit in an ambiguous synset
(ImageNet's n03110669 is "cornet, horn, trumpet, trump"). ``--synsets`` picks others.

Conventions:
- categories by WordNet id (``corpora/imagenet.py``; ``manifests/imagenet_instrument_synsets.csv``);
  a category's class name and index are its Sub-URMP class's (``instruments.CLASS_NAMES``);
- cleaning replaces the hand check by rules, applied per photo in order of source path, every
  rejection recorded with its rule in ``rejected.parquet``: ``not_in_keep_list``, ``drop_list``,
  ``decode`` (Pillow cannot decode the whole file), ``too_large`` (more than ``max_pixels`` pixels, read
  from the header: such a photo is never decoded), ``too_small`` (shorter side < ``min_side``),
  ``grayscale`` / ``cmyk`` (when the option says drop; otherwise converted to RGB), ``exact_duplicate``
  (same sha256 as a photo kept before, in any category), ``near_duplicate`` (64-bit dHash within
  ``near_duplicate_distance`` bits of a photo kept before in the same category); the first by path is kept;
- images: EXIF orientation applied, RGB, centred square crop (or padding, ``fit="pad"``) resized to
  ``image_size`` (Lanczos), JPEG; ``img/<split>/<class>/<class>_<sha12>.jpg`` (sha12: the first 12 hex
  digits of the source's sha256);
- split by content: a photo is in validation when the first 64 bits of its sha256, as a fraction of
  2**64, are below ``validation_fraction`` (0.2: an 8:2 split up to chance); adding or removing photos
  never moves another one;
- pairing: each photo gets ``sounds_per_image`` distinct windows of its class from the same split of a
  built Sub-URMP (silent windows left out unless ``pair_silent``); window k is candidate
  ``sha256("<seed>:<photo sha256>:<k>") mod n`` among the candidates sorted by id, so the pairs depend
  only on the seed, the photo and the sound set; rows ``<class>_<sha12>_<k>``;
- sounds are copied, not referenced, to the same relative path as in Sub-URMP
  (``chunk/<split>/<class>/<sound id>.wav``), so an INIS folder stands alone;
- the unit of work (and of resume) is a batch of ``batch_size`` photos of one category, named
  ``<class>-<NNN>``; rows are assembled in plan order (see ``recipes/build.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageOps, UnidentifiedImageError

from cmav_data.atomic import write_bytes, write_text
from cmav_data.checksum import ContentError, read_verified, sha256_bytes, sha256_file
from cmav_data.corpora.imagenet import ImageNetError, Synset, resolve_synsets, scan_imagenet
from cmav_data.images import crop_square, encode_jpeg, pad_square
from cmav_data.instruments import CLASS_NAMES
from cmav_data.manifest import INIS_SCHEMA, REJECTED_SCHEMA, read_metadata, table_metadata, write_table
from cmav_data.progress import progress_map
from cmav_data.recipes.build import (BuildDir, BuildError, RunFlags, UnitFailure, build_versions, guarded_build,
                                     split_counts)

DEFAULT_SYNSETS = ("n02804610", "n02992211", "n03372029", "n04141076", "n04487394")  # bassoon cello flute sax trombone
GRAY_TOLERANCE = 3  # max channel difference (0-255) on a 32x32 thumbnail for an RGB file to count as gray
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_PROBE_BATCH = 32  # photos per probe task: enough work per task to amortise process overhead


@dataclass(frozen=True)
class InisOptions:
    """Every option that changes the bytes of a build (recorded in the manifest's metadata)."""

    synsets: tuple[str, ...] = DEFAULT_SYNSETS  # wnids (or Sub-URMP class names)
    image_size: int = 128
    fit: str = "crop"  # "crop": centred square crop; "pad": black padding to a square
    jpeg_quality: int = 90
    min_side: int = 128  # photos whose shorter side is smaller are rejected
    max_pixels: int = 64_000_000  # photos with more pixels are rejected from their header, never decoded
    grayscale: str = "drop"  # "drop" | "convert"
    cmyk: str = "convert"  # "convert" | "drop"
    near_duplicate_distance: int = 4  # dHash bits (of 64); -1 turns near-duplicate removal off
    validation_fraction: float = 0.2
    seed: int = 0
    sounds_per_image: int = 1
    pair_silent: bool = False

    def __post_init__(self) -> None:
        if self.fit not in ("crop", "pad"):
            raise ValueError(f"fit must be 'crop' or 'pad', got {self.fit!r}")
        if self.grayscale not in ("drop", "convert") or self.cmyk not in ("drop", "convert"):
            raise ValueError("grayscale and cmyk must be 'drop' or 'convert'")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation fraction must be between 0 and 1, got {self.validation_fraction}")
        if self.image_size < 8 or self.sounds_per_image < 1 or self.near_duplicate_distance < -1 or self.max_pixels < 1:
            raise ValueError("image size must be >= 8, sounds per image >= 1, near-duplicate distance >= -1, "
                             "max pixels >= 1")
        try:  # recorded as wnids, so that "cello" and "n02992211" give the same build
            object.__setattr__(self, "synsets", tuple(s.wnid for s in resolve_synsets(self.synsets)))
        except ImageNetError as e:
            raise ValueError(str(e)) from None


# ----------------------------------------------------------------------------------------------
# Photos: decoding, colour kind, perceptual hash.


@dataclass(frozen=True)
class ImageProbe:
    path: str  # relative to the ImageNet root
    sha256: str  # "" when unreadable
    width: int
    height: int
    colour: str  # "rgb" | "grayscale" | "cmyk"
    dhash: int
    error: str  # "" when the photo decodes


def open_photo(data: bytes) -> Image.Image:
    """The photo with only its header read (Pillow decodes lazily): its size is known, its pixels not yet."""
    with warnings.catch_warnings():
        # Sizes are judged against max_pixels before decoding; Pillow's warning above 89 MP would repeat it.
        # (Above 179 MP Pillow refuses to open at all: a decode rejection naming the size.)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def decode_photo(img: Image.Image) -> tuple[Image.Image, str]:
    """The whole photo (from ``open_photo``) decoded, EXIF orientation applied, as RGB; and its colour kind."""
    img.load()  # decodes everything: truncated or corrupt data fails here, not later
    img = ImageOps.exif_transpose(img)
    if img.mode == "CMYK":
        return img.convert("RGB"), "cmyk"
    if img.mode in _GRAY_MODES:
        return img.convert("RGB"), "grayscale"
    rgb = img.convert("RGB")
    # Many gray ImageNet photos are stored as RGB: judge by content, on a thumbnail to average JPEG noise.
    thumb = np.asarray(rgb.resize((32, 32), Image.Resampling.BOX), dtype=np.int16)
    spread = max(np.abs(thumb[..., 0] - thumb[..., 1]).max(), np.abs(thumb[..., 1] - thumb[..., 2]).max())
    return rgb, "grayscale" if spread <= GRAY_TOLERANCE else "rgb"


def dhash(img: Image.Image) -> int:
    """64-bit difference hash: is each of 8x8 cells brighter than its right neighbour (9x8 gray)."""
    px = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (px[:, 1:] > px[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def probe_image(root: str | os.PathLike, rel: str, max_pixels: int = InisOptions.max_pixels) -> ImageProbe:
    """Size, colour kind and dHash of a photo; one of more than ``max_pixels`` pixels gets its size only."""
    try:
        data = (Path(root) / rel).read_bytes()
    except OSError as e:
        return ImageProbe(rel, "", 0, 0, "", 0, f"cannot read ({e.strerror or e})")
    sha = sha256_bytes(data)
    try:
        img = open_photo(data)
        if img.width * img.height > max_pixels:  # never decoded: 3 bytes a pixel, several times over
            return ImageProbe(rel, sha, img.width, img.height, "", 0, "")
        img, colour = decode_photo(img)
    except UnidentifiedImageError:  # its message holds a memory address: not reproducible
        return ImageProbe(rel, sha, 0, 0, "", 0, "cannot decode (not a known image format)")
    except Exception as e:  # Pillow raises many types on bad data (OSError, SyntaxError, ValueError, ...)
        return ImageProbe(rel, sha, 0, 0, "", 0, f"cannot decode ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
    return ImageProbe(rel, sha, img.width, img.height, colour, dhash(img), "")


def _probe_batch(job: tuple[str, tuple[str, ...], int]) -> list[ImageProbe]:
    root, paths, max_pixels = job
    return [probe_image(root, p, max_pixels) for p in paths]


# ----------------------------------------------------------------------------------------------
# Planning: scan, clean, split, pair.


@dataclass(frozen=True)
class Rejection:
    wnid: str
    class_name: str
    source_path: str
    source_sha256: str
    reason: str
    detail: str
    duplicate_of: str = ""


@dataclass(frozen=True)
class Sound:
    id: str
    split: str
    class_name: str
    audio_path: str
    audio_sha256: str


@dataclass(frozen=True)
class InisImage:
    source_path: str
    sha256: str
    class_name: str
    width: int
    height: int
    split: str
    sounds: tuple[Sound, ...]

    @property
    def image_id(self) -> str:
        return f"{self.class_name}_{self.sha256[:12]}"


@dataclass(frozen=True)
class InisUnit:
    """A batch of one category's photos: the unit of work and of resume."""

    name: str  # <class>-<NNN>
    wnid: str
    class_name: str
    images: tuple[InisImage, ...]


@dataclass
class InisPlan:
    layout: str
    units: list[InisUnit]
    rejected: list[Rejection]
    sounds_sha256: str  # of the Sub-URMP manifest the pairs come from
    warnings: list[str] = field(default_factory=list)


def read_path_list(path: str | os.PathLike) -> set[str]:
    """Source paths (relative to the ImageNet root) or file names, one a line; '#' starts a comment."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BuildError(f"{path}: cannot read list ({e})") from None
    return {s for line in lines if (s := line.split("#", 1)[0].strip())}


def validation_share(sha256: str) -> float:
    """Where a photo falls in [0, 1) by content: its split is validation below the fraction."""
    return int(sha256[:16], 16) / 2**64


def pick_sounds(image_sha256: str, candidates: tuple[Sound, ...], n: int, seed: int) -> tuple[Sound, ...]:
    """n distinct candidates (fewer if there are fewer), chosen by hashes of seed, photo and k."""
    n = min(n, len(candidates))
    chosen: list[int] = []
    k = 0
    while len(chosen) < n:
        i = int(hashlib.sha256(f"{seed}:{image_sha256}:{k}".encode()).hexdigest(), 16) % len(candidates)
        if i not in chosen:
            chosen.append(i)
        k += 1
    return tuple(candidates[i] for i in chosen)


def load_sounds(suburmp_dir: str | os.PathLike, pair_silent: bool) -> tuple[dict[tuple[str, str], tuple[Sound, ...]], str]:
    """(class, split) -> sound windows sorted by id, from a built Sub-URMP; and its manifest's sha256."""
    path = Path(suburmp_dir) / "manifest.parquet"
    if not path.is_file():
        raise BuildError(f"{suburmp_dir}: no manifest.parquet: --sounds must be a built Sub-URMP (cmav-data build-suburmp)")
    if read_metadata(path).get("kind") != "suburmp":
        raise BuildError(f"{path}: not a Sub-URMP manifest")
    table = pq.read_table(path, columns=["id", "split", "class_name", "audio_path", "audio_sha256", "silent"])
    sounds: dict[tuple[str, str], list[Sound]] = {}
    for row in table.to_pylist():
        if row["silent"] and not pair_silent:
            continue
        sound = Sound(row["id"], row["split"], row["class_name"], row["audio_path"], row["audio_sha256"])
        sounds.setdefault((sound.class_name, sound.split), []).append(sound)
    return {k: tuple(sorted(v, key=lambda s: s.id)) for k, v in sounds.items()}, sha256_file(path)


def clean_category(synset: Synset, probes: list[ImageProbe], options: InisOptions, keep: set[str] | None,
                   drop: set[str], kept_sha: dict[str, str]) -> tuple[list[ImageProbe], list[Rejection]]:
    """Apply the cleaning rules in path order; ``kept_sha`` (sha -> path) spans categories and is updated."""
    kept: list[ImageProbe] = []
    hashes: list[int] = []
    rejected: list[Rejection] = []
    for p in sorted(probes, key=lambda p: p.path):
        def reject(reason: str, detail: str, duplicate_of: str = "") -> None:
            rejected.append(Rejection(synset.wnid, synset.class_name, p.path, p.sha256, reason, detail, duplicate_of))

        listed = {p.path, Path(p.path).name}
        if keep is not None and not listed & keep:
            reject("not_in_keep_list", "not in the keep list")
        elif listed & drop:
            reject("drop_list", "in the drop list")
        elif p.error:
            reject("decode", p.error)
        elif p.width * p.height > options.max_pixels:
            reject("too_large", f"{p.width}x{p.height}, more than {options.max_pixels} pixels")
        elif min(p.width, p.height) < options.min_side:
            reject("too_small", f"{p.width}x{p.height}, shorter side < {options.min_side}")
        elif p.colour == "grayscale" and options.grayscale == "drop":
            reject("grayscale", "grayscale photo")
        elif p.colour == "cmyk" and options.cmyk == "drop":
            reject("cmyk", "CMYK photo")
        elif p.sha256 in kept_sha:
            reject("exact_duplicate", "same bytes as a kept photo", kept_sha[p.sha256])
        else:
            if options.near_duplicate_distance >= 0 and hashes:
                distances = np.bitwise_count(np.array(hashes, dtype=np.uint64) ^ np.uint64(p.dhash))
                nearest = int(np.argmin(distances))
                if distances[nearest] <= options.near_duplicate_distance:
                    reject("near_duplicate", f"dHash distance {int(distances[nearest])}", kept[nearest].path)
                    continue
            kept.append(p)
            hashes.append(p.dhash)
            kept_sha[p.sha256] = p.path
    return kept, rejected


def plan_inis(imagenet_dir: str | os.PathLike, suburmp_dir: str | os.PathLike, options: InisOptions, *,
              labels: str | os.PathLike | None = None, keep_list: str | os.PathLike | None = None,
              drop_list: str | os.PathLike | None = None, batch_size: int = 256,
              executor: Executor | None = None, progress: bool = True) -> InisPlan:
    synsets = resolve_synsets(options.synsets)
    try:
        tree = scan_imagenet(imagenet_dir, [s.wnid for s in synsets], labels)
    except ImageNetError as e:
        raise BuildError(str(e)) from None
    sounds, sounds_sha = load_sounds(suburmp_dir, options.pair_silent)
    keep = read_path_list(keep_list) if keep_list else None
    drop = read_path_list(drop_list) if drop_list else set()
    warnings = [f"label entry names no image file: {name}" for name in tree.unlabelled]

    jobs = [(str(tree.root), paths[i:i + _PROBE_BATCH], options.max_pixels) for paths in tree.images.values()
            for i in range(0, len(paths), _PROBE_BATCH)]
    probes: dict[str, ImageProbe] = {}
    for batch in progress_map(_probe_batch, jobs, executor, desc="inis probe", unit="batch", enabled=progress):
        probes.update((p.path, p) for p in batch)

    plan = InisPlan(tree.layout, [], [], sounds_sha, warnings)
    kept_sha: dict[str, str] = {}
    for synset in synsets:
        kept, rejected = clean_category(synset, [probes[p] for p in tree.images[synset.wnid]], options,
                                        keep, drop, kept_sha)
        plan.rejected += rejected
        if not kept:
            plan.warnings.append(f"{synset.wnid} ({synset.class_name}): no photos kept "
                                 f"({len(tree.images[synset.wnid])} found)")
        images = []
        for p in kept:
            split = "validation" if validation_share(p.sha256) < options.validation_fraction else "train"
            candidates = sounds.get((synset.class_name, split), ())
            if not candidates:
                raise BuildError(f"{suburmp_dir}: no {'' if options.pair_silent else 'non-silent '}{split} sounds "
                                 f"of class {synset.class_name} to pair with {synset.wnid} photos")
            images.append(InisImage(p.path, p.sha256, synset.class_name, p.width, p.height, split,
                                    pick_sounds(p.sha256, candidates, options.sounds_per_image, options.seed)))
        for n, start in enumerate(range(0, len(images), batch_size)):
            plan.units.append(InisUnit(f"{synset.class_name}-{n:03d}", synset.wnid, synset.class_name,
                                       tuple(images[start:start + batch_size])))
    listed = (keep or set()) | drop
    matched = {name for p in probes.values() for name in (p.path, Path(p.path).name)}
    plan.warnings += [f"keep/drop list entry matches no photo of the chosen synsets: {s}" for s in sorted(listed - matched)]
    return plan


# ----------------------------------------------------------------------------------------------
# Building one unit: square JPEGs and the paired chunks, then the unit's rows.


@dataclass(frozen=True)
class _UnitJob:
    unit: InisUnit
    imagenet_root: str
    sounds_root: str
    out: str
    options: InisOptions


def _build_unit(job: _UnitJob) -> UnitFailure | None:
    out, opts, unit = Path(job.out), job.options, job.unit
    square = crop_square if opts.fit == "crop" else pad_square
    rows = []
    for image in unit.images:
        try:
            data = read_verified(Path(job.imagenet_root) / image.source_path, image.sha256,
                                 "changed since planning (sha256 differs)")
        except ContentError as e:
            return UnitFailure(unit.name, e.path, e.cause)
        rgb, _ = decode_photo(open_photo(data))  # kept photos: within max_pixels
        jpeg = encode_jpeg(square(rgb, opts.image_size), opts.jpeg_quality)
        image_path = f"img/{image.split}/{unit.class_name}/{image.image_id}.jpg"
        write_bytes(out / image_path, jpeg)
        for k, sound in enumerate(image.sounds):
            target = out / sound.audio_path
            if not target.is_file():  # another photo may have brought the same window already
                try:
                    wav = read_verified(Path(job.sounds_root) / sound.audio_path, sound.audio_sha256,
                                        "sha256 differs from the Sub-URMP manifest")
                except ContentError as e:
                    return UnitFailure(unit.name, e.path, e.cause)
                write_bytes(target, wav)
            rows.append(dict(
                id=f"{image.image_id}_{k}", split=image.split, class_name=unit.class_name,
                class_index=CLASS_NAMES.index(unit.class_name), wnid=unit.wnid, source_path=image.source_path,
                source_sha256=image.sha256, source_width=image.width, source_height=image.height,
                image_path=image_path, image_sha256=sha256_bytes(jpeg), sound_id=sound.id,
                audio_path=sound.audio_path, audio_sha256=sound.audio_sha256,
            ))
    write_table(pa.Table.from_pylist(rows, schema=INIS_SCHEMA), BuildDir(out).unit_path(unit.name), {})
    return None


# ----------------------------------------------------------------------------------------------
# The recipe.


@dataclass
class InisResult:
    out: Path
    n_images: int
    n_pairs: int
    n_rejected: int
    counts: dict[str, dict[str, int]]  # class -> split -> pairs
    failures: list[UnitFailure]
    warnings: list[str]
    seconds: float


@guarded_build("build-inis", out="out_dir",
               inputs={"imagenet_dir": "IMAGENET_DIR", "suburmp_dir": "--sounds", "labels": "--labels",
                       "keep_list": "--keep-list", "drop_list": "--drop-list"})
def build_inis(imagenet_dir: str | os.PathLike, out_dir: str | os.PathLike, suburmp_dir: str | os.PathLike,
               options: InisOptions = InisOptions(), *, labels: str | os.PathLike | None = None,
               keep_list: str | os.PathLike | None = None, drop_list: str | os.PathLike | None = None,
               batch_size: int = 256, executor: Executor | None = None, run: RunFlags = RunFlags()) -> InisResult:
    """Build INIS from a local ImageNet copy and a built Sub-URMP. See the module docstring.

    Raises BuildError on bad input; a unit that fails (a source changed, a chunk missing) raises too
    unless ``run.fault_tolerant``, in which case the rest is built and failures go to ``failures.jsonl``.
    """
    started = time.perf_counter()
    plan = plan_inis(imagenet_dir, suburmp_dir, options, labels=labels, keep_list=keep_list, drop_list=drop_list,
                     batch_size=batch_size, executor=executor, progress=run.progress)
    build = BuildDir(out_dir)
    build.start({
        "kind": "inis",
        "options": asdict(options),
        "sounds_manifest_sha256": plan.sounds_sha256,
        "units": [{"name": u.name, "images": [[i.source_path, i.sha256, i.split, [s.id for s in i.sounds]]
                                               for i in u.images]} for u in plan.units],
    }, resume=run.resume, overwrite=run.overwrite)

    jobs = [_UnitJob(u, str(Path(imagenet_dir)), str(Path(suburmp_dir)), str(build.root), options)
            for u in plan.units if not build.is_done(u.name)]
    failures = []
    for failure in progress_map(_build_unit, jobs, executor, desc="build-inis", unit="batch", enabled=run.progress):
        if failure and not run.fault_tolerant:
            raise BuildError(f"bad input (--fault-tolerant builds the rest): {failure}")
        if failure:
            failures.append(failure)

    metadata = table_metadata("inis", asdict(options))
    table = build.assemble([u.name for u in plan.units], INIS_SCHEMA, metadata)
    rejected = pa.Table.from_pylist([asdict(r) for r in plan.rejected], schema=REJECTED_SCHEMA)
    write_table(rejected, build.root / "rejected.parquet", table_metadata("inis-rejected", asdict(options)))
    build.write_failures(failures)
    counts = split_counts(table)
    by_reason: dict[str, int] = {}
    for r in plan.rejected:
        by_reason[r.reason] = by_reason.get(r.reason, 0) + 1
    n_images = len(set(table.column("source_sha256").to_pylist()))
    seconds = time.perf_counter() - started
    write_text(build.root / "build.json", json.dumps({
        "kind": "inis",
        "schema_version": json.loads(metadata[b"cmav"])["schema_version"],
        "options": asdict(options),
        "source": str(Path(imagenet_dir).resolve()),
        "layout": plan.layout,
        "sounds": str(Path(suburmp_dir).resolve()),
        "sounds_manifest_sha256": plan.sounds_sha256,
        "n_images": n_images,
        "n_pairs": table.num_rows,
        "n_rejected": len(plan.rejected),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "counts": counts,
        "failures": len(failures),
        "warnings": plan.warnings,
        "versions": build_versions(),
        "seconds": round(seconds, 3),
    }, indent=2) + "\n")
    return InisResult(build.root, n_images, table.num_rows, len(plan.rejected), counts, failures, plan.warnings, seconds)
