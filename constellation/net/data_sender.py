"""I/O layer: the batching CDTP2 PUSH sender of a transmitter.

:class:`DataSender` collects records in the producer's thread into batches of about
``payload_threshold`` block bytes and hands sealed batches to its own sender thread, which encodes
and sends them as DATA messages; a partial batch is sealed :data:`IDLE_FLUSH_S` after its first
record at the latest, and everything queued is sent before the run ends. The producer path takes
one uncontended lock per record and does no other synchronisation; the sender thread wakes up per
batch. The queue is bounded in records (``queue_size``) and block bytes: a producer that outruns
the receiver blocks until the queue has drained to half those limits (one wake-up per many
batches) and gets :class:`DataTimeoutError` if nothing was sent for ``data_timeout``, as does a
DATA message the receiver does not take within ``data_timeout`` — records are never dropped
silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import zmq

from constellation.errors import DataTimeoutError, SendingStoppedError
from constellation.net.interfaces import NetworkScope
from constellation.net.process_tuning import gc_relief
from constellation.net.sockets import bind_in_scope
from constellation.protocol.cdtp2 import CDTP2Message, CDTPType, DataRecord, encode_data_frame

__all__ = ["DATA_HWM", "IDLE_FLUSH_S", "MAX_QUEUED_BYTES", "DataSender"]

log = logging.getLogger("constellation.net.cdtp")

#: Upper bound of the block bytes held in the send queue, whatever ``queue_size`` says.
MAX_QUEUED_BYTES = 128 * 1024 * 1024
#: A partial batch is sent at the latest this many seconds after its first record.
IDLE_FLUSH_S = 0.05
#: ZeroMQ high-water mark (messages) of the data sockets.
DATA_HWM = 64
#: Frames of at least this size are handed to ZeroMQ without a copy.
_ZERO_COPY_BYTES = 64 * 1024

_monotonic = time.monotonic
#: Sequence number, tags, blocks: what the encoder packs as one record.
_Record = tuple[int, dict[str, Any], Sequence[Any]]


class _Cancelled(Exception):
    """The sender thread was told to give up while a send waited for room."""


class DataSender:
    """A PUSH socket with a bounded, batching send queue and a sender thread.

    Thread roles: one producer calls :meth:`add` (the satellite's ``do_run``); the sender thread
    encodes and sends; the run control (:meth:`begin_run`, :meth:`end_run`, :meth:`abort`,
    :meth:`send_message`) is called from the worker thread while no records are being sent.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        scope: NetworkScope,
        own_name: str,
        port: int = 0,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = own_name
        self.on_error = on_error
        self._sock: zmq.Socket[Any] = context.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.IMMEDIATE, 1)
        self._sock.setsockopt(zmq.SNDHWM, DATA_HWM)
        self.port = bind_in_scope(self._sock, scope, port)
        self.threshold = 128 * 1024
        self.queue_size = 32768
        self.data_timeout = 10.0
        self.max_bytes = MAX_QUEUED_BYTES
        self._batch_records = self.queue_size // 2
        self._lock = threading.Lock()  # the open batch: producer against the idle flush
        self._cv = threading.Condition(threading.Lock())  # wake-ups of sender and producer
        self._thread: threading.Thread | None = None
        self._closed = False
        self._reset()

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
        self._ready: deque[tuple[list[_Record], int]] = deque()
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

    # --- control messages (worker thread, sender thread not running) ---------------------------
    def send_message(self, message: CDTP2Message, timeout: float) -> None:
        """Send a BOR or EOR; raises DataTimeoutError if no receiver takes it in time."""
        if self.running:
            raise RuntimeError("BOR/EOR cannot be sent while the sender thread runs")
        frame = message.encode()[0]
        self._sock.setsockopt(zmq.SNDTIMEO, max(1, int(timeout * 1000)))
        try:
            self._sock.send(frame)
        except zmq.Again:
            kind = CDTPType(message.msg_type).name
            raise DataTimeoutError(
                f"no receiver accepted the {kind} within {timeout:g} s"
            ) from None

    # --- run ------------------------------------------------------------------------------------
    def begin_run(self) -> None:
        """Reset the sequence numbers and start the sender thread."""
        self._stop_thread()
        self._reset()
        self._thread = threading.Thread(
            target=self._send_loop, name=f"{self.name}-send", daemon=True
        )
        self._thread.start()
        self.active = True

    @property
    def running(self) -> bool:
        """Whether the sender thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def pending_records(self) -> int:
        """Records added but not yet sent."""
        return self.sequence - self.records_sent

    def can_send(self) -> bool:
        """True if a record can be added now without blocking."""
        return (
            self.active
            and self.error is None
            and self.sequence - self.records_sent < self.queue_size
            and self._queued_block_bytes - self._sent_block_bytes < self.max_bytes
        )

    def add(self, tags: dict[str, Any], blocks: Sequence[Any], nbytes: int) -> int:
        """Queue one record (producer thread); return its sequence number.

        ``blocks`` is kept as given until it is sent. Blocks while the queue is full, up to
        ``data_timeout``, then raises :class:`DataTimeoutError`. Outside a run (before
        :meth:`begin_run`, after :meth:`end_run`, :meth:`abort` or :meth:`interrupt`) nothing
        would send the record: raises :class:`SendingStoppedError` and queues nothing.
        """
        sequence = self.sequence + 1
        if (
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

    def _seal(self) -> None:
        """Move the open batch to the ready queue (caller holds ``_lock``)."""
        self._ready.append((self._batch, self._batch_bytes))
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
    def _next_batch(self) -> tuple[list[_Record], int] | None:
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

    def _send_loop(self) -> None:
        gc_relief.acquire()
        try:
            self._send_batches()
        finally:
            gc_relief.release()

    def _send_batches(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            records, nbytes = batch
            try:
                # Plain (sequence, tags, blocks) tuples pack exactly like DataRecords.
                frame = encode_data_frame(self.name, cast("list[DataRecord]", records))
                self._send_frame(frame)
            except zmq.Again:
                waited = f"a DATA message waited {self.data_timeout:g} s"
                self._fail(DataTimeoutError(f"receiver did not keep up: {waited}"))
                return
            except _Cancelled:
                return
            except Exception as exc:
                self._fail(exc)
                return
            self.records_sent += len(records)
            self.bytes_sent += len(frame)
            self._sent_block_bytes += nbytes
            with self._cv:
                if self._producer_waiting and self._drained():
                    self._cv.notify_all()

    def _send_frame(self, frame: bytes) -> None:
        """Send one frame, waiting up to ``data_timeout`` for room; gives up when cancelled."""
        copy = len(frame) < _ZERO_COPY_BYTES
        try:
            self._sock.send(frame, zmq.NOBLOCK, copy=copy)
            return
        except zmq.Again:
            pass
        deadline = _monotonic() + self.data_timeout
        while True:
            if self._cancel:
                raise _Cancelled()
            if _monotonic() >= deadline:
                raise zmq.Again()
            if self._sock.poll(50, zmq.POLLOUT):
                try:
                    self._sock.send(frame, zmq.NOBLOCK, copy=copy)
                    return
                except zmq.Again:
                    continue

    def _fail(self, exc: BaseException) -> None:
        self.active = False
        if self.on_error is not None and not self._quiet:  # first: a waiting producer wakes up
            try:
                self.on_error(exc)
            except Exception:
                log.exception("error handler of the data sender failed")
        with self._cv:
            self.error = exc
            self._cv.notify_all()

    # --- end of run -----------------------------------------------------------------------------
    def end_run(self) -> None:
        """Send everything queued, then stop the sender thread.

        There is no overall time limit: the sender thread fails by itself when one message is
        not taken within ``data_timeout``. Raises :class:`DataTimeoutError` if sending failed
        (now or earlier in the run).
        """
        self.active = False
        self._drain(None)
        self._thread = None
        if self.error is not None:
            raise DataTimeoutError(f"data sending failed: {self.error}")

    def _drain(self, timeout: float | None) -> None:
        """Let the sender thread send what is queued and end; wait up to ``timeout`` s."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def interrupt(self) -> None:
        """Stop taking records now (any thread): a producer waiting for room gets
        :class:`SendingStoppedError`; later send errors are kept in :attr:`error`, not reported.
        """
        with self._cv:
            self._quiet = True
            self.active = False
            self._cv.notify_all()

    def end_run_within(self, timeout: float) -> int:
        """After :meth:`interrupt`: send what is queued for at most ``timeout`` s, abandon the
        rest and stop the sender thread. Never raises; returns the number of records not sent.
        """
        self.interrupt()
        self._drain(max(0.0, timeout))
        self._stop_thread()
        return self.pending_records

    def abort(self) -> None:
        """Stop sending at once, abandoning the queue (after a failure)."""
        self.active = False
        self._stop_thread()

    def _stop_thread(self) -> None:
        """Cancel the sender thread and wait for it (it notices within 50 ms)."""
        thread = self._thread
        if thread is None:
            return
        with self._cv:
            self._stopping = True
            self._cancel = True
            self._cv.notify_all()
        if thread is not threading.current_thread():
            thread.join(5.0)
            if thread.is_alive():
                log.error("data sender thread of %s did not stop", self.name)
                return
        self._thread = None

    def close(self) -> None:
        """Stop the sender thread (abandoning what is queued) and close the socket."""
        if self._closed:
            return
        self.active = False
        self._stop_thread()
        if self._thread is not None:  # never close a socket another thread is using
            log.error("data socket of %s left open", self.name)
            return
        self._closed = True
        self._sock.close(linger=0)
