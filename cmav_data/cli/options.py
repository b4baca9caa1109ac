"""Click options shared by the commands that run work in parallel, and their one error path."""

from __future__ import annotations

import contextlib
import errno
import os

import click

from cmav_data.parallel import EXECUTOR_KINDS


def executor_options(f):
    """-j/--jobs, --executor and --scheduler, passed on as ``jobs``, ``executor_kind``, ``scheduler``."""
    f = click.option("--scheduler", metavar="ADDRESS", default=None,
                     help="Join an existing Dask cluster (e.g. tcp://10.0.0.5:8786); workers must share OUT's file system.")(f)
    f = click.option("--executor", "executor_kind", type=click.Choice(EXECUTOR_KINDS), default="process",
                     help="Where workers run: a local process pool, or a local Dask cluster of -j workers.")(f)
    f = click.option("-j", "--jobs", type=click.IntRange(min=1), default=1,
                     help="Worker processes (1 runs in this process). Output bytes do not depend on it.")(f)
    return f


def builder_options(units: str):
    """--resume, --overwrite, --fault-tolerant, --allow-failures and --quiet of a dataset builder."""

    def decorate(f):
        for option in reversed([
            click.option("--resume", is_flag=True, help="Finish an interrupted build in OUT (same inputs and options)."),
            click.option("--overwrite", is_flag=True,
                         help="Delete the cmav build in OUT first (never a folder that is not one, an input, or through a link)."),
            click.option("--fault-tolerant", is_flag=True,
                         help=f"Build what can be built, list failed {units} in OUT/failures.jsonl."),
            click.option("--allow-failures", is_flag=True,
                         help=f"With --fault-tolerant: exit 0 even if some {units} failed."),
            click.option("--quiet", is_flag=True, help="No progress bars."),
        ]):
            f = option(f)
        return f

    return decorate


def report_failures(warnings: list[str], failures: list, out, allow_failures: bool, unit: str) -> None:
    """Print a build's warnings and failures; exit 1 on failures unless they are allowed."""
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if failures:
        click.echo(f"{len(failures)} {unit}(s) failed, see {out / 'failures.jsonl'}:", err=True)
        for failure in failures:
            click.echo(f"  {failure}", err=True)
        if not allow_failures:
            raise SystemExit(1)


# OS errors a user meets without any bug of ours: permissions, a full disk or quota, a file-size
# limit, a read-only file system. They end a command with one line; any other OSError is a bug.
USER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextlib.contextmanager
def one_line_errors(*expected: type[Exception], rerun: str = "run the same command again"):
    """Turn what a user can cause or meet into one line on stderr and exit status 1: the command's
    own ``expected`` errors (which name their file), a folder another process writes (OutputLocked)
    and the OS errors of ``USER_ERRNOS``, named with their file. ``rerun`` says how to go on after a
    full disk: what was written is kept."""
    from cmav_data.locking import OutputLocked

    try:
        yield
    except (OutputLocked, *expected) as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        if e.errno not in USER_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        message = f"{where}{e.strerror or os.strerror(e.errno)}"
        if e.errno in WRITE_ERRNOS:
            message += f"; what was written is kept: make room (or raise the limit), then {rerun}"
        raise click.ClickException(message) from None
