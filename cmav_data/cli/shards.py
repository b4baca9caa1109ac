"""`cmav-data` commands: shards (thin shims over the library)."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import click

from cmav_data.cli import main
from cmav_data.cli.options import one_line_errors
from cmav_data.locking import OutputLocked
from cmav_data.shards import (
    DownloadConfig,
    ShardsError,
    default_cache_dir,
    download,
    parse_size,
    publish,
    verify,
)
from cmav_data.shards.download import ENV_CACHE

PUBLISH_EPILOG = """\b
Example (publish a built Sub-URMP into a folder any static web server can serve):
  cmav-data publish demo/suburmp demo/hub/suburmp-demo --shard-size 64MB
  python -m http.server -d demo/hub 8000
"""

DOWNLOAD_EPILOG = f"""\b
Examples:
  cmav-data download suburmp-demo data/suburmp-demo --mirror http://127.0.0.1:8000/
  cmav-data download http://127.0.0.1:8000/suburmp-demo/index.json data/suburmp-demo
  cmav-data download suburmp-demo data/suburmp-demo --mirror http://127.0.0.1:8000/ --deadline 600
\b
SOURCE is a name in manifests/datasets.json or the URL of an index.json. cmav hosts
no official copy yet, so a registry name needs --mirror (a base URL holding the
published folder). Interrupted downloads resume; files already verified in DEST or
present in the cache (--cache-dir, env {ENV_CACHE}) are not fetched again; files
complete at their final names are hashed and kept when they match. A file not
complete within --deadline fails (its part is kept for the next run). One
download at a time writes into a DEST.
"""

VERIFY_EPILOG = """\b
Examples:
  cmav-data verify data/suburmp-demo          # sizes, row counts, sha256 via the state file
  cmav-data verify data/suburmp-demo --deep   # re-hash every file
  cmav-data verify demo/suburmp --deep        # a built dataset against its manifest
"""


def _executor(jobs: int):
    # Threads suffice: hashing, zstd and sockets release the GIL.
    return ThreadPoolExecutor(jobs) if jobs > 1 else contextlib.nullcontext()


def _size(_ctx, _param, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@main.command("publish", epilog=PUBLISH_EPILOG)
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--shard-size", default="256MB", callback=_size, help="Media bytes per shard (KB/MB/GB decimal, KiB/MiB/GiB binary).")
@click.option("--jobs", "-j", default=1, type=click.IntRange(1), help="Shards written in parallel (output is identical).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def publish_cmd(dataset: str, out_dir: str, shard_size: int, jobs: int, quiet: bool) -> None:
    """Publish the built DATASET as Parquet shards with embedded media, index.json and a card."""
    with one_line_errors(ShardsError), _executor(jobs) as ex:
        index = publish(dataset, out_dir, shard_size, executor=ex, progress=not quiet)
    splits = ", ".join(f"{s}: {v['rows']} rows in {v['shards']} shards" for s, v in sorted(index.splits().items()))
    click.echo(f"published {out_dir} ({splits})")


@main.command("download", epilog=DOWNLOAD_EPILOG)
@click.argument("source")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--mirror", "mirrors", multiple=True, metavar="URL", help="Base URL of a mirror; repeat for several, tried in order.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, show_default=f"${ENV_CACHE} or ~/.cache/cmav", help="Cache of verified files keyed by sha256.")
@click.option("--no-cache", is_flag=True, help="Neither read nor fill the cache.")
@click.option("--jobs", "-j", default=2, type=click.IntRange(1), help="Files downloaded in parallel.")
@click.option("--retries", default=DownloadConfig.retries, type=click.IntRange(0), help="Failures in a row without progress before a mirror is given up.")
@click.option("--timeout", default=DownloadConfig.timeout, type=click.FloatRange(min=0, min_open=True), help="Socket time-out for each read, seconds.")
@click.option("--deadline", default=None, type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              show_default="60 s plus the file's size at 64 KiB/s",
              help="Time allowed for each whole file, retries and mirrors included (what arrived is kept for the next run).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def download_cmd(source: str, dest: str, mirrors: tuple[str, ...], cache_dir: str | None, no_cache: bool,
                 jobs: int, retries: int, timeout: float, deadline: float | None, quiet: bool) -> None:
    """Download the published dataset SOURCE into DEST, checking every file's size and sha256."""
    cache = None if no_cache else (cache_dir or default_cache_dir())
    config = DownloadConfig(retries=retries, timeout=timeout, deadline=deadline)
    try:
        with _executor(jobs) as ex:
            report = download(source, dest, mirrors, cache, config, executor=ex, progress=not quiet)
    except (ShardsError, OutputLocked) as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:  # DEST or the cache cannot be written
        raise click.ClickException(f"{e.filename or dest}: {e.strerror or e}") from None
    click.echo(f"{dest}: {len(report.fetched)} fetched ({report.network_bytes} bytes), "
               f"{len(report.from_cache)} from cache, {len(report.present)} already verified, "
               f"{len(report.adopted)} found complete and hashed")


@main.command("verify", epilog=VERIFY_EPILOG)
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, exists=True))
@click.option("--deep", is_flag=True, help="Re-hash every file instead of trusting the hash state file.")
@click.option("--jobs", "-j", default=1, type=click.IntRange(1), help="Files checked in parallel.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def verify_cmd(directory: str, deep: bool, jobs: int, quiet: bool) -> None:
    """Check a downloaded/published dataset against index.json, or a built one against its manifest."""
    try:
        with _executor(jobs) as ex:
            report = verify(directory, deep=deep, executor=ex, progress=not quiet)
    except ShardsError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"{e.filename or directory}: {e.strerror or e}") from None
    if not report.ok:
        for problem in report.problems:
            click.echo(f"  {problem}", err=True)
        raise click.ClickException(f"{directory}: {len(report.problems)} problems in {report.checked} files checked")
    click.echo(f"{directory}: OK ({report.layout}, {report.checked} files checked{', deep' if deep else ''})")
