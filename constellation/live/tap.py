"""I/O layer: the live socket of a receiver — publish what it accepted to any number of readers.

Two ZeroMQ XPUB sockets: the *lossy* one (a slow subscriber loses messages, the receiver never
waits) and the *lossless* one (``XPUB_NODROP``: a full subscriber queue makes the publishing
thread wait, so back-pressure reaches the writer and the transmitters). Each message is sent
once per codec somebody subscribed to; the payload is the received CDTP2 frame itself (a
``zmq.Frame`` is shared, not copied). With no subscriber, :meth:`LiveTap.publish` only looks at
a flag. The BORs of the current run are kept and sent again, flagged ``replay``, to every new
subscription, so a late joiner gets them first. All socket work happens under one lock, so
the tap may be used from the receive thread and from a writer's disk thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from constellation.errors import DecodeError
from constellation.live.protocol import (
    MARKER,
    LiveHeader,
    codec_of_topic,
    compress,
    decode_report,
    topic_for,
)
from constellation.net.interfaces import NetworkScope
from constellation.net.ratelimit import RateLimitedWarning
from constellation.net.sockets import bind_in_scope

__all__ = ["LIVE_HWM", "LiveTap"]

log = logging.getLogger("constellation.live")

#: Messages queued per subscriber on the receiver side before ZeroMQ drops (lossy socket) or
#: waits (lossless socket). A writer that fell behind publishes what it then stores at once (its
#: disk queue holds up to 16 MiB, 128 messages of 128 KiB): a queue of this many takes such a
#: burst whole. The payloads are the received frames, shared: with 128 KiB messages a stalled
#: subscriber keeps at most 16 MiB of them alive.
LIVE_HWM = 128
#: Upstream messages (subscriptions, reports) larger than this drop the subscriber's connection.
_MAX_UPSTREAM = 64 * 1024
#: Distinct subscription topics remembered per socket; more are ignored (with a warning).
_MAX_TOPICS = 100_000
_MAX_REPORTERS = 1000
#: Subscriptions are looked at no more often than this (s) by ``publish``.
_SERVICE_INTERVAL = 0.005
#: Between runs, the last run's EORs are sent again (``replay``) this often (s): a reader
#: whose queue was full when an EOR went out still learns the run's record count.
EOR_RESEND_INTERVAL = 1.0


@dataclass
class _Subscriptions:
    """Subscription counts of one XPUB socket."""

    topics: dict[bytes, int] = field(default_factory=dict)
    codecs: tuple[str, ...] = ()
    markers: int = 0
    _wanted: dict[tuple[str, bytes], bool] = field(default_factory=dict)
    _codec_topics: dict[str, int] = field(default_factory=dict)

    def change(self, topic: bytes, delta: int) -> bool:
        """Apply one (un)subscription; returns False when the topic table is full."""
        old = self.topics.get(topic, 0)
        new = max(0, old + delta)
        if not old and new and len(self.topics) >= _MAX_TOPICS:
            return False
        if new:
            self.topics[topic] = new
        else:
            self.topics.pop(topic, None)
        if topic[:1] == MARKER:
            self.markers += new - old
        else:
            codec = codec_of_topic(topic)
            if codec is not None and bool(old) != bool(new):
                count = self._codec_topics.get(codec, 0) + (1 if new else -1)
                self._codec_topics[codec] = count
                self.codecs = tuple(c for c, n in sorted(self._codec_topics.items()) if n > 0)
        self._wanted.clear()
        return True

    def wanted(self, codec: str, topic: bytes) -> bool:
        """Whether a subscription of ``codec`` matches ``topic`` (cached until a change)."""
        key = (codec, topic)
        found = self._wanted.get(key)
        if found is None:
            found = any(topic.startswith(t) for t in self.topics if codec_of_topic(t) == codec)
            if len(self._wanted) < 4096:
                self._wanted[key] = found
        return found


class LiveTap:
    """The publishing side of the live service of one receiver."""

    def __init__(
        self,
        context: zmq.Context[Any],
        scope: NetworkScope,
        name: str,
        port: int = 0,
        hwm: int = LIVE_HWM,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._closing = False
        self._bad_input = RateLimitedWarning(log)
        self._lossy = self._socket(context, hwm, nodrop=False)
        self._lossless = self._socket(context, hwm, nodrop=True)
        self._subs = {self._lossy: _Subscriptions(), self._lossless: _Subscriptions()}
        self.port = bind_in_scope(self._lossy, scope, port)
        self.lossless_port = bind_in_scope(self._lossless, scope, 0)
        self._bors: dict[str, tuple[str, bytes, LiveHeader]] = {}  # sender -> topic-less BOR
        self._eors: dict[str, tuple[str, bytes, LiveHeader]] = {}  # the last run's, to resend
        self._next_eor_resend = 0.0
        self._reports: dict[str, int] = {}
        self._next_service = 0.0
        self.active = False
        #: Live messages published (per codec and socket) and records dropped while closing.
        self.published = 0

    @staticmethod
    def _socket(context: zmq.Context[Any], hwm: int, nodrop: bool) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = context.socket(zmq.XPUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, _MAX_UPSTREAM)
        sock.setsockopt(zmq.XPUB_VERBOSER, 1)  # every (un)subscription, also on disconnect
        if nodrop:
            sock.setsockopt(zmq.XPUB_NODROP, 1)
        return sock

    # --- what the receiver's metrics and commands read -----------------------------------------
    @property
    def subscribers(self) -> int:
        """Subscribers connected now (each announces itself with a marker subscription)."""
        return sum(s.markers for s in self._subs.values())

    @property
    def reported_drops(self) -> int:
        """Records the subscribers reported as lost (the latest report of each)."""
        return sum(self._reports.values())

    # --- publishing (any thread) --------------------------------------------------------------
    def start_run(self) -> None:
        """A new run: forget the BORs of the previous one."""
        with self._lock:
            self._bors.clear()
            self._eors.clear()

    def publish(
        self,
        kind: str,
        sender: str,
        run_id: str,
        payload: Any,
        first: int = 0,
        count: int = 0,
        index: int | None = None,
    ) -> None:
        """Publish one accepted message (``payload``: the CDTP2 frame as received)."""
        if kind != "DATA":
            self._control(kind, sender, run_id, payload)
            return
        if not self.active and self._clock() < self._next_service:
            return  # nobody listens: the hot path ends here
        with self._lock:
            self._service()
            if not self.active or self._closing:
                return
            header = LiveHeader(
                kind, sender, run_id, first, count, index, size=len(payload), time=self._clock()
            )
            self._send_all(sender, header, payload)

    def _control(self, kind: str, sender: str, run_id: str, payload: Any) -> None:
        raw = bytes(payload)
        header = LiveHeader(kind, sender, run_id, size=len(raw), time=self._clock())
        with self._lock:
            if kind == "BOR":
                self._bors[sender.lower()] = (sender, raw, header)
                self._eors.pop(sender.lower(), None)
            else:
                self._bors.pop(sender.lower(), None)
                self._eors[sender.lower()] = (sender, raw, header)
                self._next_eor_resend = self._clock() + EOR_RESEND_INTERVAL
            self._service()
            if self.active and not self._closing:
                self._send_all(sender, header, raw)

    def service(self) -> None:
        """Read new subscriptions and reports (call now and then, e.g. from the receive loop)."""
        with self._lock:
            self._service()

    def close(self) -> None:
        self._closing = True  # a publisher waiting on the lossless socket gives up
        with self._lock:
            for sock in self._subs:
                sock.close(linger=0)
            self.active = False

    # --- under the lock -------------------------------------------------------------------------
    def _send_all(self, sender: str, header: LiveHeader, payload: Any) -> None:
        for sock, subs in self._subs.items():
            for codec in subs.codecs:
                topic = topic_for(codec, sender)
                if not subs.wanted(codec, topic):
                    continue
                self._send(sock, topic, header, payload, codec)

    def _send(
        self, sock: zmq.Socket[Any], topic: bytes, header: LiveHeader, payload: Any, codec: str
    ) -> None:
        if codec != "none":
            payload = compress(codec, payload.bytes if isinstance(payload, zmq.Frame) else payload)
            header = _with_codec(header, codec)
        parts = [topic, header.encode(), payload]
        if sock is self._lossy:
            sock.send_multipart(parts, zmq.NOBLOCK, copy=False)  # XPUB drops, never waits
            self.published += 1
            return
        while not self._closing:  # lossless: wait for room, however long it takes
            try:
                sock.send_multipart(parts, zmq.NOBLOCK, copy=False)
                self.published += 1
                return
            except zmq.Again:
                sock.poll(100, zmq.POLLOUT)
                self._drain(sock)  # a subscriber that left frees the queue
                if not self._subs[sock].wanted(codec, topic):
                    return

    def _service(self) -> None:
        if self._closing:
            return
        self._next_service = self._clock() + _SERVICE_INTERVAL
        for sock in self._subs:
            self._drain(sock)
        self.active = any(s.codecs for s in self._subs.values())
        now = self._clock()
        if self._eors and not self._bors and self.active and now >= self._next_eor_resend:
            self._next_eor_resend = now + EOR_RESEND_INTERVAL
            for sender, raw, header in list(self._eors.values()):
                self._send_all(sender, _replayed(header), raw)

    def _drain(self, sock: zmq.Socket[Any]) -> None:
        subs = self._subs[sock]
        while int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 1 or not frames[0]:
                self._bad_input("unexpected %d-frame message on the live socket", len(frames))
                continue
            raw = frames[0]
            kind, topic = raw[:1], raw[1:]
            if kind in (b"\x00", b"\x01"):
                if not subs.change(topic, 1 if kind == b"\x01" else -1):
                    self._bad_input("too many live subscriptions: %r ignored", topic[:40])
                elif kind == b"\x01":
                    self._replay_bors(sock, topic)
            else:
                self._report(raw)

    def _report(self, raw: bytes) -> None:
        try:
            ident, _received, dropped = decode_report(raw)
        except DecodeError as exc:
            self._bad_input("garbage on the live socket dropped: %s", exc)
            return
        if ident in self._reports or len(self._reports) < _MAX_REPORTERS:
            self._reports[ident] = dropped

    def _replay_bors(self, sock: zmq.Socket[Any], subscription: bytes) -> None:
        codec = codec_of_topic(subscription)
        if codec is None:
            return
        for sender, raw, header in list(self._bors.values()):
            topic = topic_for(codec, sender)
            if topic.startswith(subscription):
                replay = LiveHeader(
                    "BOR", sender, header.run_id, size=len(raw), replay=True, time=self._clock()
                )
                self._send(sock, topic, replay, raw, codec)


def _replayed(header: LiveHeader) -> LiveHeader:
    return header._replace(replay=True)


def _with_codec(header: LiveHeader, codec: str) -> LiveHeader:
    return header._replace(codec=codec)
