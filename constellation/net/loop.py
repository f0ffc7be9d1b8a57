"""I/O layer: the single ZeroMQ poll loop of a process.

One thread owns the command, heartbeat and monitoring sockets. Other threads never touch those
sockets; they hand work to the loop with :meth:`EventLoop.call_soon`, which wakes the poller
through an inproc socket pair. Timers (``call_later``/``call_every``) are served by the same
thread, with the poll timeout set to the next deadline, so nothing sleeps. Only framework code
runs here: anything that may block (user hooks, custom commands, periodic user tasks) is handed
to a worker thread (``constellation.runtime.workers``) by its owner.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from constellation.errors import LoopTimeoutError

__all__ = ["EventLoop", "TimerHandle"]

log = logging.getLogger("constellation.net.loop")
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
    ) -> None:
        self.context = context or zmq.Context.instance()
        self.name = name
        self.on_error = on_error
        self._poller = zmq.Poller()
        self._handlers: dict[zmq.Socket[Any], Callable[[], None]] = {}
        self._calls: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        self._timers: list[TimerHandle] = []
        self._seq = itertools.count()
        address = f"inproc://cnstln-wake-{id(self)}-{next(_loop_ids)}"
        self._wake_rx = self.context.socket(zmq.PULL)
        self._wake_rx.bind(address)
        self._wake_tx = self.context.socket(zmq.PUSH)
        self._wake_tx.setsockopt(zmq.SNDHWM, 0)
        self._wake_tx.connect(address)
        self._wake_lock = threading.Lock()
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
        self._calls.put(lambda: fn(*args))
        self._wake()

    def run_sync(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` in the loop thread and return its result (raises what it raised).

        Raises :class:`~constellation.errors.LoopTimeoutError` (a ``TimeoutError``) when the
        loop does not run it within ``timeout`` s.
        """
        if self.in_loop_thread() or not self._running.is_set():
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
        """Stop the loop thread and close the wake-up sockets."""
        if self._running.is_set():
            self._running.clear()
            self._wake()
            if self._thread is not None and not self.in_loop_thread():
                self._thread.join(timeout)
        with self._wake_lock:
            self._wake_tx.close(linger=0)
        self._wake_rx.close(linger=0)

    # --- loop thread -----------------------------------------------------------------------
    def _wake(self) -> None:
        with self._wake_lock:
            if not self._wake_tx.closed:
                self._wake_tx.send(b"", zmq.NOBLOCK)

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
        finally:
            self._stopped.set()

    def _drain_wake(self) -> None:
        try:
            while True:
                self._wake_rx.recv(zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _run_calls(self) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            self._guard(call)

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
