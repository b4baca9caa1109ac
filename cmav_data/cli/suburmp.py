"""`cmav-data` commands: build-suburmp (a thin shim over cmav_data.recipes.suburmp)."""

from __future__ import annotations

from pathlib import Path

import click

from cmav_data.cli import main
from cmav_data.cli.options import builder_options, executor_options, one_line_errors, report_failures

BUILD_EPILOG = """\b
Examples:
  cmav-data make-demo-urmp demo/urmp && cmav-data build-suburmp demo/urmp demo/suburmp -j 2
  cmav-data build-suburmp ~/data/URMP ~/data/Sub-URMP --image-size 128 -j 8
  cmav-data build-suburmp ~/data/URMP out --release-dir ~/data/Sub-URMP-release   # settle ties by the release's audio
  cmav-data build-suburmp ~/data/URMP out --membership all     # every track: Sub-URMP-style, not the release
  cmav-data build-suburmp ~/data/URMP out --membership-file mine.csv --allow-unmatched
  cmav-data build-suburmp ~/data/URMP out --frame end          # image: the frame just before t (older cmav)
  cmav-data build-suburmp ~/data/URMP out --resume            # finish an interrupted build
  cmav-data build-suburmp ~/data/URMP out --fault-tolerant --allow-failures
  cmav-data build-suburmp /shared/URMP /shared/Sub-URMP --scheduler tcp://head:8786   # on a Dask cluster
"""


def _ms(seconds: float, what: str) -> int:
    ms = round(seconds * 1000)
    if abs(ms - seconds * 1000) > 1e-6 or ms <= 0:
        raise click.BadParameter(f"{what} must be a positive whole number of milliseconds, got {seconds}")
    return ms


@main.command("build-suburmp", epilog=BUILD_EPILOG)
@click.argument("urmp_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sample-rate", type=click.IntRange(min=1000), default=44_100, help="Sample rate of the sound chunks (Hz).")
@click.option("--window", type=float, default=0.5, help="Window length in seconds.")
@click.option("--hop", type=float, default=0.1, help="Hop between windows in seconds.")
@click.option("--channels", type=click.IntRange(1, 2), default=2, help="Channels of the chunk WAVs (the release has 2 identical ones).")
@click.option("--image-size", type=click.IntRange(min=8), default=None, help="Also write square copies of this size under img_<N>/ (padded, not stretched).")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90, help="JPEG quality of the images.")
@click.option("--drop-silent", is_flag=True, help="Leave out silent windows (the release keeps them).")
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV of 'recording,split' (recording: violin03 or a part key like 24_Pirates_vn_vn_va_vc/3).")
@click.option("--crop-table", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV folder,part,left,top,right,bottom overriding the player crop boxes.")
@click.option("--embed", is_flag=True, help="Store images and sounds inside Parquet shards (data/*.parquet, index.json) instead of one file each.")
@click.option("--shard-size", default="256MB", help="With --embed: bytes of media per shard (e.g. 256MB, 1GB).")
@click.option("--max-length-mismatch", type=float, default=1.0, help="Seconds a track and its video may differ by before it is bad input.")
@click.option("--membership", type=click.Choice(["auto", "release", "all"]), default="auto", show_default=True,
              help="release: the published recordings, matched by class and duration, named and split as published; "
                   "all: every track (Sub-URMP-style, not the release); auto: release on a tree with URMP's 44 pieces, else all.")
@click.option("--membership-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Match a membership of your own: a CSV with the columns of manifests/suburmp_published_recordings.csv.")
@click.option("--release-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The published release (with its chunk/ folder): settle every match by correlating its chunks with the tracks.")
@click.option("--allow-unmatched", is_flag=True, help="Build the matched recordings when some of the membership match no track.")
@click.option("--frame", type=click.Choice(["start", "end"]), default="start", show_default=True,
              help="Image of a pair: start = the first frame at or after the window's start, ceil((t - window) * fps) "
                   "(the paper's); end = the frame just before t, ceil(t * fps) - 1.")
@executor_options
@builder_options("recordings")
def build_suburmp_command(urmp_dir: Path, out: Path, sample_rate: int, window: float, hop: float, channels: int,
                          image_size: int | None, jpeg_quality: int, drop_silent: bool, split_file: Path | None,
                          crop_table: Path | None, embed: bool, shard_size: str, max_length_mismatch: float,
                          membership: str, membership_file: Path | None, release_dir: Path | None,
                          allow_unmatched: bool, frame: str, jobs: int, executor_kind: str, scheduler: str | None,
                          resume: bool, overwrite: bool, fault_tolerant: bool, allow_failures: bool, quiet: bool) -> None:
    """Build Sub-URMP (image/sound pairs of one player) from a URMP tree, in the published layout."""
    from cmav_data.parallel import executor_for
    from cmav_data.recipes.build import BuildError, RunFlags
    from cmav_data.recipes.membership import MembershipRequest, describe
    from cmav_data.recipes.suburmp import SubUrmpOptions, build_suburmp
    from cmav_data.shards.index import ShardsError, parse_size

    try:
        options = SubUrmpOptions(sample_rate=sample_rate, window_ms=_ms(window, "--window"), hop_ms=_ms(hop, "--hop"),
                                 channels=channels, jpeg_quality=jpeg_quality, image_size=image_size,
                                 drop_silent=drop_silent, max_length_mismatch=max_length_mismatch, frame=frame)
        request = MembershipRequest(membership, membership_file and str(membership_file),
                                    release_dir and str(release_dir), allow_unmatched)
        shard_bytes = parse_size(shard_size)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    run = RunFlags(resume=resume, overwrite=overwrite, fault_tolerant=fault_tolerant, progress=not quiet, workers=jobs)
    with one_line_errors(BuildError, ShardsError, rerun="run it again with --resume"), \
         executor_for(jobs, executor_kind, scheduler) as executor:
        result = build_suburmp(urmp_dir, out, options, split_file=split_file, crop_table=crop_table, embed=embed,
                               shard_size=shard_bytes, membership=request, executor=executor, run=run)
    n_train = sum(c["train"] for c in result.counts.values())
    click.echo(result.membership["statement"])
    click.echo(f"{result.n_pairs} pairs ({n_train} train, {result.n_pairs - n_train} validation) "
               f"in {result.out} ({result.seconds:.1f} s)")
    if result.membership["mode"] != "all":
        click.echo(describe(result.membership))
    report_failures(result.warnings, result.failures, result.out, allow_failures, "recording")
