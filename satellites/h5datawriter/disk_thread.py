"""H5DataWriter threading: one thread that does every piece of file work, in order.

The receive thread hands BORs, record batches and EORs over with :meth:`DiskThread.submit`;
transitions wait for results with :meth:`DiskThread.call`; flushing and disk-space checks are
periodic tasks (:meth:`DiskThread.every`) run by the same thread between jobs. So HDF5 and the
file system are never touched by the event loop that serves heartbeats and commands, and a slow
disk only delays the writing (the queue fills and back-pressure reaches the transmitters).

The queue is bounded in data bytes and jobs: :meth:`submit` of a data job blocks while the
bound is reached; control jobs (``nbytes=0``) never block, so a failure handler may queue the
closing of the file from any thread. Batches queued with :meth:`submit_batch` for the same
function and key, one right after the other, are merged into one call (up to
:data:`MAX_MERGED_BYTES`): when the disk falls behind, it writes fewer, larger pieces.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_QUEUED_BYTES", "MAX_QUEUED_JOBS", "DiskThread", "Periodic"]

#: Data bytes that may wait in the queue before :meth:`DiskThread.submit` blocks.
MAX_QUEUED_BYTES = 16 * 1024 * 1024
#: Data jobs that may wait in the queue before :meth:`DiskThread.submit` blocks.
MAX_QUEUED_JOBS = 256
#: At most this many data bytes of consecutive batches are merged into one call.
MAX_MERGED_BYTES = 4 * 1024 * 1024


@dataclass
class _Batch:
    """Items for ``fn(key, items)``; consecutive batches of the same fn and key merge."""

    fn: Callable[[Any, list[Any]], Any]
    key: Any
    items: list[Any]

    def __call__(self) -> None:
        self.fn(self.key, self.items)


_Job = tuple["Callable[[], Any] | _Batch", int, "Future[Any] | None"]


@dataclass
class Periodic:
    """A task run every ``interval`` s by the disk thread; ``cancel()`` ends it."""

    interval: float
    fn: Callable[[], Any]
    deadline: float
    cancelled: bool = field(default=False)

    def cancel(self) -> None:
        self.cancelled = True


class DiskThread:
    """A daemon thread running submitted jobs in order, and periodic tasks between them."""

    def __init__(
        self,
        name: str,
        on_error: Callable[[BaseException], None],
        max_bytes: int = MAX_QUEUED_BYTES,
        max_jobs: int = MAX_QUEUED_JOBS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_error = on_error
        self.max_bytes = max_bytes
        self.max_jobs = max_jobs
        self._clock = clock
        self._jobs: deque[_Job] = deque()
        self._periodic: list[Periodic] = []
        self._cv = threading.Condition(threading.Lock())
        self._queued_bytes = 0
        self._queued_data = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- any thread -----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[[], Any], nbytes: int = 0) -> None:
        """Queue ``fn``; a data job (``nbytes`` > 0) waits while the queue is full.

        An exception of ``fn`` goes to ``on_error``. Raises RuntimeError after :meth:`stop`.
        """
        self._put(fn, nbytes, None)

    def submit_batch(
        self, fn: Callable[[Any, list[Any]], Any], key: Any, items: Sequence[Any], nbytes: int
    ) -> None:
        """Queue ``fn(key, items)`` as a data job of ``nbytes`` (merged with its neighbours)."""
        self._put(_Batch(fn, key, list(items)), max(1, nbytes), None)

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Queue ``fn`` behind everything queued, wait for it and return its result.

        Raises what ``fn`` raised, or TimeoutError. Called from the disk thread itself, it runs
        ``fn`` at once.
        """
        if self.in_thread():
            return fn()
        future: Future[Any] = Future()
        self._put(fn, 0, future)
        return future.result(timeout)

    def every(self, interval: float, fn: Callable[[], Any]) -> Periodic:
        """Run ``fn`` every ``interval`` s (first after one interval) in the disk thread."""
        task = Periodic(interval, fn, self._clock() + interval)
        with self._cv:
            self._periodic.append(task)
            self._cv.notify_all()
        return task

    @property
    def queued_bytes(self) -> int:
        """Data bytes waiting in the queue."""
        return self._queued_bytes

    def stop(self, timeout: float | None = None) -> bool:
        """Run what is queued, then end the thread; returns whether it ended in time."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if not self.in_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _put(self, fn: Callable[[], Any] | _Batch, nbytes: int, future: Future[Any] | None) -> None:
        with self._cv:
            if nbytes > 0 and not self.in_thread():
                while self._queued_data and (
                    self._queued_bytes >= self.max_bytes or self._queued_data >= self.max_jobs
                ):
                    if self._stopping:
                        break
                    self._cv.wait(0.5)
            if self._stopping:
                raise RuntimeError("the disk thread was stopped")
            self._jobs.append((fn, nbytes, future))
            if nbytes > 0:
                self._queued_bytes += nbytes
                self._queued_data += 1
            self._cv.notify_all()

    # --- disk thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            fn, nbytes, future = job
            jobs = 1
            if isinstance(fn, _Batch):
                fn, nbytes, jobs = self._merge(fn, nbytes)
            if future is None:
                self._guard(fn)
            elif future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the caller
                    future.set_exception(exc)
            if nbytes > 0:
                with self._cv:
                    self._queued_bytes -= nbytes
                    self._queued_data -= jobs
                    self._cv.notify_all()

    def _merge(self, batch: _Batch, nbytes: int) -> tuple[_Batch, int, int]:
        """Merge the batches queued right behind ``batch`` with the same fn and key."""
        jobs = 1
        with self._cv:
            while self._jobs and nbytes < MAX_MERGED_BYTES:
                following, size, _ = self._jobs[0]
                if not (
                    isinstance(following, _Batch)
                    and following.fn == batch.fn
                    and following.key == batch.key
                ):
                    break
                self._jobs.popleft()
                batch.items.extend(following.items)  # our own list (see submit_batch)
                nbytes += size
                jobs += 1
        return batch, nbytes, jobs

    def _next_job(self) -> _Job | None:
        """The next job; runs due periodic tasks first; None when stopped and empty."""
        while True:
            self._run_due()
            with self._cv:
                if self._jobs:
                    return self._jobs.popleft()
                if self._stopping:
                    return None
                self._cv.wait(self._wait_time())

    def _wait_time(self) -> float | None:
        deadlines = [t.deadline for t in self._periodic if not t.cancelled]
        return max(0.0, min(deadlines) - self._clock()) if deadlines else None

    def _run_due(self) -> None:
        now = self._clock()
        with self._cv:
            self._periodic = [t for t in self._periodic if not t.cancelled]
            due = [t for t in self._periodic if t.deadline <= now]
        for task in due:
            if task.cancelled:
                continue
            self._guard(task.fn)
            after = self._clock()
            task.deadline += task.interval
            if task.deadline <= after:  # late (a slow task): one interval from now
                task.deadline = after + task.interval

    def _guard(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:
            try:
                self.on_error(exc)
            except Exception:  # never let the thread die
                pass
