"""I/O layer: CDTP2 data sockets — the batching PUSH sender and the PULL receiver.

The sender batches records into DATA messages of about ``payload_threshold`` bytes in the
producer's thread and hands complete batches to its own sender thread, which encodes and sends
them. The queue is bounded in records and bytes: a producer that outruns the receiver blocks up
to ``data_timeout`` and then gets :class:`DataTimeoutError` — records are never dropped silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from constellation.errors import DataTimeoutError, DecodeError
from constellation.net.discovery import DiscoveredService
from constellation.net.interfaces import NetworkScope
from constellation.net.ratelimit import RateLimitedWarning
from constellation.net.sockets import bind_in_scope
from constellation.protocol.cdtp2 import CDTP2Message, CDTPType, DataRecord, encode_data_frame

__all__ = ["DataReceiver", "DataSender"]

log = logging.getLogger("constellation.net.cdtp")

#: Upper bound of the bytes held in the send queue, whatever ``queue_size`` says.
MAX_QUEUED_BYTES = 256 * 1024 * 1024
#: A partial batch is sent after this many seconds without reaching the threshold.
IDLE_FLUSH_S = 0.05


class _Cancelled(Exception):
    """The sender is closing while a send waits for room."""


class DataSender:
    """A PUSH socket with a bounded, batching send queue and a sender thread."""

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
        self._sock.setsockopt(zmq.SNDHWM, 64)
        self.port = bind_in_scope(self._sock, scope, port)
        self.threshold = 128 * 1024
        self.queue_size = 32768
        self.data_timeout = 10.0
        self._cv = threading.Condition(threading.Lock())
        self._reset_counters()
        self._thread: threading.Thread | None = None
        self._closing = False

    def _reset_counters(self) -> None:
        self.sequence = 0
        self.records_sent = 0
        self.bytes_sent = 0
        self._batch: list[DataRecord] = []
        self._batch_bytes = 0
        self._batch_started = 0.0
        self._ready: deque[tuple[list[DataRecord], int]] = deque()
        self._pending_records = 0
        self._pending_bytes = 0
        self._stopping = False
        self.error: BaseException | None = None

    def configure(self, payload_threshold_kib: int, queue_size: int, data_timeout: float) -> None:
        self.threshold = max(1, payload_threshold_kib * 1024)
        self.queue_size = queue_size
        self.data_timeout = data_timeout

    # --- control messages (caller's thread, sender thread not running) -----------------------
    def send_message(self, message: CDTP2Message, timeout: float) -> None:
        """Send a BOR or EOR; raises DataTimeoutError if no receiver takes it in time."""
        frame = message.encode()[0]
        self._sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
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
        self._reset_counters()
        self._sock.setsockopt(zmq.SNDTIMEO, int(self.data_timeout * 1000))
        self._thread = threading.Thread(
            target=self._send_loop, name=f"{self.name}-send", daemon=True
        )
        self._thread.start()

    def can_send(self) -> bool:
        """True if a record can be queued now without blocking."""
        return self._pending_records < self.queue_size and self._pending_bytes < MAX_QUEUED_BYTES

    def add(self, tags: dict[str, Any], blocks: Sequence[Any], nbytes: int) -> int:
        """Queue one record; blocks while the queue is full, up to ``data_timeout``."""
        with self._cv:
            if not self.can_send():
                self._wait_for_space()
            self.sequence += 1
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.append(DataRecord(self.sequence, tags, list(blocks)))
            self._batch_bytes += nbytes
            self._pending_records += 1
            self._pending_bytes += nbytes
            if self._batch_bytes >= self.threshold:
                self._seal_batch()
                self._cv.notify_all()
            return self.sequence

    def _wait_for_space(self) -> None:
        deadline = time.monotonic() + self.data_timeout
        while not self.can_send():
            if self.error is not None:
                raise DataTimeoutError(f"data sending failed: {self.error}")
            if self._thread is None or not self._thread.is_alive():
                raise DataTimeoutError("data sending is not active")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DataTimeoutError(
                    f"receiver did not keep up: send queue full ({self._pending_records} records) "
                    f"for {self.data_timeout:g} s"
                )
            self._cv.wait(remaining)

    def _seal_batch(self) -> None:
        self._ready.append((self._batch, self._batch_bytes))
        self._batch = []
        self._batch_bytes = 0

    def _next_batches(self) -> list[tuple[list[DataRecord], int]] | None:
        with self._cv:
            while True:
                if self._batch and (
                    self._stopping or time.monotonic() - self._batch_started >= IDLE_FLUSH_S
                ):
                    self._seal_batch()
                if self._ready:
                    batches = list(self._ready)
                    self._ready.clear()
                    return batches
                if self._stopping or self.error is not None:
                    return None
                self._cv.wait(IDLE_FLUSH_S)

    def _send_loop(self) -> None:
        while True:
            batches = self._next_batches()
            if batches is None:
                return
            for records, nbytes in batches:
                try:
                    frame = encode_data_frame(self.name, records)
                    self._send_cancellable(frame)
                except zmq.Again:
                    waited = f"a DATA message waited {self.data_timeout:g} s"
                    self._fail(DataTimeoutError(f"receiver did not keep up: {waited}"))
                    return
                except _Cancelled:
                    return
                except Exception as exc:
                    self._fail(exc)
                    return
                with self._cv:
                    self.records_sent += len(records)
                    self.bytes_sent += nbytes
                    self._pending_records -= len(records)
                    self._pending_bytes -= nbytes
                    self._cv.notify_all()

    def _send_cancellable(self, frame: bytes) -> None:
        """Send one frame, waiting up to ``data_timeout`` for room, but give up on close()."""
        deadline = time.monotonic() + self.data_timeout
        while True:
            try:
                self._sock.send(frame, zmq.NOBLOCK, copy=len(frame) < 65536)
                return
            except zmq.Again:
                if self._closing:
                    raise _Cancelled() from None
                if time.monotonic() >= deadline:
                    raise
                self._sock.poll(50, zmq.POLLOUT)

    def _fail(self, exc: BaseException) -> None:
        with self._cv:
            self.error = exc
            self._cv.notify_all()
        if self.on_error is not None:
            self.on_error(exc)

    def end_run(self, timeout: float) -> None:
        """Send everything queued, then stop the sender thread (raises if it cannot)."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise DataTimeoutError(f"could not send the queued data within {timeout:g} s")
        self._thread = None
        if self.error is not None:
            raise DataTimeoutError(f"data sending failed: {self.error}")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the sender thread (abandoning what is queued) and close the socket."""
        with self._cv:
            self._stopping = True
            self._closing = True
            self._cv.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
            if thread.is_alive():  # never close a socket another thread is using
                log.error("data sender thread did not stop; socket left open")
                return
        self._sock.close(linger=0)


class DataReceiver:
    """PULL sockets connected to transmitters, polled by the receiving thread."""

    def __init__(self, context: zmq.Context[Any], max_message_size: int = -1) -> None:
        self._context = context
        self._max = max_message_size
        self._sockets: dict[str, zmq.Socket[Any]] = {}
        self._poller = zmq.Poller()
        self._lock = threading.Lock()
        self._pending: deque[tuple[str, DiscoveredService | None]] = deque()
        self.bad_input = RateLimitedWarning(log)

    def connect(self, service: DiscoveredService) -> None:
        """Connect to a transmitter (thread-safe; applied in the receiving thread)."""
        with self._lock:
            self._pending.append((service.name.lower(), service))

    def disconnect(self, name: str) -> None:
        with self._lock:
            self._pending.append((name.lower(), None))

    def connected(self) -> list[str]:
        return list(self._sockets)

    def _apply_pending(self) -> None:
        with self._lock:
            changes = list(self._pending)
            self._pending.clear()
        for key, service in changes:
            old = self._sockets.pop(key, None)
            if old is not None:
                self._poller.unregister(old)
                old.close(linger=0)
            if service is not None:
                sock = self._context.socket(zmq.PULL)
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.RCVHWM, 64)
                if self._max > 0:
                    sock.setsockopt(zmq.MAXMSGSIZE, self._max)
                sock.connect(service.endpoint)
                self._sockets[key] = sock
                self._poller.register(sock, zmq.POLLIN)

    def poll(self, timeout_ms: int) -> list[tuple[CDTP2Message, int]]:
        """Receive what is available (waiting up to ``timeout_ms``): (message, frame bytes)."""
        self._apply_pending()
        if not self._sockets:
            time.sleep(timeout_ms / 1000)  # nothing to poll yet; discovery may add a socket
            return []
        result: list[tuple[CDTP2Message, int]] = []
        for sock, _ in self._poller.poll(timeout_ms):
            for _ in range(64):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                try:
                    message = CDTP2Message.decode([f.buffer for f in frames])
                except DecodeError as exc:
                    self.bad_input("malformed data message dropped: %s", exc)
                    continue
                result.append((message, sum(len(f) for f in frames)))
        return result

    def close(self) -> None:
        self._apply_pending()
        for sock in self._sockets.values():
            self._poller.unregister(sock)
            sock.close(linger=0)
        self._sockets.clear()
