"""Decode many runs in parallel: ``decode_many(paths_or_urls, fn)`` → results in order.

Each item is a local path (opened with :func:`~constellation.reader.open_run`) or a
``http(s)://host:port/RUN_ID`` URL of the data service (opened with
:func:`~constellation.reader.remote.open_remote`; ``?token=T`` passes a token). ``fn(run)``
runs in a worker; processes by default, since h5py serialises threads. Any
``concurrent.futures.Executor`` works, e.g. a Dask distributed client's ``get_executor()``;
``fn`` must then be picklable (a module-level function).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from constellation.reader.h5reader import open_run

__all__ = ["decode_many", "open_any"]

T = TypeVar("T")


def open_any(item: str | os.PathLike[str]) -> Any:
    """Open a local run file, or a run of the data service given as ``URL/RUN_ID``."""
    text = os.fspath(item)
    if text.startswith(("http://", "https://")):
        from constellation.reader.remote import open_remote

        parts = urlsplit(text)
        base, _, run_id = parts.path.rstrip("/").rpartition("/")
        token = parse_qs(parts.query).get("token", [None])[0]
        return open_remote(f"{parts.scheme}://{parts.netloc}{base}", run_id, token=token)
    from constellation.service.scanner import check_complete

    check_complete(Path(text))  # a cut-off file fails at once instead of in SWMR retries
    return open_run(text)


def _call(fn: Callable[[Any], T], item: str | os.PathLike[str]) -> T:
    with open_any(item) as run:
        return fn(run)


def _process_pool(jobs: int) -> ProcessPoolExecutor:
    """Workers started by a fork server: safe in a process with threads (h5py, zmq, ...)."""
    workers = max(1, min(jobs, os.cpu_count() or 1))
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


def decode_many(
    paths_or_urls: Iterable[str | os.PathLike[str]],
    fn: Callable[[Any], T],
    executor: Executor | None = None,
    progress: bool = True,
) -> list[T]:
    """``[fn(run) for run in paths_or_urls]`` in parallel; the first failure is raised."""
    items = list(paths_or_urls)
    own = executor is None
    pool = (
        ProcessPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1) or 1)
        if own
        else executor
    )
    assert pool is not None
    try:
        futures: list[Future[T]] = [pool.submit(_call, fn, item) for item in items]
        results = []
        for done, future in enumerate(futures, 1):
            results.append(future.result())
            if progress:
                print(f"\rdecode_many: {done}/{len(items)} runs", end="", file=sys.stderr)
        if progress and items:
            print(file=sys.stderr)
        return results
    finally:
        if own:
            pool.shutdown(cancel_futures=True)
