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

\b
Writes piece folders NN_Name_i1_i2.. with AuMix/AuSep WAVs (48 kHz, 24-bit, mono), Notes/F0s
text files, a Sco_ MIDI and a Vid_ MP4 (H.264, 29.97 fps), plus cmav_index.csv, demo.json
(sources and options) and contact_sheet.png at the root.
"""


def _parsed(parser_name: str):
    def callback(_ctx, _param, value):
        from cmav_data import demo

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
@click.option("--size", default="960x540", callback=_parsed("parse_size"), help="Video size WIDTHxHEIGHT (even numbers).")
@click.option("--seed", default=0, type=int, help="Seed of excerpts, lengths, dynamics and instrument ties.")
@click.option("-j", "--jobs", default=os.cpu_count() or 1, type=click.IntRange(min=1),
              help="Pieces rendered in parallel (processes); 1 renders in this process.")
@click.option("--force", is_flag=True, help="Write into a non-empty OUT (overwrites; removes stale piece folders).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def make_demo_urmp_command(out: Path, pieces: int, seconds, size, seed: int, jobs: int, force: bool, quiet: bool) -> None:
    """Generate a small corpus in URMP's exact layout from real scores (music21), rendered and drawn."""
    from cmav_data.demo import DemoError, DemoOptions, make_demo_urmp
    from cmav_data.parallel import executor_for

    try:
        options = DemoOptions(pieces=pieces, seconds=seconds, size=size, seed=seed)
        with executor_for(jobs) as executor:
            folders = make_demo_urmp(out, options, executor=executor, progress=not quiet, force=force)
    except DemoError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{len(folders)} pieces in {out}")
