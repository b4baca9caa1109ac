"""Ordered parallel map with a progress bar.

Work is submitted to an injected ``concurrent.futures.Executor`` (None runs it in this process, with
one math-library thread as a pool worker has); results come back in input order whatever order the
workers finish in. Both keep outputs independent of the number of workers.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

from cmav_data.parallel import SingleThreaded

T = TypeVar("T")
R = TypeVar("R")


def progress_map(fn: Callable[[T], R], items: Iterable[T], executor: Executor | None = None, *,
                 desc: str = "", unit: str = "it", enabled: bool = True) -> Iterator[R]:
    items = list(items)
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True) as bar:
        if executor is None:
            single_threaded = SingleThreaded()  # as a pool's workers run, so -j 1 gives their bytes
            for item in items:
                yield single_threaded(fn, item)
                bar.update()
            return
        futures = [executor.submit(fn, item) for item in items]
        try:
            for future in futures:
                yield future.result()
                bar.update()
        finally:
            for future in futures:
                future.cancel()
