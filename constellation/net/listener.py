"""I/O layer: the listening side of CMDP1 — logs, metrics and notifications of a whole group.

:class:`MonitoringListener` browses its group for MONITORING services, connects one SUB socket to
every one of them (served by its own :class:`~constellation.net.loop.EventLoop`), subscribes as
docs/protocols.md#subscriptions describes ("level ≥ X" is one subscription per level from X up
to CRITICAL; metrics by ``STAT/`` or ``STAT/<NAME>``; ``LOG?``/``STAT?`` for the topic lists)
and hands every decoded message to a callback. Malformed input is dropped with a rate-limited
warning. Opening or closing a listener never disturbs the satellites: they only notice
subscriptions come and go.

:class:`MetricStats` derives what does not travel on the wire: a rate for integer counters and a
running average for floating-point gauges.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import zmq

from constellation.errors import DecodeError
from constellation.net.discovery import (
    DiscoveredService,
    Discovery,
    DiscoveryEvent,
    ServiceId,
    make_discovery,
)
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.net.ratelimit import RateLimitedWarning
from constellation.net.sockets import DEFAULT_MAX_MESSAGE_SIZE
from constellation.net.subscriptions import PeerSubscriptions
from constellation.protocol.cmdp1 import (
    LOG_LEVELS,
    CMDP1Log,
    CMDP1Message,
    CMDP1Metric,
    CMDP1Notification,
    decode_cmdp1,
)
from constellation.protocol.common import to_datetime

__all__ = [
    "LOG_LEVELS",
    "MetricSample",
    "MetricStats",
    "MonitoringListener",
    "log_subscriptions",
    "metric_subscriptions",
]

log = logging.getLogger("constellation.net.listener")
_ids = itertools.count(1)

LogCallback = Callable[[CMDP1Log], None]
MetricCallback = Callable[[CMDP1Metric], None]
NotificationCallback = Callable[[CMDP1Notification], None]
PeerCallback = Callable[[str, bool], None]


def log_subscriptions(level: str | None, topics: Iterable[str] | None = None) -> list[str]:
    """Subscription topics for logs of ``level`` and above (``None``/``"OFF"``: no logs).

    With ``topics`` only those log topics (e.g. ``FSM``) are subscribed, at each level.
    """
    if level is None or level.upper() == "OFF":
        return []
    level = level.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"log level '{level}' is not one of {', '.join(LOG_LEVELS)} or OFF")
    levels = LOG_LEVELS[LOG_LEVELS.index(level) :]
    wanted = [t.upper() for t in topics or ()]
    if not wanted:
        return [f"LOG/{lv}" for lv in levels]
    return [f"LOG/{lv}/{t}" for lv in levels for t in wanted]


def metric_subscriptions(metrics: Iterable[str] | None) -> list[str]:
    """Subscription topics for metrics: ``None`` none, an empty list all, else each name."""
    if metrics is None:
        return []
    names = [m.upper() for m in metrics]
    return [f"STAT/{n}" for n in names] if names else ["STAT/"]


class MonitoringListener:
    """Receive CMDP1 logs, metrics and notifications from every satellite of ``group``.

    Callbacks run in the listener's loop thread and should return quickly. ``on_peer(name,
    connected)`` reports senders appearing and leaving. ``discovery`` is a backend name
    (``mdns``, ``chirp``, ``both``) or an existing :class:`Discovery` to share (not closed here).
    """

    def __init__(
        self,
        group: str,
        interfaces: str | Iterable[str] | None = None,
        *,
        discovery: str | Discovery = "mdns",
        level: str | None = "INFO",
        log_topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
        notifications: bool = True,
        on_log: LogCallback | None = None,
        on_metric: MetricCallback | None = None,
        on_notification: NotificationCallback | None = None,
        on_peer: PeerCallback | None = None,
        context: zmq.Context[Any] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.group = group
        self.name = f"Monitor.listener_{os.getpid()}_{next(_ids)}"
        # Bad arguments raise here, before anything is opened.
        log_topics = None if log_topics is None else list(log_topics)
        metrics = None if metrics is None else list(metrics)
        log_subscriptions(level, log_topics)
        if not isinstance(discovery, Discovery):
            names = [interfaces] if isinstance(interfaces, str) else interfaces
            scope = NetworkScope.from_interfaces(names)
        self.on_log = on_log
        self.on_metric = on_metric
        self.on_notification = on_notification
        self.on_peer = on_peer
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}  # lower name -> name, of every followed sender
        self._topics: set[str] = set()
        self._offered: dict[tuple[str, str], dict[str, str]] = {}  # (sender, kind) -> topics
        self._desired: set[str] = set()
        self._level: str | None = None
        self._log_topics: list[str] | None = None
        self._metrics: list[str] | None = None
        self._log_filter: frozenset[str] | None = None
        self._metric_filter: frozenset[str] | None = None
        self._bad_input = RateLimitedWarning(log)
        self.dropped = 0
        self._closed = False
        self._notifications = notifications

        self.loop = EventLoop(context or zmq.Context.instance(), f"listener-{group}")
        self.loop.start()
        self._subs = PeerSubscriptions(
            self.loop,
            self._on_frames,
            on_cut_short=self._cut_short,
            max_message_size=max_message_size,
        )
        self._configure(level, log_topics, metrics)

        if isinstance(discovery, Discovery):
            self._discovery, self._own_discovery = discovery, False
        else:
            try:
                self._discovery = make_discovery(discovery, group, self.name, scope)
            except BaseException:
                self._close_socket()
                raise
            self._own_discovery = True
        self._discovery.add_listener([ServiceId.MONITORING], self._on_service)
        self._discovery.request(ServiceId.MONITORING)

    # --- public API ---------------------------------------------------------------------------
    @property
    def senders(self) -> list[str]:
        """Names of the satellites this listener is connected to."""
        with self._lock:
            return sorted(self._names.values())

    @property
    def subscriptions(self) -> list[str]:
        """The topics currently subscribed."""
        with self._lock:
            return sorted(self._topics)

    def offered(self, sender: str, kind: str = "STAT") -> dict[str, str]:
        """The last ``LOG?``/``STAT?`` list of ``sender``: topic -> description."""
        with self._lock:
            return dict(self._offered.get((sender.lower(), kind.upper()), {}))

    def set_level(self, level: str | None, log_topics: Iterable[str] | None = None) -> None:
        """Change the log subscriptions (``None``/``"OFF"``: no logs)."""
        self._configure(level, log_topics, self._metrics)

    def set_metrics(self, metrics: Iterable[str] | None) -> None:
        """Change the metric subscriptions (``None`` none, empty list all, else these names)."""
        self._configure(self._level, self._log_topics, metrics)

    def close(self) -> None:
        """Disconnect from everybody and stop the loop (the satellites are not affected)."""
        if self._closed:
            return
        self._closed = True
        self._discovery.remove_listener(self._on_service)
        if self._own_discovery:
            self._discovery.close()
        self._close_socket()

    def _close_socket(self) -> None:
        with contextlib.suppress(TimeoutError):
            self.loop.run_sync(self._subs.close)
        self.loop.stop()

    def __enter__(self) -> MonitoringListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- subscriptions ------------------------------------------------------------------------
    def _notification_topics(self) -> list[str]:
        return ["LOG?", "STAT?"] if self._notifications else []

    def _configure(
        self, level: str | None, log_topics: Iterable[str] | None, metrics: Iterable[str] | None
    ) -> None:
        """Work out the wanted topics and exact-name filters, then (un)subscribe."""
        log_topics = None if log_topics is None else list(log_topics)
        metrics = None if metrics is None else list(metrics)
        logs = log_subscriptions(level, log_topics)
        stats = metric_subscriptions(metrics)
        self._level = level
        self._log_topics = None if log_topics is None else [t.upper() for t in log_topics]
        self._metrics = None if metrics is None else [m.upper() for m in metrics]
        self._log_filter = frozenset(self._log_topics) if self._log_topics else None
        self._metric_filter = frozenset(self._metrics) if self._metrics else None
        self._desired = {*logs, *stats, *self._notification_topics()}
        self.loop.run_sync(self._apply_subscriptions)

    def _apply_subscriptions(self) -> None:
        with self._lock:
            self._topics = set(self._desired)
        self._subs.set_topics(self._topics)

    # --- discovery (discovery thread) ---------------------------------------------------------
    def _on_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        if not self._closed:
            self.loop.call_soon(self._update_peer, event, service)

    def _update_peer(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        if self._closed:
            return
        key, endpoint = service.name.lower(), service.endpoint
        current = self._subs.endpoint(key)
        if event is DiscoveryEvent.ADDED:
            if current == endpoint:
                return  # already connected there: a reconnect would lose messages
            if not self._subs.connect(key, endpoint):
                return
            log.debug("listening to %s at %s", service.name, endpoint)
            with self._lock:
                self._names[key] = service.name
        else:
            if current != endpoint:
                return  # not (or no longer) connected there
            self._subs.drop(key)
            log.debug("stopped listening to %s at %s", service.name, endpoint)
            with self._lock:
                self._names.pop(key, None)
                for kind in ("LOG", "STAT"):
                    self._offered.pop((key, kind), None)
        if current is None or event is DiscoveryEvent.REMOVED:
            self._call(self.on_peer, service.name, event is DiscoveryEvent.ADDED)

    # --- input (loop thread) ------------------------------------------------------------------
    def _on_frames(self, key: str, frames: list[bytes]) -> None:
        try:
            message = decode_cmdp1(frames)
        except DecodeError as exc:
            self.dropped += 1
            self._bad_input("dropped a malformed CMDP1 message: %s", exc)
            return
        self._dispatch(message)

    def _cut_short(self, key: str) -> None:
        self.dropped += 1
        self._bad_input("a message of %s was cut short by a lost connection; reconnecting", key)

    def _dispatch(self, message: CMDP1Message) -> None:
        if isinstance(message, CMDP1Log):
            if self._log_filter is None or message.log_topic in self._log_filter:
                self._call(self.on_log, message)
        elif isinstance(message, CMDP1Metric):
            if self._metric_filter is None or message.name in self._metric_filter:
                self._call(self.on_metric, message)
        else:
            with self._lock:
                self._offered[(message.sender.lower(), message.kind)] = dict(message.topics)
            self._call(self.on_notification, message)

    @staticmethod
    def _call(callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("monitoring callback %r failed", callback)


@dataclass(frozen=True)
class MetricSample:
    """One metric value as received, with what the listener derived from the previous ones."""

    sender: str
    name: str
    value: Any
    unit: str
    time: datetime
    #: Change per second since the previous value, for integer counters that grew.
    rate: float | None = None
    #: Mean of the last values, for floating-point gauges.
    average: float | None = None

    @property
    def rate_unit(self) -> str:
        """Unit of :attr:`rate`: ``B/s`` for ``B``, ``Hz`` for plain counts."""
        return f"{self.unit}/s" if self.unit else "Hz"


class MetricStats:
    """Derive rates and running averages from successive values, per (sender, metric).

    Integer values are treated as counters: the rate is the increase per second between two
    samples, by the senders' timestamps (a decrease — a counter restarting with a new run —
    gives no rate). Floating-point values are gauges: the average covers the last ``window``
    values. Other values (str, bool, nil) are passed through.
    """

    def __init__(self, window: int = 10) -> None:
        self.window = window
        self._last: dict[tuple[str, str], tuple[float, int]] = {}
        self._values: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, message: CMDP1Metric) -> MetricSample:
        """Record ``message`` and return it with its derived rate or average."""
        key = (message.sender, message.name)
        when = to_datetime(message.time)
        value = message.value
        rate = average = None
        with self._lock:
            if isinstance(value, int) and not isinstance(value, bool):
                seconds = when.timestamp()
                last = self._last.get(key)
                self._last[key] = (seconds, value)
                if last is not None and seconds > last[0] and value >= last[1]:
                    rate = (value - last[1]) / (seconds - last[0])
            elif isinstance(value, float):
                values = self._values.setdefault(key, deque(maxlen=self.window))
                values.append(value)
                average = sum(values) / len(values)
        return MetricSample(message.sender, message.name, value, message.unit, when, rate, average)

    def forget(self, sender: str) -> None:
        """Drop the history of ``sender`` (it left the group)."""
        with self._lock:
            for table in (self._last, self._values):
                for key in [k for k in table if k[0] == sender]:
                    del table[key]
