"""I/O layer: CHP1 heartbeats — the XPUB sender and the SUB receiver feeding a tracker.

The sender publishes state, role flags and the interval to the next beat; it counts its
subscribers to scale the interval and sends an extra beat ("extrasystole") on every state
change (and one to every new subscriber). The receiver follows every discovered heartbeat
service of the group through a SUB socket of its own, decodes beats and feeds the pure
:class:`~constellation.core.heartbeat_tracker.HeartbeatTracker`; the events it returns are
handed to a callback in the loop thread. The tracker is checked exactly when the next peer
deadline passes (plus a safety tick), so a silent peer is declared dead within milliseconds of
its last life running out.

Neither side trusts its input: anything on the sender's XPUB socket other than a plain
subscribe/unsubscribe, and any received heartbeat that does not decode, names an invalid sender
or comes from another sender than the peer its socket follows, is dropped with a rate-limited
warning and never reaches the tracker or the state machine. Beats of a peer that departed are
ignored until discovery announces it again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from constellation.core.heartbeat_tracker import HeartbeatTracker, PeerEvent, PeerInfo
from constellation.core.roles import heartbeat_interval
from constellation.errors import DecodeError
from constellation.net.discovery import DiscoveredService
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop, TimerHandle
from constellation.net.ratelimit import RateLimitedWarning
from constellation.net.sockets import DEFAULT_MAX_MESSAGE_SIZE, bind_in_scope
from constellation.net.subscriptions import PeerSubscriptions
from constellation.protocol.chp1 import CHP1Message, CHPFlags

__all__ = ["HeartbeatReceiver", "HeartbeatSender", "HeartbeatState", "HeartbeatTiming"]

log = logging.getLogger("constellation.net.chp")

#: Sender names accepted in heartbeats: ``Type.Name`` (satellites) or a plain name (controllers).
_SENDER_NAME = re.compile(r"^\w+(\.\w+)?$")
#: Messages handled per wake-up of a socket, so that a flood cannot starve the loop's timers.
_MAX_BATCH = 256
_SUBSCRIBE, _UNSUBSCRIBE = b"\x01", b"\x00"


@dataclass(frozen=True)
class HeartbeatTiming:
    """Timing constants; ``scale`` multiplies every interval (the launcher passes
    ``ProcessSettings.heartbeat_scale``, from ``CONSTELLATION_HEARTBEAT_SCALE``)."""

    scale: float = 1.0
    lives: int = 3

    def interval(self, subscribers: int, max_interval_s: float) -> float:
        return heartbeat_interval(subscribers, max_interval_s) * self.scale

    @property
    def check_period(self) -> float:
        """Period of the safety check; the receiver also checks at every peer deadline."""
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
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._loop = loop
        self._name = own_name
        self._current = current
        self.max_interval_s = max_interval_s
        self.timing = timing or HeartbeatTiming()
        self.subscribers = 0
        self._last_status: str | None = None
        self._timer: TimerHandle | None = None
        self._pending = 0  # extrasystoles queued but not yet sent
        self._pending_lock = threading.Lock()
        self._bad_input = RateLimitedWarning(log)
        self._sock: zmq.Socket[Any] = loop.context.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_size)
        self._sock.setsockopt(zmq.SNDHWM, 100)
        self.port = bind_in_scope(self._sock, scope, port)
        loop.add_socket(self._sock, self._on_subscription)
        loop.call_soon(self._beat)

    @property
    def interval(self) -> float:
        return self.timing.interval(self.subscribers, self.max_interval_s)

    def extrasystole(self, snapshot: HeartbeatState | None = None) -> None:
        """Send an out-of-schedule beat now (thread-safe); used on every state change.

        ``snapshot`` is what to report; by default the current state is read when the beat is
        sent. Passing the state of the change itself keeps two quick changes (``interrupting``
        then ``SAFE``) from collapsing into two beats of the later state. Order is kept: no
        regular beat (which reads the current state) goes out while extrasystoles are queued,
        and if the last queued snapshot is older than the current state (changes reported by
        two threads in swapped order), one more extrasystole reports the current state.
        """
        with self._pending_lock:
            now = self._pending == 0 and self._loop.in_loop_thread()
            self._pending += 1
        if now:
            # A command changed the state in the loop thread: beat before its reply goes out.
            self._send_extrasystole(snapshot)
        else:
            self._loop.call_soon(self._send_extrasystole, snapshot)

    def _send_extrasystole(self, snapshot: HeartbeatState | None) -> None:
        with self._pending_lock:
            self._pending -= 1
            last = self._pending == 0
        self._beat(True, snapshot)
        if last and snapshot is not None:
            current = self._current()
            if current.state != snapshot.state:
                self._beat(True, current)

    @property
    def bad_input(self) -> int:
        """How many unexpected messages arrived on the XPUB socket (and were dropped)."""
        return self._bad_input.total

    def _on_subscription(self) -> None:
        joined = False
        for _ in range(_MAX_BATCH):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            # Receivers subscribe to everything: exactly b"\x01" / b"\x00"
            # (docs/protocols.md#chp-v1-heartbeats).
            if frames == [_SUBSCRIBE]:
                self.subscribers += 1
                joined = True
            elif frames == [_UNSUBSCRIBE]:
                self.subscribers = max(0, self.subscribers - 1)
            else:
                size = sum(len(frame) for frame in frames)
                self._bad_input(
                    "unexpected %d-frame, %d-byte message on heartbeat socket dropped",
                    len(frames),
                    size,
                )
        if joined:
            # A newcomer missed the last status and waits up to an interval for the state:
            # beat now (once per batch of subscriptions), with the status.
            self._last_status = None
            self._beat()

    def _beat(self, extrasystole: bool = False, snapshot: HeartbeatState | None = None) -> None:
        if not extrasystole:
            with self._pending_lock:
                queued = self._pending > 0
            if queued:
                return  # the queued extrasystoles go out at once and reschedule the timer
        now = snapshot if snapshot is not None else self._current()
        interval = self.interval
        flags = (int(now.flags) & 0x7F) | (CHPFlags.IS_EXTRASYSTOLE if extrasystole else 0)
        text = now.status if isinstance(now.status, str) else str(now.status)
        status: str | None = None
        if extrasystole or text != self._last_status:
            status = text
            self._last_status = text
        interval_ms = max(1, min(65535, int(interval * 1000)))
        msg = CHP1Message(self._name, int(now.state) & 0xFF, int(flags), interval_ms, status)
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
    """Subscribe to the heartbeats of every discovered peer and track their lives.

    Each peer gets a SUB socket of its own, kept by
    :class:`~constellation.net.subscriptions.PeerSubscriptions` (one socket per pipe guards
    against a libzmq fair-queueing defect; a socket whose message was cut short is replaced).
    Knowing which peer a socket follows also lets the receiver drop beats of any other sender
    arriving there (a port reused by another process); only placeholder names (CHIRP hosts
    whose name is not known yet) accept any sender. The events of one batch of beats are
    dispatched together when the batch ends.

    The tracker lives in the loop thread; other threads read it through :meth:`peer` and
    :meth:`peers`, which take a lock (``tracker`` stays available for loop-thread callers).
    """

    def __init__(
        self,
        loop: EventLoop,
        own_name: str,
        on_events: Callable[[list[PeerEvent]], None],
        timing: HeartbeatTiming | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._loop = loop
        self._own = own_name.lower()
        self._on_events = on_events
        self.timing = timing or HeartbeatTiming()
        self.tracker = HeartbeatTracker(
            lives=self.timing.lives, initial_interval_s=self.timing.initial_interval
        )
        self._lock = threading.Lock()
        self._subs = PeerSubscriptions(
            loop,
            self._on_frames,
            on_cut_short=self._cut_short,
            on_batch_end=self._end_batch,
            rcvhwm=1000,
            batch=_MAX_BATCH,
            max_message_size=max_message_size,
        )
        loop.run_sync(lambda: self._subs.set_topics([""]))
        self._events: list[PeerEvent] = []
        self._departed: set[str] = set()
        self._closed = False
        self._bad_input = RateLimitedWarning(log)
        self._deadline_timer: TimerHandle | None = None
        self._deadline_at = float("inf")
        self._timer = loop.call_every(self.timing.check_period, self._check)

    # thread-safe views --------------------------------------------------------------------------
    def peer(self, name: str) -> PeerInfo | None:
        """Snapshot of one peer (case-insensitive), or ``None`` if it never beat or departed."""
        with self._lock:
            return self.tracker.get(name)

    def peers(self) -> dict[str, PeerInfo]:
        """Snapshot of every known peer, dead ones included, keyed by display name."""
        with self._lock:
            return dict(self.tracker.peers)

    @property
    def bad_input(self) -> int:
        """How many received messages were dropped as malformed."""
        return self._bad_input.total

    # called from discovery threads -------------------------------------------------------------
    def peer_added(self, service: DiscoveredService) -> None:
        self._loop.call_soon(self._connect, service)

    def peer_removed(self, service: DiscoveredService) -> None:
        self._loop.call_soon(self._disconnect, service, True)

    # loop thread ------------------------------------------------------------------------------
    def _connect(self, service: DiscoveredService) -> None:
        if self._closed:
            return
        key = service.name.lower()
        self._departed.discard(key)
        self._subs.connect(key, service.endpoint)

    def _disconnect(self, service: DiscoveredService, departed: bool) -> None:
        key = service.name.lower()
        if departed:  # its last beats (e.g. SAFE after an interrupt) come before the departure
            self._subs.drain(key)
        self._subs.drop(key)
        if departed:
            # Beats of this peer still queued elsewhere must not bring it back.
            self._departed.add(key)
            with self._lock:
                events = self.tracker.on_departure(service.name, time.monotonic())
            self._dispatch(events)

    def _on_frames(self, key: str, frames: list[bytes]) -> None:
        self._events.extend(self._on_message(frames, key))

    def _cut_short(self, key: str) -> None:
        self._bad_input("heartbeat of %s cut short by a lost connection; reconnecting", key)

    def _end_batch(self, key: str) -> None:
        events, self._events = self._events, []
        self._schedule_deadline()
        self._dispatch(events)

    def _on_message(self, frames: list[bytes], expected: str) -> list[PeerEvent]:
        """Decode and track one message received on the socket that follows ``expected``."""
        try:
            msg = CHP1Message.decode(frames)
        except DecodeError as exc:
            self._bad_input("malformed heartbeat dropped: %s", exc)
            return []
        sender = msg.sender.lower()
        if not _SENDER_NAME.match(msg.sender):
            self._bad_input("heartbeat with invalid sender name %r dropped", msg.sender[:64])
            return []
        if sender != expected and _SENDER_NAME.match(expected):
            self._bad_input("heartbeat of %s on the connection to %s dropped", sender, expected)
            return []
        if sender == self._own or sender in self._departed:
            return []
        with self._lock:
            return self.tracker.on_heartbeat(
                msg.sender, msg.state, msg.flags, msg.interval_ms, msg.status, time.monotonic()
            )

    def _check(self) -> None:
        with self._lock:
            events = self.tracker.check(time.monotonic())
        self._schedule_deadline()
        self._dispatch(events)

    def _on_deadline(self) -> None:
        self._deadline_timer = None
        self._deadline_at = float("inf")
        self._check()

    def _schedule_deadline(self) -> None:
        """Make sure :meth:`_check` runs when the earliest peer deadline passes."""
        with self._lock:
            deadline = self.tracker.next_deadline()
        if deadline is None or deadline >= self._deadline_at:
            return  # an earlier (or equal) check is already scheduled; it reschedules itself
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_at = deadline
        delay = max(0.0, deadline - time.monotonic())
        self._deadline_timer = self._loop.call_later(delay, self._on_deadline)

    def _dispatch(self, events: list[PeerEvent]) -> None:
        if events:
            self._on_events(events)

    def close(self) -> None:
        def shutdown() -> None:
            self._closed = True
            self._timer.cancel()
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
            self._subs.close()

        self._loop.run_sync(shutdown)
