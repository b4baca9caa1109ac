"""Choosing the Executor a recipe runs on: serial, a local process pool, or Dask.

Recipes take an ``Executor`` (lhotse style); this module turns CLI options into one.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Iterator

# Workers each get one math-library thread so that N workers use N cores, not N x cores.
_SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def _init_worker() -> None:
    # Set before numpy/torch are imported in the worker, which read them at import time.
    os.environ.update(_SINGLE_THREAD_ENV)


@contextlib.contextmanager
def executor_for(jobs: int) -> Iterator[Executor | None]:
    """None (run in this process) for one job, else a process pool of ``jobs`` workers."""
    if jobs <= 1:
        yield None
        return
    # "spawn" avoids forking a process that may hold threads (PyAV, torch, tqdm's monitor).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
        yield pool
