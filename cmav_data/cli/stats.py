"""`cmav-data` commands: stats (a thin shim over cmav_data.stats)."""

from __future__ import annotations

from pathlib import Path

import click

from cmav_data.cli import main


@main.command("stats", epilog="""\b
Example:
  cmav-data stats demo/suburmp     # prints the table, writes stats.md and contact_sheet.png
""")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--per-class", type=click.IntRange(min=1), default=2, help="Pairs per class on the contact sheet.")
def stats_command(dataset: Path, per_class: int) -> None:
    """Per-class train/validation counts of a built dataset, and a contact sheet of its pairs."""
    from cmav_data.stats import dataset_stats, membership_line, to_markdown

    try:
        table, md, sheet = dataset_stats(dataset, per_class=per_class)
        line = membership_line(dataset)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if line:
        click.echo(line + "\n")
    click.echo(to_markdown(table))
    click.echo(f"\nwrote {md} and {sheet}")
