"""Event loop bounds: coalesced wake-ups, bounded droppable queue, bounded work per iteration,
and no socket closed under a loop thread that is still running."""

from __future__ import annotations

import threading

import pytest
import zmq

from constellation.net.loop import EventLoop


@pytest.fixture
def loop():
    lp = EventLoop(zmq.Context.instance(), name="test-loop")
    yield lp
    lp.stop()


def _pending_wake_bytes(lp: EventLoop) -> int:
    count = 0
    while lp._wake_rx.poll(0):
        lp._wake_rx.recv()
        count += 1
    return count


def test_wake_ups_coalesce_to_one_pending_byte(loop: EventLoop) -> None:
    # The loop thread is not started: nothing drains, so every wake-up byte stays queued.
    for _ in range(500):
        loop.call_soon(lambda: None)
    assert _pending_wake_bytes(loop) == 1


def test_droppable_calls_are_bounded_dropped_and_counted() -> None:
    lp = EventLoop(zmq.Context.instance(), name="bounded", max_droppable=10)
    ran: list[int] = []
    accepted = [lp.call_soon_droppable(ran.append, i) for i in range(25)]
    lp.call_soon(ran.append, -1)  # never dropped, whatever the droppable backlog
    assert accepted == [True] * 10 + [False] * 15
    assert lp.dropped_calls == 15
    done = threading.Event()
    lp.start()
    try:
        lp.call_soon(done.set)
        assert done.wait(5)
        assert sorted(ran) == [-1, *range(10)]
    finally:
        lp.stop()


def test_drops_are_reported_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    lp = EventLoop(zmq.Context.instance(), name="reporting", max_droppable=1)
    lp.call_soon_droppable(lambda: None)
    lp.call_soon_droppable(lambda: None)
    done = threading.Event()
    with caplog.at_level("WARNING", logger="constellation.net.loop"):
        lp.start()
        try:
            lp.call_every(0.01, lambda: done.set() if caplog.records else None)
            assert done.wait(5)
        finally:
            lp.stop()
    assert "1 monitoring messages dropped" in caplog.records[0].getMessage()


def test_a_self_requeueing_call_does_not_starve_timers(loop: EventLoop) -> None:
    stop = threading.Event()
    fired = threading.Event()

    def again() -> None:
        if not stop.is_set():
            loop.call_soon(again)

    loop.start()
    loop.call_later(0.01, fired.set)
    loop.call_soon(again)
    try:
        assert fired.wait(5), "timer starved by a call that keeps queueing calls"
    finally:
        stop.set()


def test_run_sync_after_a_timed_out_stop_waits_for_the_loop_thread() -> None:
    lp = EventLoop(zmq.Context.instance(), name="stuck")
    entered, release = threading.Event(), threading.Event()

    def stuck() -> None:
        entered.set()
        release.wait(10)

    lp.start()
    lp.call_soon(stuck)
    assert entered.wait(5)
    lp.stop(timeout=0.01)  # the thread is stuck in a handler: stop returns without it
    assert not lp._wake_rx.closed, "a socket the loop thread still polls was closed"
    seen: list[bool] = []
    finished = threading.Event()

    def closer() -> None:
        lp.run_sync(lambda: seen.append(lp._thread is not None and lp._thread.is_alive()))
        finished.set()

    threading.Thread(target=closer, daemon=True).start()
    release.set()
    assert finished.wait(5)
    assert seen == [False]  # ran only once the loop thread was gone
    assert lp._stopped.wait(5) and lp._wake_rx.closed and lp._wake_tx.closed
