"""I/O layer helper: the bounded, batching send queue between a producer and a sender thread.

:class:`SendQueue` holds no socket. The producer (the satellite's ``do_run``) adds records with
:meth:`SendQueue.add`, which collects them in the producer's thread into batches of about
``payload_threshold`` block bytes, or finished one-record frames with :meth:`SendQueue.add_frame`
(``reserve_record``: the block was written in place). The sender thread takes sealed batches
with :meth:`SendQueue.next_batch`; a partial batch is sealed :data:`IDLE_FLUSH_S` after its first
record at the latest. The producer path takes one uncontended lock per record; the sender thread
wakes up per batch. The queue is bounded in records (``queue_size``) and block bytes: a producer
that outruns the receiver blocks until the queue has drained to half those limits (one wake-up
per many batches) and gets :class:`DataTimeoutError` if nothing was sent for ``data_timeout``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from constellation.errors import DataTimeoutError, SendingStoppedError

__all__ = ["IDLE_FLUSH_S", "MAX_QUEUED_BYTES", "Batch", "SendQueue"]

#: Upper bound of the block bytes held in the send queue, whatever ``queue_size`` says.
MAX_QUEUED_BYTES = 128 * 1024 * 1024
#: A partial batch is sent at the latest this many seconds after its first record.
IDLE_FLUSH_S = 0.05

_monotonic = time.monotonic
#: Sequence number, tags, blocks: what the encoder packs as one record.
_Record = tuple[int, dict[str, Any], Sequence[Any]]
#: A sealed batch: records to encode (or one finished frame), record count, block bytes.
Batch = tuple["list[_Record] | memoryview", int, int]


class _Frame(Protocol):
    """What :meth:`SendQueue.add_frame` takes (a ``protocol.cdtp2_reserved.ReservedFrame``)."""

    nbytes: int

    def finish(self, sequence: int) -> memoryview: ...


class SendQueue:
    """The producer side of a data sender and the hand-off of sealed batches to its thread.

    Subclasses provide :attr:`running` (whether the sender thread is alive) and report what the
    thread sent by updating ``records_sent`` and ``_sent_block_bytes`` under ``_cv``.
    """

    def __init__(self) -> None:
        self.threshold = 128 * 1024
        self.queue_size = 32768
        self.data_timeout = 10.0
        self.max_bytes = MAX_QUEUED_BYTES
        self._batch_records = self.queue_size // 2
        self._lock = threading.Lock()  # the open batch: producer against the idle flush
        self._cv = threading.Condition(threading.Lock())  # wake-ups of sender and producer
        self._reset()

    @property
    def running(self) -> bool:
        """Whether the sender thread is alive (the subclass knows)."""
        raise NotImplementedError

    def _reset(self) -> None:
        #: True while records may be added (between begin_run and end_run/abort).
        self.active = False
        self.sequence = 0
        self.records_sent = 0
        self.bytes_sent = 0  # frame bytes on the wire
        self._queued_block_bytes = 0  # producer-written
        self._sent_block_bytes = 0  # sender-written
        self._batch: list[_Record] = []
        self._batch_bytes = 0
        self._batch_started = 0.0
        self._ready: deque[Batch] = deque()
        self._stopping = False
        self._cancel = False
        self._producer_waiting = False
        self._quiet = False  # after interrupt(): send errors are kept in `error`, not reported
        self.error: BaseException | None = None

    def configure(self, payload_threshold_kib: int, queue_size: int, data_timeout: float) -> None:
        """Apply ``_data.payload_threshold`` (KiB), ``queue_size`` and ``data_timeout`` (s)."""
        self.threshold = max(1, payload_threshold_kib * 1024)
        self.queue_size = max(1, queue_size)
        self.data_timeout = data_timeout
        self.max_bytes = max(MAX_QUEUED_BYTES, 2 * self.threshold)
        self._batch_records = max(1, self.queue_size // 2)

    @property
    def pending_records(self) -> int:
        """Records added but not yet sent."""
        return self.sequence - self.records_sent

    def can_send(self) -> bool:
        """True if a record can be added now without blocking."""
        return self.active and self.error is None and not self._full()

    # --- producer -------------------------------------------------------------------------------
    def add(self, tags: dict[str, Any], blocks: Sequence[Any], nbytes: int) -> int:
        """Queue one record (producer thread); return its sequence number.

        ``blocks`` is kept as given until it is sent. Blocks while the queue is full, up to
        ``data_timeout``, then raises :class:`DataTimeoutError`. Outside a run (before
        ``begin_run``, after ``end_run``, ``abort`` or :meth:`interrupt`) nothing would send
        the record: raises :class:`SendingStoppedError` and queues nothing.
        """
        sequence = self.sequence + 1
        if (  # not can_send(), inlined: this is the per-record path
            not self.active
            or sequence - self.records_sent > self.queue_size
            or self._queued_block_bytes - self._sent_block_bytes >= self.max_bytes
            or self.error is not None
        ):
            self._wait_for_space()
        with self._lock:
            batch = self._batch
            batch.append((sequence, tags, blocks))
            self.sequence = sequence
            self._batch_bytes += nbytes
            if self._batch_bytes >= self.threshold or len(batch) >= self._batch_records:
                self._seal()
                seal = True
            else:
                seal = False
                if len(batch) == 1:
                    self._batch_started = _monotonic()
        self._queued_block_bytes += nbytes
        if seal:
            with self._cv:
                self._cv.notify_all()
        return sequence

    def add_frame(self, frame: _Frame) -> int:
        """Queue a one-record frame whose block is already written (producer thread).

        The record gets the next sequence number (returned) and goes out as a DATA message of
        its own, after the records added before it. Blocks and raises as :meth:`add`.
        """
        if not self.can_send():
            self._wait_for_space()
        with self._lock:
            sequence = self.sequence + 1
            ready = frame.finish(sequence)
            if self._batch:
                self._seal()
            self._ready.append((ready, 1, frame.nbytes))
            self.sequence = sequence
        self._queued_block_bytes += frame.nbytes
        with self._cv:
            self._cv.notify_all()
        return sequence

    def _seal(self) -> None:
        """Move the open batch to the ready queue (caller holds ``_lock``)."""
        self._ready.append((self._batch, len(self._batch), self._batch_bytes))
        self._batch = []
        self._batch_bytes = 0

    def _full(self) -> bool:
        return (
            self.sequence - self.records_sent >= self.queue_size
            or self._queued_block_bytes - self._sent_block_bytes >= self.max_bytes
        )

    def _drained(self) -> bool:
        """Whether the queue is down to half its limits (where a waiting producer resumes)."""
        return (
            self.sequence - self.records_sent <= self.queue_size // 2
            and self._queued_block_bytes - self._sent_block_bytes <= self.max_bytes // 2
        )

    def _wait_for_space(self) -> None:
        """Wait until the full queue has drained to half its limits (one wake-up per many
        batches instead of one per batch); fail if nothing was sent for ``data_timeout``."""
        deadline = _monotonic() + self.data_timeout
        first = True
        with self._cv:
            self._producer_waiting = True
            try:
                while True:
                    if self._quiet:
                        raise SendingStoppedError("data sending was stopped by an interrupt")
                    if self.error is not None:
                        raise DataTimeoutError(str(self.error))
                    if not self.active or not self.running:
                        raise SendingStoppedError("record not queued: no run is active")
                    if not self._full() and (first or self._drained()):
                        return
                    first = False
                    remaining = deadline - _monotonic()
                    if remaining <= 0:
                        if not self._full():
                            return  # slow, but moving
                        raise DataTimeoutError(
                            f"receiver did not keep up: send queue full ({self.pending_records} "
                            f"records) for {self.data_timeout:g} s"
                        )
                    self._cv.wait(min(remaining, 0.25))
            finally:
                self._producer_waiting = False

    # --- sender thread --------------------------------------------------------------------------
    def next_batch(self) -> Batch | None:
        """The next sealed batch; seals an idle or final partial batch; None when done."""
        while True:
            if self._cancel:
                return None
            if self._ready:
                return self._ready.popleft()
            with self._lock:
                if self._batch and (
                    self._stopping or _monotonic() - self._batch_started >= IDLE_FLUSH_S
                ):
                    self._seal()
                started = self._batch_started if self._batch else None
            if self._ready:
                continue
            with self._cv:
                if self._ready or self._cancel:
                    continue
                if self._stopping:
                    if self._batch:
                        continue  # sealed in the next pass
                    return None
                wait = IDLE_FLUSH_S if started is None else started + IDLE_FLUSH_S - _monotonic()
                if wait > 0:
                    self._cv.wait(wait)

    def batch_sent(self, count: int, nbytes: int, frame_bytes: int) -> None:
        """Account for a batch the sender thread sent; wakes a waiting producer when drained."""
        self.records_sent += count
        self.bytes_sent += frame_bytes
        self._sent_block_bytes += nbytes
        with self._cv:
            if self._producer_waiting and self._drained():
                self._cv.notify_all()

    def interrupt(self) -> None:
        """Stop taking records now (any thread): a producer waiting for room gets
        :class:`SendingStoppedError`; later send errors are kept in ``error``, not reported.
        """
        with self._cv:
            self._quiet = True
            self.active = False
            self._cv.notify_all()
