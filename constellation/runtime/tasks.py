"""Runtime: periodic user tasks — the loop's timer decides, the task worker runs.

:meth:`PeriodicTasks.every` schedules ``fn`` on the event loop; each tick only checks the state
filter and whether the previous call finished (a tick that finds it still running is skipped,
never queued), then hands ``fn`` to the task worker. ``fn`` never runs in the loop thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from constellation.core.states import State
from constellation.errors import UsageError
from constellation.net.loop import EventLoop, TimerHandle
from constellation.runtime.workers import ActiveCalls, Worker

__all__ = ["PeriodicTasks"]


class PeriodicTasks:
    """The periodic tasks of one satellite, run in ``worker``."""

    def __init__(
        self, worker: Worker, active: ActiveCalls, state: Callable[[], State], log: logging.Logger
    ) -> None:
        self._worker = worker
        self._active = active
        self._state = state
        self._log = log
        self._timers: list[TimerHandle] = []

    def every(
        self,
        loop: EventLoop,
        interval: float,
        fn: Callable[[], Any],
        states: frozenset[State] | None = None,
    ) -> TimerHandle:
        """Call ``fn`` every ``interval`` s (first after one interval), only in ``states``."""
        label = f"task {getattr(fn, '__name__', fn)}"
        busy = threading.Event()

        def run() -> None:  # task worker
            try:
                with self._active.running(label):
                    fn()
            except Exception:
                self._log.exception("scheduled %s failed", label)
            finally:
                busy.clear()

        def tick() -> None:  # loop thread
            if busy.is_set() or (states is not None and self._state() not in states):
                return
            busy.set()
            try:
                self._worker.submit(run)
            except UsageError:
                busy.clear()  # closing

        handle = loop.call_every(interval, tick, first=interval)
        self._timers.append(handle)
        return handle

    def cancel_all(self) -> None:
        for handle in self._timers:
            handle.cancel()
