"""``decode_many``: local paths and service URLs, process pool, thread pool, Dask LocalCluster."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import resource_tracker
from pathlib import Path

import pytest

from constellation.errors import InputFileError
from constellation.reader import decode_many
from tests.service.support import TX

Files = tuple[Path, dict[str, Path]]

# Process pools start multiprocessing's resource tracker, one child per interpreter that lives
# until the interpreter ends; start it at import so the leak check sees it as already there.
resource_tracker.ensure_running()


def total_trigger(run: object) -> tuple[str, int]:
    """Module-level (picklable): the run id and the sum of the trigger tags of TX."""
    return run.run_id, sum(r.tags["trigger"] for r in run.records(TX))  # type: ignore[attr-defined]


def _paths(run_dir: Files) -> list[Path]:
    return [run_dir[1][key] for key in ("normal", "swmr", "nested")]


def test_process_pool_default(run_dir: Files) -> None:
    got = decode_many(_paths(run_dir), total_trigger, progress=False)
    assert got == [("run1", 210), ("run2", 210), ("run3", 210)]


def test_urls_and_threads(server: str, run_dir: Files) -> None:
    items = [f"{server}/run2", str(run_dir[1]["normal"])]
    with ThreadPoolExecutor(2) as pool:
        assert decode_many(items, total_trigger, executor=pool, progress=False) == [
            ("run2", 210),
            ("run1", 210),
        ]


def test_failure_is_raised(run_dir: Files) -> None:
    for key, reason in (
        ("truncated", "truncated"),
        ("corrupt", "not a readable HDF5 file: superblock version"),
    ):
        with pytest.raises(InputFileError, match=reason):
            decode_many([run_dir[1]["normal"], run_dir[1][key]], total_trigger, progress=False)


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_dask_local_cluster(dask_client: object, run_dir: Files) -> None:
    executor = dask_client.get_executor()  # type: ignore[attr-defined]
    got = decode_many(_paths(run_dir) * 2, total_trigger, executor=executor, progress=False)
    assert got == [("run1", 210), ("run2", 210), ("run3", 210)] * 2
