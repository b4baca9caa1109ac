"""`cmav-data` commands: urmp (thin shims over the library)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cmav_data.cli import main
from cmav_data.cli.options import one_line_errors


INSPECT_EPILOG = """\b
Examples:
  cmav-data inspect-urmp ~/data/URMP
  cmav-data inspect-urmp demo/urmp --json demo/urmp_summary.json --strict
"""


@main.command("inspect-urmp", epilog=INSPECT_EPILOG)
@click.argument("urmp_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the summary as JSON to this file.")
@click.option("--index", "index_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Index CSV to check the tree against (default: the tree's cmav_index.csv, else the committed 44-piece URMP index).")
@click.option("--strict", is_flag=True, help="Exit with status 1 if any problem is found.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, help="Worker processes.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def inspect_urmp_command(urmp_dir: Path, json_path: Path | None, index_path: Path | None, strict: bool,
                         jobs: int, quiet: bool) -> None:
    """Check a URMP tree against the index and summarise it: pieces, players, durations, problems."""
    from cmav_data.atomic import write_text
    from cmav_data.corpora.urmp import UrmpError, UrmpIndex, format_inspection, inspect_urmp
    from cmav_data.parallel import executor_for

    with one_line_errors(UrmpError):
        index = UrmpIndex.read(index_path) if index_path else None
        with executor_for(jobs) as executor:
            insp = inspect_urmp(urmp_dir, index=index, executor=executor, progress=not quiet)
        click.echo(format_inspection(insp))
        if json_path:
            write_text(json_path, json.dumps(insp.to_json(), indent=2) + "\n")
    if strict and insp.problems:
        raise SystemExit(1)
