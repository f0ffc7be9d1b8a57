"""I/O layer: the CDTP2 PULL sockets of a receiver, polled by its receiving thread.

:class:`DataReceiver` holds one PULL socket per transmitter endpoint and yields the decoded
messages one at a time, taking one message from each ready socket in turn so that a busy
transmitter cannot starve the others. The frames of the message just yielded stay available
in :attr:`DataReceiver.last_frames` (the live service forwards them unchanged).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import zmq

from constellation.errors import DecodeError
from constellation.net.data_sender import DATA_HWM
from constellation.net.discovery import DiscoveredService
from constellation.net.ratelimit import RateLimitedWarning
from constellation.protocol.cdtp2 import CDTP2Message, decode_data_frame
from constellation.protocol.cdtp2_uniform import UniformMessage, decode_uniform

__all__ = ["DataReceiver"]

log = logging.getLogger("constellation.net.cdtp")

#: One poll of the receiver returns at most this many frame bytes (bounds the memory held).
_POLL_BYTES = 16 * 1024 * 1024


class DataReceiver:
    """PULL sockets connected to transmitters, polled by the receiving thread.

    One socket per data endpoint: a transmitter that reappears elsewhere gets a new socket and
    the old one stays open until :meth:`close` or :meth:`disconnect`, so nothing it queued is
    lost. :meth:`connect` and :meth:`disconnect` may be called from any thread; the sockets are
    created, polled and closed only in the thread that calls :meth:`poll` and :meth:`close`.
    """

    def __init__(self, context: zmq.Context[Any], max_message_size: int = -1) -> None:
        self._context = context
        self._max = max_message_size
        self._sockets: dict[str, zmq.Socket[Any]] = {}  # by endpoint
        self._names: dict[str, str] = {}  # endpoint -> lower-cased transmitter name
        self._poller = zmq.Poller()
        self._changed = threading.Condition(threading.Lock())
        self._pending: deque[tuple[str, DiscoveredService | None]] = deque()
        self._connected: list[str] = []  # snapshot for other threads (see connected())
        self.bad_input = RateLimitedWarning(log)
        #: The received frames of the message :meth:`poll` yielded last (``zmq.Frame``s).
        self.last_frames: list[Any] = []
        #: Yield uniform DATA batches as :class:`UniformMessage` (no per-record objects).
        self.uniform = False

    def connect(self, service: DiscoveredService) -> None:
        """Connect to a transmitter's data service (applied at the next :meth:`poll`)."""
        with self._changed:
            self._pending.append((service.name.lower(), service))
            self._changed.notify_all()

    def disconnect(self, name: str) -> None:
        """Close the sockets to transmitter ``name`` (applied at the next :meth:`poll`)."""
        with self._changed:
            self._pending.append((name.lower(), None))
            self._changed.notify_all()

    def connected(self) -> list[str]:
        """Lower-cased names of the transmitters with an open socket (any thread).

        Reads a snapshot replaced by the polling thread, never the dict that thread mutates.
        """
        return list(self._connected)

    def _snapshot(self) -> None:
        self._connected = sorted(set(self._names.values()))

    def _apply_pending(self) -> None:
        if not self._pending:
            return
        with self._changed:
            changes = list(self._pending)
            self._pending.clear()
        for name, service in changes:
            if service is None:
                for endpoint in [e for e, n in self._names.items() if n == name]:
                    self._close_socket(endpoint)
            elif service.endpoint not in self._sockets:
                self._open_socket(name, service.endpoint)

    def _open_socket(self, name: str, endpoint: str) -> None:
        sock = self._context.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, DATA_HWM)
        if self._max > 0:
            sock.setsockopt(zmq.MAXMSGSIZE, self._max)
        sock.connect(endpoint)
        self._sockets[endpoint] = sock
        self._names[endpoint] = name
        self._poller.register(sock, zmq.POLLIN)
        self._snapshot()
        log.debug("data socket connected to %s at %s", name, endpoint)

    def _close_socket(self, endpoint: str) -> None:
        sock = self._sockets.pop(endpoint)
        self._names.pop(endpoint, None)
        self._poller.unregister(sock)
        sock.close(linger=0)
        self._snapshot()

    def poll(self, timeout_ms: int) -> Iterator[tuple[CDTP2Message | UniformMessage, int]]:
        """Messages as they are received, waiting up to ``timeout_ms`` for the first one.

        Yields (message, frame bytes) one at a time, so that only the message being handled
        is held in memory, and stops after about :data:`_POLL_BYTES` so the caller can look
        at its stop flag. Malformed messages are dropped with a rate-limited warning. Large
        blocks are zero-copy views of the received frame (``decode_data_frame(share_blocks)``).
        With :attr:`uniform`, DATA messages of one record layout come as
        :class:`~constellation.protocol.cdtp2_uniform.UniformMessage` (blocks: frame views).
        """
        self._apply_pending()
        if not self._sockets:
            with self._changed:
                if not self._pending:
                    self._changed.wait(timeout_ms / 1000)
            return
        budget = _POLL_BYTES
        ready = [sock for sock, _ in self._poller.poll(timeout_ms)]
        while ready and budget > 0:  # round robin: one message per ready socket per turn
            still = []
            for sock in ready:
                try:
                    frame = sock.recv(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    continue
                still.append(sock)
                frames = [frame]
                size = len(frame)
                while frame.more:  # not CDTP2 (one frame), rejected by the decoder
                    frame = sock.recv(copy=False)
                    frames.append(frame)
                    size += len(frame)
                budget -= size
                try:
                    message = self._decode(frames)
                except DecodeError as exc:
                    self.bad_input("malformed data message dropped: %s", exc)
                    continue
                self.last_frames = frames
                yield message, size
                if budget <= 0:
                    break
            ready = still

    def _decode(self, frames: list[Any]) -> CDTP2Message | UniformMessage:
        if len(frames) != 1:
            return CDTP2Message.decode([f.buffer for f in frames])
        if self.uniform:
            uniform = decode_uniform(frames[0].buffer)
            if uniform is not None:
                return uniform
        return decode_data_frame(frames[0].buffer, share_blocks=True)

    def close(self) -> None:
        """Close every socket (call from the polling thread, or after it finished)."""
        self._apply_pending()
        for endpoint in list(self._sockets):
            self._close_socket(endpoint)
