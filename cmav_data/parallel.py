"""Choosing the Executor a recipe runs on: serial, a local process pool, or Dask.

Recipes take a ``concurrent.futures.Executor`` (lhotse style) and collect results in submission
order, so their output does not depend on which one runs them. This module turns CLI options into one:

- ``jobs == 1``: None, i.e. run in this process;
- ``jobs > 1``: a local process pool (spawned workers);
- ``kind == "dask"``: a local Dask cluster of ``jobs`` single-threaded worker processes;
- ``scheduler``: join an existing Dask cluster at that address (the workers must see the same
  file system as this process: the recipes read inputs and write outputs by path).

Every worker pins its math libraries to one thread, so N workers use N cores, not N x cores.
A local pool's worker exits within a second of its parent's death (a SIGTERM from a scheduler, a
SIGKILL): otherwise it would run the tasks already queued to it for minutes, beside a rerun.
Dask tasks are retried on another worker if theirs dies: work units write atomically and are
idempotent, so a retry gives the same bytes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
import uuid
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Callable, Iterator

SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
EXECUTOR_KINDS = ("process", "dask")
DASK_RETRIES = 3


PARENT_POLL_SECONDS = 0.5


def _init_worker() -> None:
    # Set before numpy/torch are imported in the worker, which read them at import time.
    os.environ.update(SINGLE_THREAD_ENV)
    parent = os.getppid()

    def exit_with_parent() -> None:
        # A dead parent's children are re-parented (to init or a subreaper), so getppid changes.
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)  # no cleanup to run: every output is written atomically, leftovers swept on resume

    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()


class SingleThreaded:
    """Runs calls with one math-library thread (BLAS, OpenMP, torch), as every pool worker has.

    A float reduction split over threads can round differently from one done in a single thread
    (seen: librosa's mel projection, one value in 45,000 off by one float32 step, with numpy's BLAS
    on two threads), so the work of ``-j 1`` runs single-threaded too: outputs do not depend on
    the number of workers. The libraries loaded when this is made are the ones limited, and torch
    if it is loaded when a call starts (importing it here would slow every recipe that does not).
    """

    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()  # finding the libraries costs ms; limiting them, 0.1 ms

    def __call__(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        with self._controller.limit(limits=1):
            torch = sys.modules.get("torch")
            if torch is None:
                return fn(*args, **kwargs)
            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return fn(*args, **kwargs)
            finally:
                torch.set_num_threads(previous)


def _single_threaded(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` with one math-library thread, whatever the Dask worker's environment said at start."""
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401  (loaded first, so that its threads are limited too)
    return SingleThreaded()(fn, *args, **kwargs)


class DaskExecutor(Executor):
    """A Dask ``Client`` seen as a ``concurrent.futures.Executor`` (impure tasks, with retries)."""

    def __init__(self, client: Any, retries: int = DASK_RETRIES):
        self.client = client
        self.retries = retries

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        # Keys named after the work function, so the dashboard (and tests) can tell tasks apart.
        key = f"{getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex}"
        return self.client.submit(_single_threaded, fn, *args, key=key, pure=False, retries=self.retries, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.client.close()


@contextlib.contextmanager
def executor_for(jobs: int, kind: str = "process", scheduler: str | None = None) -> Iterator[Executor | None]:
    """The Executor for ``-j/--executor/--scheduler``; closed (and a local cluster stopped) on exit."""
    if scheduler or kind == "dask":
        from dask.distributed import Client, LocalCluster

        if scheduler:
            with Client(scheduler) as client:
                yield DaskExecutor(client)
            return
        with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                          env=SINGLE_THREAD_ENV) as cluster, Client(cluster) as client:
            yield DaskExecutor(client)
        return
    if kind != "process":
        raise ValueError(f"unknown executor {kind!r} (known: {', '.join(EXECUTOR_KINDS)})")
    if jobs <= 1:
        yield None
        return
    # "spawn" avoids forking a process that may hold threads (PyAV, torch, tqdm's monitor).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
        yield pool
