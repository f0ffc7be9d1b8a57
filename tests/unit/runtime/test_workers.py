"""Worker threads for user code: order, isolation from the caller, shutdown, active calls."""

from __future__ import annotations

import threading

import pytest

from constellation.errors import UsageError
from constellation.runtime.workers import ActiveCalls, Worker


def test_calls_run_in_order_in_the_worker_thread() -> None:
    worker = Worker("w-order")
    seen: list[tuple[int, str]] = []
    futures = [
        worker.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
        for i in range(20)
    ]
    for future in futures:
        future.result(5)
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"w-order"}
    worker.shutdown()


def test_result_and_exception_reach_the_future() -> None:
    worker = Worker("w-result")
    assert worker.submit(lambda a, b: a + b, 2, 3).result(5) == 5
    failing = worker.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(5)
    assert worker.submit(lambda: "still serving").result(5) == "still serving"
    worker.shutdown()


def test_pending_and_wait_idle() -> None:
    worker = Worker("w-idle")
    gate = threading.Event()
    worker.submit(gate.wait, 5)
    worker.submit(lambda: None)
    assert worker.pending == 2
    assert not worker.wait_idle(0.05)
    gate.set()
    assert worker.wait_idle(5)
    assert worker.pending == 0
    worker.shutdown()


def test_shutdown_cancels_queued_calls_and_refuses_new_ones() -> None:
    worker = Worker("w-shutdown")
    gate = threading.Event()
    running = worker.submit(gate.wait, 5)
    queued = worker.submit(lambda: "never")
    worker.wait_idle(0.05)
    worker.shutdown()
    assert queued.cancelled()
    with pytest.raises(UsageError):
        worker.submit(lambda: None)
    with pytest.raises(RuntimeError):  # UsageError is a RuntimeError for callers that expect one
        worker.submit(lambda: None)
    gate.set()
    assert running.result(5) is True


def test_worker_thread_is_a_daemon_started_lazily() -> None:
    worker = Worker("w-daemon")
    assert not any(t.name == "w-daemon" for t in threading.enumerate())
    worker.submit(lambda: None).result(5)
    thread = next(t for t in threading.enumerate() if t.name == "w-daemon")
    assert thread.daemon
    worker.shutdown()


def test_active_calls_name_what_is_running() -> None:
    active = ActiveCalls()
    inside = threading.Event()
    leave = threading.Event()

    def hook() -> None:
        with active.running("do_run"):
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=hook, name="hooks")
    thread.start()
    assert inside.wait(5)
    calls = active.snapshot()
    assert [(c.name, c.thread) for c in calls] == [("do_run", "hooks")]
    assert calls[0].running_for(calls[0].since + 2.5) == 2.5
    leave.set()
    thread.join(5)
    assert active.snapshot() == []
