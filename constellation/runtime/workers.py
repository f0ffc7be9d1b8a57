"""Runtime: the threads that run user code, off the event-loop thread.

A :class:`Worker` is one daemon thread running submitted calls one at a time, in order. Daemon,
so that a hook that never returns cannot keep the process alive after ``close()``: the
satellite logs it (see :class:`ActiveCalls`) and the process exits anyway. Every call is named
(``do_run``, ``command 'calibrate'``...) so that what is still running can be reported.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from constellation.errors import UsageError

__all__ = ["ActiveCall", "ActiveCalls", "UserThreads", "Worker"]

T = TypeVar("T")


@dataclass(frozen=True)
class ActiveCall:
    """A user call in progress: its name, the thread running it, when it began (monotonic)."""

    name: str
    thread: str
    since: float

    def running_for(self, now: float) -> float:
        return now - self.since


class ActiveCalls:
    """Thread-safe record of the user calls in progress (hooks, commands, tasks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[int, ActiveCall] = {}
        self._seq = 0

    @contextmanager
    def running(self, name: str) -> Iterator[None]:
        """Mark ``name`` as running in the current thread while the block executes."""
        thread = threading.current_thread().name
        with self._lock:
            self._seq += 1
            key = self._seq
            self._calls[key] = ActiveCall(name, thread, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                del self._calls[key]

    def snapshot(self) -> list[ActiveCall]:
        """The calls in progress, oldest first."""
        with self._lock:
            return sorted(self._calls.values(), key=lambda call: call.since)


class Worker:
    """One daemon thread that runs submitted calls in submission order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cv = threading.Condition()
        self._queue: collections.deque[tuple[Future[Any], Callable[[], Any]]] = collections.deque()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None  # started by the first submit

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)``; its result or exception ends up in the returned future.

        Raises :class:`~constellation.errors.UsageError` (a ``RuntimeError``) after
        :meth:`shutdown`.
        """
        future: Future[T] = Future()
        with self._cv:
            if self._closed:
                raise UsageError(f"worker {self.name} is shut down")
            self._queue.append((future, lambda: fn(*args)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cv.notify_all()
        return future

    @property
    def pending(self) -> int:
        """Calls queued or running."""
        with self._cv:
            return len(self._queue) + int(self._busy)

    def in_worker_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until nothing is queued or running; True if idle."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._queue and not self._busy, timeout)

    def shutdown(self) -> None:
        """Accept no more calls, cancel the queued ones; the running call is not interrupted."""
        with self._cv:
            self._closed = True
            cancelled = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        for future, _fn in cancelled:
            future.cancel()

    def _run(self) -> None:
        while True:
            with self._cv:
                self._busy = False
                self._cv.notify_all()
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return
                future, fn = self._queue.popleft()
                self._busy = True
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(result)


class UserThreads:
    """The workers of one satellite's user code and the record of what runs in them.

    ``hooks``: transitions and ``do_run``; ``commands``: custom commands; ``tasks``: periodic
    tasks, metric polls, ``do_failure`` caused from the loop thread.
    """

    def __init__(self, prefix: str) -> None:
        self.active = ActiveCalls()
        self.hooks = Worker(f"{prefix}-hooks")
        self.commands = Worker(f"{prefix}-commands")
        self.tasks = Worker(f"{prefix}-tasks")

    def settle(self, timeout: float) -> list[ActiveCall]:
        """Wait up to ``timeout`` s for every worker to be idle; the calls still running."""
        deadline = time.monotonic() + timeout
        for worker in (self.hooks, self.commands, self.tasks):
            worker.wait_idle(max(0.0, deadline - time.monotonic()))
        return self.active.snapshot()

    def settle_or_abandon(self, timeout: float, log: logging.Logger) -> None:
        """:meth:`settle`, then name every call still running in a CRITICAL log: it is left
        behind (its daemon thread does not keep the process alive)."""
        stuck = self.settle(timeout)
        now = time.monotonic()
        for call in stuck:
            log.critical(
                "%s still running after %.1f s (it ignores stop_requested()); "
                "closing without it, its thread %s is abandoned",
                call.name,
                call.running_for(now),
                call.thread,
            )

    def shutdown(self) -> None:
        for worker in (self.hooks, self.commands, self.tasks):
            worker.shutdown()
