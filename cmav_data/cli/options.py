"""Click options shared by the commands that run work in parallel."""

from __future__ import annotations

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
