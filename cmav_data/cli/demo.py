"""`cmav-data` commands: demo (thin shims over the library)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cmav_data.cli import main

MAKE_DEMO_EPILOG = """\b
Examples:
  cmav-data make-demo-urmp demo/urmp
  cmav-data make-demo-urmp demo/tiny --pieces 5 --seconds 2-4 --size 240x136 -j 2
  cmav-data make-demo-urmp demo/hd --size 1920x1080 --seconds 30 --seed 7 --force
  cmav-data make-demo-urmp demo/urmp44 --like-urmp                      # URMP's 44 pieces, ~80 min, 1080p
  cmav-data make-demo-urmp demo/urmp44q --like-urmp --time-scale 0.1 --size 480x270   # a quick one

\b
Writes piece folders NN_Name_i1_i2.. with AuMix/AuSep WAVs (48 kHz, 24-bit, mono), Notes/F0s
text files, a Sco_ MIDI and a Vid_ MP4 (H.264, 29.97 fps), plus cmav_index.csv, demo.json
(sources and options) and contact_sheet.png at the root. --like-urmp writes URMP's 44 piece
folders (names, instrumentation and file codes of manifests/urmp_index.csv) with lengths spread
like the published Sub-URMP recordings' (about 110 s on average), at 1920x1080 by default.
"""


def _parsed(parser_name: str):
    def callback(_ctx, _param, value):
        from cmav_data import demo

        if value is None:  # an option whose default depends on others
            return None
        try:
            return getattr(demo, parser_name)(value)
        except demo.DemoError as e:
            raise click.BadParameter(str(e)) from None

    return callback


@main.command("make-demo-urmp", epilog=MAKE_DEMO_EPILOG)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pieces", default=16, type=click.IntRange(min=1), help="Number of pieces.")
@click.option("--seconds", default="20-40", callback=_parsed("parse_seconds"),
              help="Length of each piece in seconds: a range LO-HI (drawn per piece) or one number.")
@click.option("--size", default=None, callback=_parsed("parse_size"),
              help="Video size WIDTHxHEIGHT (even numbers); default 960x540, or 1920x1080 with --like-urmp.")
@click.option("--seed", default=0, type=int, help="Seed of excerpts, lengths, dynamics and instrument ties.")
@click.option("-j", "--jobs", default=os.cpu_count() or 1, type=click.IntRange(min=1),
              help="Pieces rendered in parallel (processes); 1 renders in this process.")
@click.option("--like-urmp", is_flag=True,
              help="URMP's 44 pieces (index names, instrumentation, URMP-like lengths) instead of --pieces.")
@click.option("--time-scale", default=None, type=click.FloatRange(min=0, min_open=True),
              help="With --like-urmp: every piece's length times F (at least 2 s), for quick runs.")
@click.option("--force", is_flag=True, help="Write into a non-empty OUT (overwrites; removes stale piece folders).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def make_demo_urmp_command(out: Path, pieces: int, seconds, size, seed: int, jobs: int, like_urmp: bool,
                           time_scale: float | None, force: bool, quiet: bool) -> None:
    """Generate a corpus in URMP's exact layout from real scores (music21), rendered and drawn."""
    from cmav_data.demo import DemoError, DemoOptions, make_demo_urmp
    from cmav_data.locking import OutputLocked
    from cmav_data.parallel import executor_for

    ctx = click.get_current_context()
    if like_urmp:
        given = [f"--{name}" for name in ("pieces", "seconds")
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{' and '.join(given)} do not apply with --like-urmp (URMP's 44 pieces and "
                                   "lengths; --time-scale shortens them)")
    elif time_scale is not None:
        raise click.UsageError("--time-scale applies with --like-urmp only (use --seconds otherwise)")
    try:
        options = DemoOptions(pieces=pieces, seconds=seconds, size=size, seed=seed, like_urmp=like_urmp,
                              time_scale=time_scale or 1.0)
        with executor_for(jobs) as executor:
            folders = make_demo_urmp(out, options, executor=executor, progress=not quiet, force=force)
    except (DemoError, OutputLocked) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{len(folders)} pieces in {out}")
