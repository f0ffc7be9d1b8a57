"""DiskThread: order, merging of batches, the bounded queue, periodic tasks and errors."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import pytest

from satellites.h5datawriter.disk_thread import DiskThread


@pytest.fixture
def errors() -> list[BaseException]:
    return []


@pytest.fixture
def disk(errors: list[BaseException]) -> Any:
    thread = DiskThread("test-disk", errors.append, max_bytes=100, max_jobs=4)
    yield thread
    thread.stop(5)


def test_jobs_run_in_order_and_call_returns_after_them(disk: DiskThread) -> None:
    done: list[int] = []
    for i in range(5):
        disk.submit(partial(done.append, i))
    assert disk.call(lambda: list(done), timeout=5) == [0, 1, 2, 3, 4]


def test_call_raises_what_the_job_raised_and_submit_reports_errors(
    disk: DiskThread, errors: list[BaseException]
) -> None:
    def boom() -> None:
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        disk.call(boom, timeout=5)
    disk.submit(boom)
    disk.call(lambda: None, timeout=5)
    assert [str(e) for e in errors] == ["disk on fire"]


def test_consecutive_batches_of_one_key_merge(disk: DiskThread) -> None:
    calls: list[tuple[str, list[int]]] = []

    def record(key: str, items: list[int]) -> None:
        calls.append((key, items))

    gate = threading.Event()
    disk.submit(lambda: gate.wait(5))  # hold the thread while the batches queue up
    disk.submit_batch(record, "a", [1, 2], 10)
    disk.submit_batch(record, "a", [3], 10)
    disk.submit_batch(record, "b", [4], 10)
    disk.submit_batch(record, "a", [5], 10)
    gate.set()
    disk.call(lambda: None, timeout=5)
    assert calls == [("a", [1, 2, 3]), ("b", [4]), ("a", [5])]
    assert disk.queued_bytes == 0


def test_data_jobs_block_while_the_queue_is_full(disk: DiskThread) -> None:
    gate = threading.Event()
    disk.submit(lambda: gate.wait(5))
    for _ in range(4):  # max_jobs = 4
        disk.submit(lambda: None, nbytes=1)
    blocked = threading.Event()
    returned = threading.Event()

    def producer() -> None:
        blocked.set()
        disk.submit(lambda: None, nbytes=1)
        returned.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert blocked.wait(5)
    assert not returned.wait(0.3)  # still full
    disk.submit(lambda: None)  # control jobs never block
    gate.set()
    assert returned.wait(5)
    thread.join(5)


def test_periodic_tasks_run_between_jobs_until_cancelled(disk: DiskThread) -> None:
    ticks = threading.Semaphore(0)
    task = disk.every(0.01, ticks.release)
    for _ in range(3):
        assert ticks.acquire(timeout=5)
    task.cancel()
    disk.call(lambda: None, timeout=5)
    while ticks.acquire(blocking=False):
        pass
    assert not ticks.acquire(timeout=0.1)


def test_stop_runs_what_is_queued_then_refuses(errors: list[BaseException]) -> None:
    disk = DiskThread("test-stop", errors.append)
    done: list[int] = []
    disk.submit(lambda: done.append(1))
    assert disk.stop(5)
    assert done == [1] and not disk.alive
    with pytest.raises(RuntimeError):
        disk.submit(lambda: None)


def test_call_from_the_disk_thread_runs_at_once(disk: DiskThread) -> None:
    assert disk.call(lambda: disk.call(lambda: 7), timeout=5) == 7
