"""I/O layer: the socket thread of a :class:`~constellation.live.streamer.Streamer`.

:class:`Intake` owns one XSUB socket per receiver endpoint (from the locator), keeps their
subscriptions in line with the followed senders, and moves every live message into the
streamer's bounded :class:`~constellation.live.buffer.LiveBuffer` — all a socket holds in one
batch under one lock, after which it lets messages gather for ``_COALESCE`` s. Only message
headers are decoded here. Twice a second it sends the subscriber's totals upstream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from constellation.errors import DecodeError
from constellation.live.buffer import BufferItem, LiveBuffer
from constellation.live.protocol import (
    LiveEndpoint,
    LiveHeader,
    encode_report,
    marker_topic,
    subscription_topic,
)

__all__ = ["Intake"]

_POLL_MS = 50
#: Messages the socket's ZeroMQ queue holds at most: its I/O thread keeps taking messages while
#: this process is starved of CPU for a while (a stall of ~1 s at 100k records/s is no loss).
_RCVHWM = 1000
#: Messages taken from one socket per wake-up at most.
_RECV_BATCH = 1000
# Plain ints: the enum members cost an enum operation per use on this hot path.
_EVENTS, _POLLIN, _RCVMORE = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.RCVMORE)
#: After a wake-up that found messages, the socket thread lets more arrive for this long (s):
#: a stream costs at most ~1000 wake-ups a second here and in ``read()``; one that brought
#: ``_BULK`` bytes or more in a wake-up (hundreds of MB/s) waits ``_COALESCE_BULK``, so that
#: the per-message costs are shared by more messages (latency stays a few ms at most).
_COALESCE = 0.001
_COALESCE_BULK = 0.004
_BULK = 256 * 1024
_REPORT_INTERVAL = 0.5

_Sockets = dict[zmq.Socket[Any], tuple[LiveEndpoint, list[bytes]]]


class Intake:
    """Sockets and socket thread of one subscriber; ``cv`` guards ``buffer`` and the flags."""

    def __init__(
        self,
        subscriber_id: str,
        buffer: LiveBuffer,
        codec: str,
        senders: set[str] | None,
        totals: Callable[[], tuple[int, int]],
    ) -> None:
        self.buffer = buffer
        self.cv = threading.Condition(threading.Lock())
        self.closed = False
        #: Messages received that were not live messages (dropped; the receiver stays fine).
        self.bad_messages = 0
        self._id = subscriber_id
        self._codec = codec
        self._lossless = buffer.policy == "block"
        self._senders = senders
        self._totals = totals  # (received, dropped) for the reports
        self._wanted: list[LiveEndpoint] = []  # found by the locator, for the thread
        self._resubscribe = False
        self._changes = 0  # bumped when endpoints or subscriptions change (the thread syncs)
        self._context: zmq.Context[Any] = zmq.Context.instance()
        self._thread = threading.Thread(target=self._run, name="live-streamer", daemon=True)
        self._thread.start()

    # --- any thread -------------------------------------------------------------------------
    def receivers(self) -> list[str]:
        with self.cv:
            return sorted({e.receiver for e in self._wanted})

    def found(self, endpoint: LiveEndpoint) -> None:
        with self.cv:
            self._wanted = [e for e in self._wanted if e.receiver != endpoint.receiver]
            self._wanted.append(endpoint)
            self._changes += 1

    def gone(self, receiver: str) -> None:
        with self.cv:
            self._wanted = [e for e in self._wanted if e.receiver != receiver]
            self._changes += 1

    def follow(self, senders: set[str] | None) -> None:
        """Subscribe to ``senders`` (lower-cased; None: every sender) from now on."""
        with self.cv:
            self._senders = senders
            self._resubscribe = True
            self._changes += 1

    def close(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # --- socket thread ----------------------------------------------------------------------
    def _topics(self) -> list[bytes]:
        senders = self._senders
        topics = [marker_topic(self._id)]
        if senders is None:
            topics.append(subscription_topic(self._codec, None))
        else:
            topics.extend(subscription_topic(self._codec, s) for s in sorted(senders))
        return topics

    def _run(self) -> None:
        sockets: _Sockets = {}
        poller = zmq.Poller()
        next_report = 0.0
        synced = -1
        try:
            while not self.closed:
                if synced != self._changes:
                    synced = self._changes  # read before syncing: a change meanwhile syncs again
                    self._sync_sockets(sockets, poller)
                if not sockets:  # zmq.Poller returns at once without sockets: wait instead
                    with self.cv:
                        if not self.closed:
                            self.cv.wait(_POLL_MS / 1000)
                    continue
                taken = 0
                for sock, _ in poller.poll(_POLL_MS):
                    taken += self._receive(sock, sockets[sock][0].receiver)
                if taken:  # let messages gather: one wake-up takes many
                    time.sleep(_COALESCE_BULK if taken >= _BULK else _COALESCE)
                now = time.monotonic()
                if now >= next_report:
                    next_report = now + _REPORT_INTERVAL
                    self._report(sockets)
        finally:
            for sock in sockets:
                sock.close(linger=0)

    def _sync_sockets(self, sockets: _Sockets, poller: Any) -> None:
        with self.cv:
            wanted = list(self._wanted)
            resubscribe, self._resubscribe = self._resubscribe, False
            topics = self._topics()
        for sock, (endpoint, _) in list(sockets.items()):
            if endpoint not in wanted:
                poller.unregister(sock)
                sock.close(linger=0)
                del sockets[sock]
        current = {e for e, _ in sockets.values()}
        for endpoint in wanted:
            if endpoint not in current:
                sock = self._context.socket(zmq.XSUB)
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.RCVHWM, _RCVHWM)
                sock.connect(endpoint.lossless if self._lossless else endpoint.lossy)
                for topic in topics:
                    sock.send(b"\x01" + topic)
                sockets[sock] = (endpoint, topics)
                poller.register(sock, zmq.POLLIN)
        if resubscribe:
            for sock, (endpoint, old) in list(sockets.items()):
                for topic in set(topics) - set(old):
                    sock.send(b"\x01" + topic)
                for topic in set(old) - set(topics):
                    sock.send(b"\x00" + topic)
                sockets[sock] = (endpoint, topics)

    def _receive(self, sock: zmq.Socket[Any], receiver: str) -> int:
        """Take what the socket holds (up to a bound), then buffer it under one lock; returns
        the payload bytes taken."""
        items: list[BufferItem] = []
        getsockopt = sock.getsockopt
        nbytes, most = 0, self.buffer.max_bytes  # never hold more than the buffer here
        while len(items) < _RECV_BATCH and nbytes < most and getsockopt(_EVENTS) & _POLLIN:
            sock.recv()  # the topic: the header names the sender too
            item = _item(sock, receiver)
            if item is None:
                self.bad_messages += 1
            else:
                items.append(item)
                nbytes += item.nbytes
        if not items:
            return 0
        with self.cv:
            buffer = self.buffer
            for item in items:
                while (wait := buffer.wait_time(item, time.monotonic())) > 0:
                    if self.closed:
                        return 0
                    self.cv.notify_all()  # a block or drop-oldest wait for read()
                    self.cv.wait(min(wait, 0.1))
                buffer.put(item)
            self.cv.notify_all()
        return nbytes

    def _report(self, sockets: _Sockets) -> None:
        report = encode_report(self._id, *self._totals())
        for sock in sockets:
            try:
                sock.send(report, zmq.NOBLOCK)
            except zmq.Again:
                pass


def _item(sock: zmq.Socket[Any], receiver: str) -> BufferItem | None:
    """The rest of a live message whose topic was just received; None if malformed."""
    more = sock.getsockopt
    header_raw = sock.recv() if more(_RCVMORE) else None
    payload = sock.recv(copy=False) if more(_RCVMORE) else None
    extra = False
    while more(_RCVMORE):
        sock.recv()
        extra = True
    if header_raw is None or payload is None or extra:
        return None
    try:
        header = LiveHeader.decode(header_raw)
    except DecodeError:
        return None
    buffer = payload.buffer
    return BufferItem(header.kind, header.sender.lower(), len(buffer), (header, buffer, receiver))
