"""I/O layer: the batching CDTP2 PUSH sender of a transmitter.

:class:`DataSender` is a :class:`~constellation.net.send_queue.SendQueue` (records are collected
in the producer's thread into batches; see there) with a PUSH socket and a sender thread of its
own, which encodes the sealed batches and sends them as DATA messages; everything queued is sent
before the run ends. A DATA message the receiver does not take within ``data_timeout`` fails the
sender with :class:`DataTimeoutError` — records are never dropped silently. Frames of 64 KiB and
more (and the finished frames of ``reserve_record``) are handed to ZeroMQ without a copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import zmq

from constellation.errors import DataTimeoutError
from constellation.net.interfaces import NetworkScope
from constellation.net.process_tuning import gc_relief
from constellation.net.send_queue import IDLE_FLUSH_S, MAX_QUEUED_BYTES, SendQueue
from constellation.net.sockets import bind_in_scope
from constellation.protocol.cdtp2 import CDTP2Message, CDTPType, DataRecord, encode_data_frame

__all__ = ["DATA_HWM", "IDLE_FLUSH_S", "MAX_QUEUED_BYTES", "DataSender"]

log = logging.getLogger("constellation.net.cdtp")

#: ZeroMQ high-water mark (messages) of the data sockets.
DATA_HWM = 64
#: Frames of at least this size are handed to ZeroMQ without a copy.
_ZERO_COPY_BYTES = 64 * 1024
_monotonic = time.monotonic


class _Cancelled(Exception):
    """The sender thread was told to give up while a send waited for room."""


class DataSender(SendQueue):
    """A PUSH socket with a bounded, batching send queue and a sender thread.

    Thread roles: one producer calls :meth:`add` or :meth:`add_frame` (the satellite's
    ``do_run``); the sender thread
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
        self._thread: threading.Thread | None = None
        self._closed = False
        super().__init__()

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

    # --- sender thread --------------------------------------------------------------------------
    def _send_loop(self) -> None:
        gc_relief.acquire()
        try:
            self._send_batches()
        finally:
            gc_relief.release()

    def _send_batches(self) -> None:
        while True:
            batch = self.next_batch()
            if batch is None:
                return
            records, count, nbytes = batch
            try:
                if type(records) is memoryview:  # a reserved record, finished in place
                    frame: bytes | memoryview = records
                else:  # plain (sequence, tags, blocks) tuples pack exactly like DataRecords
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
            self.batch_sent(count, nbytes, len(frame))

    def _send_frame(self, frame: bytes | memoryview) -> None:
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
