"""`cmav-data view`: the static HTML viewer of a dataset (thin shim over cmav_data.view)."""

from __future__ import annotations

import click

from cmav_data.cli import main
from cmav_data.cli.options import executor_options
from cmav_data.view.pages import PAGE_SIZE

VIEW_EPILOG = """\b
Examples:
  cmav-data view demo/suburmp -j 2           # writes demo/suburmp/view/index.html
  cmav-data view data/suburmp-demo --out /tmp/suburmp-view
  python -m http.server -d demo/suburmp/view 8000   # or open index.html from disk

\b
Works on a built dataset (file layout) and on shards (--embed build, publish,
download). The site is static: no server-side code, nothing fetched from the network.
Rerunning reuses the thumbnails and LMS pictures already made.
"""


@main.command("view", epilog=VIEW_EPILOG)
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Site folder.  [default: DATASET/view]")
@click.option("--page-size", type=click.IntRange(min=1), default=PAGE_SIZE, help="Pairs per recording page.")
@executor_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def view_command(dataset, out, page_size, jobs, executor_kind, scheduler, quiet):
    """Write a static HTML site to look at and listen to every pair of DATASET."""
    from cmav_data.parallel import executor_for
    from cmav_data.view import ViewError, build_view

    try:
        with executor_for(jobs, executor_kind, scheduler) as executor:
            result = build_view(dataset, out, executor, page_size=page_size, progress=not quiet)
    except ViewError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{result.n_pairs} pairs, {result.n_recordings} recordings, {result.n_pages} pages "
               f"({result.n_computed} pairs' pictures made, the rest reused); open {result.out / 'index.html'}")
