"""I/O layer: CMDP1 publishing of logs and metrics on an XPUB socket.

Messages are built only for topics somebody subscribed to (ZeroMQ prefix semantics). A
subscription to ``LOG?`` or ``STAT?`` is answered with a notification listing the known log
topics or metrics. :class:`CMDPLogHandler` forwards Python ``logging`` records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import zmq

from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.net.ratelimit import RateLimitedWarning
from constellation.net.sockets import DEFAULT_MAX_MESSAGE_SIZE, bind_in_scope
from constellation.protocol.cmdp1 import CMDP1Log, CMDP1Metric, CMDP1Notification

__all__ = ["STATUS", "TRACE", "CMDPLogHandler", "MonitoringPublisher", "wire_level"]

log = logging.getLogger("constellation.net.cmdp")

#: (Un)subscription messages read per wake-up: a flood cannot starve timers (heartbeats).
_SUBSCRIPTION_BATCH = 256

#: Extra Python log levels matching the CMDP level names.
TRACE = 5
STATUS = 35
logging.addLevelName(TRACE, "TRACE")
logging.addLevelName(STATUS, "STATUS")


def wire_level(levelno: int) -> str:
    """CMDP level name for a Python logging level (ERROR travels as CRITICAL)."""
    if levelno >= logging.ERROR:
        return "CRITICAL"
    if levelno >= STATUS:
        return "STATUS"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    if levelno >= logging.DEBUG:
        return "DEBUG"
    return "TRACE"


class MonitoringPublisher:
    """XPUB publisher for CMDP1 messages, aware of its subscriptions."""

    def __init__(
        self,
        loop: EventLoop,
        scope: NetworkScope,
        own_name: str,
        port: int = 0,
        log_topics: Callable[[], dict[str, str]] = dict,
        metric_topics: Callable[[], dict[str, str]] = dict,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._loop = loop
        self.name = own_name
        self._log_topics = log_topics
        self._metric_topics = metric_topics
        self._subscriptions: set[bytes] = set()
        self._snapshot: tuple[bytes, ...] = ()
        self._bad_input = RateLimitedWarning(log)
        self._sock: zmq.Socket[Any] = loop.context.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_size)
        self._sock.setsockopt(zmq.SNDHWM, 10000)
        # Verbose: every new subscriber's LOG?/STAT? reaches us and gets its notification;
        # an unsubscription is still only passed on when the last subscriber of a topic left.
        self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        # Only a message's first frame may be an (un)subscription: junk from a raw XSUB peer
        # cannot subscribe with its later frames.
        self._sock.setsockopt(zmq.ONLY_FIRST_SUBSCRIBE, 1)
        self.port = bind_in_scope(self._sock, scope, port)
        loop.add_socket(self._sock, self._on_subscription)

    def wants(self, topic: str) -> bool:
        """True when a subscriber would receive ``topic`` (cheap; callable from any thread)."""
        raw = topic.encode()
        return any(raw.startswith(prefix) for prefix in self._snapshot)

    def publish(self, message: CMDP1Log | CMDP1Metric | CMDP1Notification) -> None:
        """Send ``message`` from the loop thread (thread-safe).

        Monitoring traffic is the first to go when the loop lags: the call is dropped (and
        counted in the loop's ``dropped_calls``) once the loop's droppable queue is full.
        """
        frames = message.encode()
        self._loop.call_soon_droppable(self._send, frames)

    def notify(self, kind: str) -> None:
        """Publish the LOG?/STAT? notification if someone listens for it."""
        if self.wants(f"{kind}?"):
            which: Literal["LOG", "STAT"] = "LOG" if kind == "LOG" else "STAT"
            topics = self._log_topics() if which == "LOG" else self._metric_topics()
            self.publish(CMDP1Notification(self.name, which, dict(topics)))

    def _send(self, frames: list[bytes]) -> None:
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass  # a slow listener loses monitoring data, never the satellite

    def _on_subscription(self) -> None:
        # Bounded: the poll is level-triggered, so what is left is read in the next iteration.
        for _ in range(_SUBSCRIPTION_BATCH):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            frame = frames[0]
            kind, topic = frame[:1], frame[1:]
            if len(frames) != 1 or kind not in (b"\x00", b"\x01"):
                # An XSUB peer may send anything; only 1-frame (un)subscriptions are meaningful.
                size = sum(len(f) for f in frames)
                self._bad_input("unexpected %d-byte message on monitoring socket", size)
            elif kind == b"\x01":
                self._subscriptions.add(topic)
                self._snapshot = tuple(self._subscriptions)
                if topic in (b"LOG?", b"STAT?"):
                    self.notify(topic[:-1].decode())
            else:
                self._subscriptions.discard(topic)
                self._snapshot = tuple(self._subscriptions)

    def close(self) -> None:
        def shutdown() -> None:
            self._loop.remove_socket(self._sock)
            self._sock.close(linger=0)

        self._loop.run_sync(shutdown)


class CMDPLogHandler(logging.Handler):
    """Forward log records to a :class:`MonitoringPublisher` as ``LOG/<LEVEL>/<TOPIC>``."""

    def __init__(self, publisher: MonitoringPublisher, root: str, default_topic: str) -> None:
        super().__init__(TRACE)
        self._publisher = publisher
        self._root = root
        self._default_topic = default_topic.upper()
        self._guard = threading.local()

    def topic_for(self, record: logging.LogRecord) -> str:
        """``<root>.fsm`` -> ``FSM``; ``<root>`` -> the default topic; others -> last part."""
        name = record.name
        if name == self._root:
            return self._default_topic
        if name.startswith(self._root + "."):
            tail = name[len(self._root) + 1 :].split(".", 1)[0]
        else:
            tail = name.rsplit(".", 1)[-1]
        return tail.upper() if tail.isidentifier() else self._default_topic

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._guard, "busy", False):
            return
        level = wire_level(record.levelno)
        topic = self.topic_for(record)
        if not self._publisher.wants(f"LOG/{level}/{topic}"):
            return
        self._guard.busy = True
        try:
            tags: dict[str, Any] = {
                "filename": record.filename,
                "lineno": record.lineno,
                "funcName": record.funcName,
                "thread": record.thread or 0,
                "threadName": record.threadName or "",
            }
            if record.exc_info:
                tags["traceback"] = logging.Formatter().formatException(record.exc_info)
            message = CMDP1Log(self._publisher.name, level, record.getMessage(), topic, tags)
            self._publisher.publish(message)
        except Exception:
            self.handleError(record)
        finally:
            self._guard.busy = False
