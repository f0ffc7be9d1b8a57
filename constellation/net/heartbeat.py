"""I/O layer: CHP1 heartbeats — the XPUB sender and the SUB receiver feeding a tracker.

The sender publishes state, role flags and the interval to the next beat; it counts its
subscribers to scale the interval and sends an extra beat ("extrasystole") on every state
change. The receiver connects to every discovered heartbeat service of the group, decodes beats
and feeds the pure :class:`~constellation.core.heartbeat_tracker.HeartbeatTracker`; the events it
returns are handed to a callback in the loop thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from constellation.core.heartbeat_tracker import HeartbeatTracker, PeerEvent
from constellation.core.roles import heartbeat_interval
from constellation.errors import DecodeError
from constellation.net.discovery import DiscoveredService
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop, TimerHandle
from constellation.net.ratelimit import RateLimitedWarning
from constellation.net.sockets import DEFAULT_MAX_MESSAGE_SIZE, bind_in_scope
from constellation.protocol.chp1 import CHP1Message, CHPFlags

__all__ = ["HeartbeatReceiver", "HeartbeatSender", "HeartbeatState", "HeartbeatTiming"]

log = logging.getLogger("constellation.net.chp")


@dataclass(frozen=True)
class HeartbeatTiming:
    """Timing constants; tests shrink them with ``CONSTELLATION_HEARTBEAT_SCALE``."""

    scale: float = 1.0
    lives: int = 3

    @classmethod
    def from_env(cls) -> HeartbeatTiming:
        return cls(scale=float(os.environ.get("CONSTELLATION_HEARTBEAT_SCALE", "1.0")))

    def interval(self, subscribers: int, max_interval_s: float) -> float:
        return heartbeat_interval(subscribers, max_interval_s) * self.scale

    @property
    def check_period(self) -> float:
        return min(0.3, 0.2 * self.scale)

    @property
    def initial_interval(self) -> float:
        return 2.0 * self.scale


@dataclass(frozen=True)
class HeartbeatState:
    """What a beat reports: state code, role flags and status text."""

    state: int
    flags: int
    status: str


class HeartbeatSender:
    """Publish heartbeats on an XPUB socket (served by the event loop)."""

    def __init__(
        self,
        loop: EventLoop,
        scope: NetworkScope,
        own_name: str,
        current: Callable[[], HeartbeatState],
        port: int = 0,
        max_interval_s: float = 30.0,
        timing: HeartbeatTiming | None = None,
    ) -> None:
        self._loop = loop
        self._name = own_name
        self._current = current
        self.max_interval_s = max_interval_s
        self.timing = timing or HeartbeatTiming.from_env()
        self.subscribers = 0
        self._last_status: str | None = None
        self._timer: TimerHandle | None = None
        self._bad_input = RateLimitedWarning(log)
        self._sock: zmq.Socket[Any] = loop.context.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        self._sock.setsockopt(zmq.MAXMSGSIZE, DEFAULT_MAX_MESSAGE_SIZE)
        self._sock.setsockopt(zmq.SNDHWM, 100)
        self.port = bind_in_scope(self._sock, scope, port)
        loop.add_socket(self._sock, self._on_subscription)
        loop.call_soon(self._beat)

    @property
    def interval(self) -> float:
        return self.timing.interval(self.subscribers, self.max_interval_s)

    def extrasystole(self) -> None:
        """Send an out-of-schedule beat now (thread-safe); used on every state change."""
        self._loop.call_soon(self._beat, True)

    def _on_subscription(self) -> None:
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01":
                self.subscribers += 1
            elif frame[:1] == b"\x00":
                self.subscribers = max(0, self.subscribers - 1)
            else:
                self._bad_input(
                    "unexpected %d-byte message on heartbeat socket dropped", len(frame)
                )

    def _beat(self, extrasystole: bool = False) -> None:
        now = self._current()
        interval = self.interval
        flags = now.flags | (CHPFlags.IS_EXTRASYSTOLE if extrasystole else 0)
        status: str | None = None
        if extrasystole or now.status != self._last_status:
            status = now.status
            self._last_status = now.status
        msg = CHP1Message(
            self._name, now.state, int(flags), min(65535, int(interval * 1000)), status
        )
        try:
            self._sock.send_multipart(msg.encode(), zmq.NOBLOCK)
        except zmq.Again:
            pass  # no subscriber can take it; the next beat goes out on schedule
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(0.8 * interval, self._beat)

    def close(self) -> None:
        def shutdown() -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._loop.remove_socket(self._sock)
            self._sock.close(linger=0)

        self._loop.run_sync(shutdown)


class HeartbeatReceiver:
    """Subscribe to the heartbeats of every discovered peer and track their lives."""

    def __init__(
        self,
        loop: EventLoop,
        own_name: str,
        on_events: Callable[[list[PeerEvent]], None],
        timing: HeartbeatTiming | None = None,
    ) -> None:
        self._loop = loop
        self._own = own_name.lower()
        self._on_events = on_events
        self.timing = timing or HeartbeatTiming.from_env()
        self.tracker = HeartbeatTracker(
            lives=self.timing.lives, initial_interval_s=self.timing.initial_interval
        )
        self._endpoints: dict[str, str] = {}
        self._bad_input = RateLimitedWarning(log)
        self._sock: zmq.Socket[Any] = loop.context.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, DEFAULT_MAX_MESSAGE_SIZE)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        loop.add_socket(self._sock, self._on_readable)
        self._timer = loop.call_every(self.timing.check_period, self._check)

    # called from discovery threads -------------------------------------------------------------
    def peer_added(self, service: DiscoveredService) -> None:
        self._loop.call_soon(self._connect, service)

    def peer_removed(self, service: DiscoveredService) -> None:
        self._loop.call_soon(self._disconnect, service, True)

    # loop thread ------------------------------------------------------------------------------
    def _connect(self, service: DiscoveredService) -> None:
        key = service.name.lower()
        old = self._endpoints.get(key)
        if old == service.endpoint:
            return
        if old is not None:
            self._sock.disconnect(old)
        self._sock.connect(service.endpoint)
        self._endpoints[key] = service.endpoint

    def _disconnect(self, service: DiscoveredService, departed: bool) -> None:
        endpoint = self._endpoints.pop(service.name.lower(), None)
        if endpoint is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disconnect(endpoint)
        if departed:
            self._dispatch(self.tracker.on_departure(service.name, time.monotonic()))

    def _on_readable(self) -> None:
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = CHP1Message.decode(frames)
            except DecodeError as exc:
                self._bad_input("malformed heartbeat dropped: %s", exc)
                continue
            if msg.sender.lower() == self._own:
                continue
            events = self.tracker.on_heartbeat(
                msg.sender, msg.state, msg.flags, msg.interval_ms, msg.status, time.monotonic()
            )
            self._dispatch(events)

    def _check(self) -> None:
        self._dispatch(self.tracker.check(time.monotonic()))

    def _dispatch(self, events: list[PeerEvent]) -> None:
        if events:
            self._on_events(events)

    def close(self) -> None:
        def shutdown() -> None:
            self._timer.cancel()
            self._loop.remove_socket(self._sock)
            self._sock.close(linger=0)

        self._loop.run_sync(shutdown)
