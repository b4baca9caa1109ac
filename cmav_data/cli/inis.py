"""`cmav-data` commands: build-inis (a thin shim over cmav_data.recipes.inis)."""

from __future__ import annotations

from pathlib import Path

import click

from cmav_data.cli import main
from cmav_data.cli.options import builder_options, executor_options, one_line_errors, report_failures

BUILD_EPILOG = """\b
Examples:
  cmav-data build-suburmp ~/data/URMP ~/data/Sub-URMP -j 8
  cmav-data build-inis ~/data/imagenet ~/data/INIS --sounds ~/data/Sub-URMP -j 8
  cmav-data build-inis ~/data/imagenet out --sounds sub --synsets cello,violin,n03372029
  cmav-data build-inis ~/data/val_flat out --sounds sub --labels ~/data/val_labels.csv
  cmav-data build-inis ~/data/imagenet out --sounds sub --drop-list my_rejects.txt --resume

\b
IMAGENET_DIR may hold train/<wnid>/<wnid>_<n>.JPEG (or <wnid>/ folders), Kaggle's ILSVRC package
(ILSVRC/Data/CLS-LOC + LOC_val_solution.csv), or flat files named in --labels. Every rejected
photo and its rule is listed in OUT/rejected.parquet.
"""


def _synset_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(s.strip() for s in value.split(",") if s.strip())


@main.command("build-inis", epilog=BUILD_EPILOG)
@click.argument("imagenet_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sounds", "sounds_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A built Sub-URMP (cmav-data build-suburmp) whose sound windows are paired with the photos.")
@click.option("--synsets", default=None, callback=_synset_list,
              help="Comma-separated wnids or Sub-URMP class names (manifests/imagenet_instrument_synsets.csv) "
                   "[default: bassoon, cello, flute, sax, trombone].")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Label file for a flat folder: '<file>,<wnid>' lines (or an ILSVRC solution CSV).")
@click.option("--image-size", type=click.IntRange(min=8), default=128, help="Side of the square JPEGs.")
@click.option("--fit", type=click.Choice(["crop", "pad"]), default="crop", help="Square by centred crop or by black padding.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90, help="JPEG quality of the images.")
@click.option("--min-side", type=click.IntRange(min=1), default=128, help="Reject photos whose shorter side is smaller (pixels).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=64_000_000,
              help="Reject photos with more pixels (judged from the header: they are never decoded).")
@click.option("--grayscale", type=click.Choice(["drop", "convert"]), default="drop", help="Grayscale photos: reject, or convert to RGB.")
@click.option("--cmyk", type=click.Choice(["convert", "drop"]), default="convert", help="CMYK photos: convert to RGB, or reject.")
@click.option("--near-duplicate-distance", type=click.IntRange(min=-1, max=64), default=4,
              help="Reject a photo within this many dHash bits (of 64) of a kept one; -1: off.")
@click.option("--validation-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              help="Share of each category in validation (chosen by content hash).")
@click.option("--seed", type=int, default=0, help="Seed of the photo/sound pairing.")
@click.option("--sounds-per-image", type=click.IntRange(min=1), default=1, help="Sound windows paired with each photo.")
@click.option("--pair-silent", is_flag=True, help="Also pair silent sound windows (left out by default).")
@click.option("--keep-list", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Keep only the photos listed (paths relative to IMAGENET_DIR or file names, one a line).")
@click.option("--drop-list", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Reject the photos listed (same format as --keep-list).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, help="Photos per work unit (the grain of --resume).")
@executor_options
@builder_options("batches")
def build_inis_command(imagenet_dir: Path, out: Path, sounds_dir: Path, synsets: tuple[str, ...] | None, labels: Path | None,
                       image_size: int, fit: str, jpeg_quality: int, min_side: int, max_pixels: int, grayscale: str, cmyk: str,
                       near_duplicate_distance: int, validation_fraction: float, seed: int, sounds_per_image: int,
                       pair_silent: bool, keep_list: Path | None, drop_list: Path | None, batch_size: int, jobs: int,
                       executor_kind: str, scheduler: str | None, resume: bool, overwrite: bool, fault_tolerant: bool, allow_failures: bool, quiet: bool) -> None:
    """Build INIS (ImageNet instrument photos paired with Sub-URMP sounds of the same instrument)."""
    from cmav_data.parallel import executor_for
    from cmav_data.recipes.build import BuildError, RunFlags
    from cmav_data.recipes.inis import DEFAULT_SYNSETS, InisOptions, build_inis

    try:
        options = InisOptions(synsets=synsets or DEFAULT_SYNSETS, image_size=image_size, fit=fit, jpeg_quality=jpeg_quality,
                              min_side=min_side, max_pixels=max_pixels, grayscale=grayscale, cmyk=cmyk,
                              near_duplicate_distance=near_duplicate_distance,
                              validation_fraction=validation_fraction, seed=seed,
                              sounds_per_image=sounds_per_image, pair_silent=pair_silent)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    run = RunFlags(resume=resume, overwrite=overwrite, fault_tolerant=fault_tolerant, progress=not quiet, workers=jobs)
    with one_line_errors(BuildError, rerun="run it again with --resume"), \
         executor_for(jobs, executor_kind, scheduler) as executor:
        result = build_inis(imagenet_dir, out, sounds_dir, options, labels=labels, keep_list=keep_list,
                            drop_list=drop_list, batch_size=batch_size, executor=executor, run=run)
    n_train = sum(c["train"] for c in result.counts.values())
    click.echo(f"{result.n_images} photos, {result.n_pairs} pairs ({n_train} train, {result.n_pairs - n_train} "
               f"validation), {result.n_rejected} rejected, in {result.out} ({result.seconds:.1f} s)")
    report_failures(result.warnings, result.failures, result.out, allow_failures, "batch")
