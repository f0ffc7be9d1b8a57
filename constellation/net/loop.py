"""I/O layer: the single ZeroMQ poll loop of a process.

One thread owns the command, heartbeat and monitoring sockets. Other threads never touch those
sockets; they hand work to the loop with :meth:`EventLoop.call_soon`, which wakes the poller
through an inproc socket pair. Timers (``call_later``/``call_every``) are served by the same
thread, with the poll timeout set to the next deadline, so nothing sleeps. Only framework code
runs here: anything that may block (user hooks, custom commands, periodic user tasks) is handed
to a worker thread (``constellation.runtime.workers``) by its owner.

Bounds: at most one wake-up byte is ever pending (producers coalesce); each iteration runs only
the calls queued before it began, so a call that queues another cannot starve timers or
sockets; droppable calls (monitoring: log and metric publishing, see
:meth:`EventLoop.call_soon_droppable`) are held in a queue of at most ``max_droppable`` entries
and dropped first, oldest first, when it is full; :attr:`EventLoop.dropped_calls` counts them and
a WARNING line reports new drops at most once a second.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from constellation.errors import LoopTimeoutError

__all__ = ["EventLoop", "TimerHandle"]

log = logging.getLogger("constellation.net.loop")

#: Default bound of the droppable (monitoring) call queue.
DEFAULT_MAX_DROPPABLE = 10_000
#: Seconds between two WARNING lines about dropped calls.
_DROP_REPORT_INTERVAL = 1.0
_loop_ids = itertools.count()


@dataclass(order=True)
class TimerHandle:
    """A scheduled call; ``cancel()`` prevents further runs."""

    deadline: float
    seq: int
    callback: Callable[[], Any] = field(compare=False)
    interval: float | None = field(default=None, compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    """A poll loop in its own thread serving sockets, thread-safe calls and timers."""

    def __init__(
        self,
        context: zmq.Context[Any] | None = None,
        name: str = "cnstln-loop",
        on_error: Callable[[BaseException], None] | None = None,
        max_droppable: int = DEFAULT_MAX_DROPPABLE,
    ) -> None:
        self.context = context or zmq.Context.instance()
        self.name = name
        self.on_error = on_error
        self._poller = zmq.Poller()
        self._handlers: dict[zmq.Socket[Any], Callable[[], None]] = {}
        self._calls: deque[Callable[[], Any]] = deque()
        self._droppable: deque[Callable[[], Any]] = deque()
        self.max_droppable = max_droppable
        #: Droppable calls discarded because their queue was full.
        self.dropped_calls = 0
        self._reported_drops = 0
        self._last_drop_report = 0.0
        self._timers: list[TimerHandle] = []
        self._seq = itertools.count()
        address = f"inproc://cnstln-wake-{id(self)}-{next(_loop_ids)}"
        self._wake_rx = self.context.socket(zmq.PULL)
        self._wake_rx.bind(address)
        self._wake_tx = self.context.socket(zmq.PUSH)
        self._wake_tx.setsockopt(zmq.SNDHWM, 0)
        self._wake_tx.connect(address)
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._sockets_closed = False
        self._poller.register(self._wake_rx, zmq.POLLIN)
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._stopped = threading.Event()

    # --- thread-safe API -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._running.set()
        self._thread.start()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the loop thread as soon as possible."""
        self._calls.append(lambda: fn(*args))
        self._wake()

    def call_soon_droppable(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Like :meth:`call_soon` for monitoring traffic: dropped (and counted) when the loop
        lags ``max_droppable`` such calls behind; returns False when this call was dropped."""
        with self._wake_lock:
            if len(self._droppable) >= self.max_droppable:
                self.dropped_calls += 1
                return False
            self._droppable.append(lambda: fn(*args))
        self._wake()
        return True

    def run_sync(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` in the loop thread and return its result (raises what it raised).

        Raises :class:`~constellation.errors.LoopTimeoutError` (a ``TimeoutError``) when the
        loop does not run it within ``timeout`` s.
        """
        if self.in_loop_thread() or self._thread is None:
            return fn()
        if not self._running.is_set():
            # Stopping: never touch the loop's sockets while its thread may still poll them.
            if not self._stopped.wait(timeout):
                raise LoopTimeoutError(f"event loop {self.name} did not stop within {timeout} s")
            return fn()
        done = threading.Event()
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["result"] = fn()
            except BaseException as exc:  # handed back to the caller
                box["error"] = exc
            finally:
                done.set()

        self.call_soon(call)
        if not done.wait(timeout):
            raise LoopTimeoutError(f"event loop {self.name} did not answer within {timeout} s")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def call_later(self, delay: float, fn: Callable[[], Any]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + delay, next(self._seq), fn)
        self.call_soon(self._push_timer, handle)
        return handle

    def call_every(self, interval: float, fn: Callable[[], Any], first: float = 0.0) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + first, next(self._seq), fn, interval)
        self.call_soon(self._push_timer, handle)
        return handle

    def add_socket(self, sock: zmq.Socket[Any], on_readable: Callable[[], None]) -> None:
        """Serve ``sock`` in the loop: ``on_readable`` is called when it has input."""

        def register() -> None:
            self._handlers[sock] = on_readable
            self._poller.register(sock, zmq.POLLIN)

        self.run_sync(register)

    def remove_socket(self, sock: zmq.Socket[Any]) -> None:
        def unregister() -> None:
            if self._handlers.pop(sock, None) is not None:
                self._poller.unregister(sock)

        self.run_sync(unregister)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop thread; its wake-up sockets are closed by the thread as it ends.

        If the thread does not end within ``timeout`` s (a handler is stuck), nothing it may
        still poll is closed under it.
        """
        if self._running.is_set():
            self._running.clear()
            self._wake()
            if self._thread is not None and not self.in_loop_thread():
                self._thread.join(timeout)
        if self._thread is None:
            self._close_wake_sockets()

    # --- loop thread -----------------------------------------------------------------------
    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_pending or self._sockets_closed:
                return
            self._wake_pending = True
            self._wake_tx.send(b"", zmq.NOBLOCK)

    def _close_wake_sockets(self) -> None:
        with self._wake_lock:
            if self._sockets_closed:
                return
            self._sockets_closed = True
            self._wake_tx.close(linger=0)
            self._wake_rx.close(linger=0)

    def _push_timer(self, handle: TimerHandle) -> None:
        heapq.heappush(self._timers, handle)

    def _next_timeout_ms(self) -> int:
        if not self._timers:
            return 1000
        delay = self._timers[0].deadline - time.monotonic()
        return max(0, min(1000, int(delay * 1000) + 1))

    def _run(self) -> None:
        try:
            while self._running.is_set():
                events = dict(self._poller.poll(self._next_timeout_ms()))
                if self._wake_rx in events:
                    self._drain_wake()
                self._run_calls()
                for sock, handler in list(self._handlers.items()):
                    if sock in events:
                        self._guard(handler)
                self._run_timers()
                self._report_drops()
        finally:
            self._close_wake_sockets()
            self._stopped.set()

    def _drain_wake(self) -> None:
        with self._wake_lock:  # producers queue their call before they look at the flag
            self._wake_pending = False
            try:
                while True:
                    self._wake_rx.recv(zmq.NOBLOCK)
            except zmq.Again:
                pass

    def _run_calls(self) -> None:
        """Run the calls queued so far; calls they queue wait for the next iteration."""
        calls, droppable = self._calls, self._droppable
        for _ in range(len(calls)):
            self._guard(calls.popleft())
        for _ in range(len(droppable)):
            self._guard(droppable.popleft())
        if calls or droppable:
            self._wake()  # work is left: do not sleep in the next poll

    def _report_drops(self) -> None:
        dropped = self.dropped_calls
        if dropped == self._reported_drops:
            return
        now = time.monotonic()
        if now - self._last_drop_report < _DROP_REPORT_INTERVAL:
            return
        self._last_drop_report = now
        log.warning(
            "event loop %s: %d monitoring messages dropped (queue full), %d in total",
            self.name,
            dropped - self._reported_drops,
            dropped,
        )
        self._reported_drops = dropped

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0].deadline <= now:
            handle = heapq.heappop(self._timers)
            if handle.cancelled:
                continue
            self._guard(handle.callback)
            if handle.interval is not None and not handle.cancelled:
                handle.deadline = max(handle.deadline + handle.interval, now)
                heapq.heappush(self._timers, handle)

    def _guard(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:
            log.exception("unexpected error in event loop %s", self.name)
            if self.on_error is not None:
                try:
                    self.on_error(exc)
                except Exception:
                    log.exception("error handler failed")
