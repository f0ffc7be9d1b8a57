"""Controller layer: the scriptable Controller API.

A controller discovers the satellites of its group, keeps one CSCP connection per satellite,
follows their states through heartbeats, and sends commands to all of them at once. It holds no
run state of its own: closing and re-opening it never affects the satellites.

State view: a pure :class:`~controller.state_view.StateView` (its rules are documented there)
fed by discovery, the heartbeat tracker, ``get_state`` answers (when a satellite joins, and
while ``await_state`` polls) and accepted transitions; ``await_state`` returns once the view
agrees with the answers (or after a short grace). ``on_state_change``, ``on_join`` and
``on_leave`` callbacks follow that view, in order, from a thread of their own. Before
``initialize`` sends anything, :func:`check_conditions` verifies the conditional transitions
of the configuration.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zmq

from constellation.core.environment import ProcessSettings
from constellation.core.heartbeat_tracker import PeerEvent
from constellation.core.roles import PeerEventKind
from constellation.core.states import State
from constellation.net.discovery import DiscoveredService, DiscoveryEvent, ServiceId, make_discovery
from constellation.net.heartbeat import (
    HeartbeatReceiver,
    HeartbeatSender,
    HeartbeatState,
    HeartbeatTiming,
)
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCPType
from controller.conditions import check_conditions, check_receivers
from controller.config import ControllerConfig, load_config
from controller.handles import Reply, SatelliteHandle
from controller.state_view import Change, StateView
from controller.waiting import Waits

__all__ = ["Controller", "Reply", "SatelliteHandle", "check_conditions"]

log = logging.getLogger("constellation.controller")

#: Transitional state entered when a transition command is accepted.
_TRANSITIONAL = {
    "initialize": State.initializing,
    "launch": State.launching,
    "land": State.landing,
    "start": State.starting,
    "stop": State.stopping,
    "reconfigure": State.reconfiguring,
}


StateCallback = Callable[[str, str, str], None]
PeerCallback = Callable[[str], None]


class Controller(Waits):
    """Discover, watch and steer the satellites of one group."""

    def __init__(
        self,
        group: str,
        interface: str | Iterable[str] | None = None,
        discovery: str = "mdns",
        name: str = "Controller",
        timeout: float = 5.0,
        settings: ProcessSettings | None = None,
    ) -> None:
        """``settings``: heartbeat scale and message limit (None: the built-in defaults)."""
        self.group = group
        self.name = name
        self.timeout = timeout
        self.settings = settings or ProcessSettings()
        interfaces = [interface] if isinstance(interface, str) else interface
        self.scope = NetworkScope.from_interfaces(interfaces)
        self._context: zmq.Context[Any] = zmq.Context.instance()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._handles: dict[str, SatelliteHandle] = {}
        self._view = StateView()
        self._state_callbacks: list[StateCallback] = []
        self._join_callbacks: list[PeerCallback] = []
        self._leave_callbacks: list[PeerCallback] = []
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="ctrl-cmd")
        # Callbacks run in one thread of their own, in the order the view changed: never in
        # the loop thread (a slow callback must not delay heartbeats) and never under a lock.
        self._callbacks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._callback_thread = threading.Thread(
            target=self._deliver_callbacks, name=f"{name}-callbacks", daemon=True
        )
        self._callback_thread.start()
        self.loop = EventLoop(self._context, f"{name}-loop")
        self.loop.start()
        try:
            timing = HeartbeatTiming(scale=self.settings.heartbeat_scale)
            limit = self.settings.max_message_size
            self.heartbeats = HeartbeatReceiver(
                self.loop, name, self._on_peer_events, timing=timing, max_message_size=limit
            )
            self._heartbeat = HeartbeatSender(
                self.loop, self.scope, name, _own_beat, timing=timing, max_message_size=limit
            )
            self.discovery = make_discovery(discovery, group, name, self.scope)
            self.discovery.announce(ServiceId.HEARTBEAT, self._heartbeat.port)
            self.discovery.add_listener([ServiceId.HEARTBEAT], self._on_heartbeat_service)
            self.discovery.add_listener([ServiceId.CONTROL], self._on_control_service)
            self.discovery.add_listener([ServiceId.DATA], _ignore)  # browse: see transmitters
        except BaseException:
            self._closed = False
            self.close()  # a half-built controller leaves no thread or socket behind
            raise
        self._closed = False

    # --- discovery and state view ---------------------------------------------------------------
    def _on_heartbeat_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        if event is DiscoveryEvent.ADDED:
            self.heartbeats.peer_added(service)
        else:
            self.heartbeats.peer_removed(service)

    def _on_control_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        name = service.name
        now = time.monotonic()
        if event is DiscoveryEvent.ADDED:
            handle = SatelliteHandle(name, service.endpoint, self.name, self._context)
            with self._lock:
                old = self._handles.pop(name, None)
                self._handles[name] = handle
                self._apply(self._view.joined(name, now))
            if old is not None:
                old.close()
            log.info("satellite %s found at %s", name, service.endpoint)
            self._pool.submit(self._poll_state, name, True)
            return
        with self._lock:
            old = self._handles.pop(name, None)
            if old is not None:
                self._apply(self._view.left(name, now))
        if old is not None:
            old.close()
            log.info("satellite %s left", name)

    def _view_version(self, name: str) -> int:
        with self._lock:
            return self._view.version(name)

    def _on_peer_events(self, events: list[PeerEvent]) -> None:
        now = time.monotonic()
        for event in events:
            peer = self.heartbeats.tracker.get(event.name)
            status = None if peer is None else peer.status
            with self._lock:
                if status is not None:
                    self._view.status(event.name, status)
                if event.kind is PeerEventKind.DIED:
                    log.warning("satellite %s lost (%s)", event.name, event.detail)
                    self._apply(self._view.lost(event.name, now))
                elif event.kind is PeerEventKind.REVIVED:
                    log.info("satellite %s is back", event.name)
                    state = _state_name(event.new_state or 0)
                    self._apply(self._view.heartbeat(event.name, state, now))
                elif event.kind in (PeerEventKind.JOINED, PeerEventKind.STATE_CHANGED):
                    state = _state_name(event.new_state or 0)
                    self._apply(self._view.heartbeat(event.name, state, now))

    def _apply(self, changes: list[Change]) -> None:
        """Queue the callbacks of ``changes`` (called under ``self._lock``: in order)."""
        for change in changes:
            if change.kind == "state":
                self._fire_state(change.name, change.old, change.new)
            elif change.kind == "join":
                self._fire(self._join_callbacks, change.name)
            else:
                self._fire(self._leave_callbacks, change.name)
        if changes:
            self._changed.notify_all()

    def _fire_state(self, name: str, old: str, new: str) -> None:
        """Queue the state callbacks (called under ``self._lock``, so in order of changes)."""
        for callback in list(self._state_callbacks):
            self._callbacks.put(functools.partial(callback, name, old, new))

    def _fire(self, callbacks: list[PeerCallback], name: str) -> None:
        """Queue join or leave callbacks (called under ``self._lock``)."""
        for callback in list(callbacks):
            self._callbacks.put(functools.partial(callback, name))

    def _deliver_callbacks(self) -> None:
        while (call := self._callbacks.get()) is not None:
            try:
                call()
            except Exception:
                log.exception("controller callback failed")

    # --- public view -----------------------------------------------------------------------------
    @property
    def satellites(self) -> dict[str, SatelliteHandle]:
        """Canonical name -> handle of every satellite currently present."""
        with self._lock:
            return dict(self._handles)

    @property
    def states(self) -> dict[str, str]:
        """Canonical name -> state name (``DEAD`` for satellites that left or went silent)."""
        with self._lock:
            return self._view.states()

    @property
    def statuses(self) -> dict[str, str]:
        """Canonical name -> last status text (from heartbeats, which carry every change)."""
        peers = self.heartbeats.peers()
        with self._lock:
            for name, info in peers.items():
                if info.status is not None:
                    self._view.status(name, info.status)
            return {self._view.canonical(n): s for n, s in self._view.statuses().items()}

    @property
    def transmitters(self) -> list[str]:
        """Canonical names of the satellites that offer a data service (transmitters)."""
        return sorted({s.name for s in self.discovery.known(ServiceId.DATA)})

    def last_state(self, name: str) -> str:
        """The last state ``name`` was seen in other than DEAD (``?`` if never)."""
        with self._lock:
            view = self._view.get(name)
            return "?" if view is None else view.last_state

    def on_state_change(self, callback: StateCallback) -> None:
        """Call ``callback(name, old_state, new_state)`` on every observed state change.

        Only for satellites (peers with a command service), after their ``on_join``; the
        first call of a satellite has ``old_state`` ``"?"``. All callbacks of a controller run
        in one thread of their own, in the order the changes were observed.
        """
        self._state_callbacks.append(callback)

    def on_join(self, callback: PeerCallback) -> None:
        """Call ``callback(name)`` when a satellite's command service is discovered."""
        self._join_callbacks.append(callback)

    def on_leave(self, callback: PeerCallback) -> None:
        """Call ``callback(name)`` when a satellite departs (its state turns ``DEAD``).

        A satellite that goes silent without departing is reported by ``on_state_change``
        (new state ``DEAD``) instead; it may still come back.
        """
        self._leave_callbacks.append(callback)

    def global_state(self) -> str:
        """The common state of all present satellites; for a mixed group ``~`` and ERROR, SAFE
        or DEAD if any satellite shows one, else the lowest state (e.g. ``~ERROR``, ``~INIT``)."""
        with self._lock:
            return self._view.global_state()

    def state_summary(self) -> str:
        """The lowest healthy state and the count of each alarm, e.g. ``INIT, 1 ERROR``."""
        with self._lock:
            return self._view.summary()

    # --- commands --------------------------------------------------------------------------------
    def _targets(self, targets: Iterable[str] | None) -> dict[str, SatelliteHandle]:
        handles = self.satellites
        if targets is None:
            return handles
        lower = {n.lower(): n for n in handles}
        result = {}
        for target in targets:
            key = lower.get(target.lower())
            if key is None:
                raise KeyError(f"satellite {target} is not present in group {self.group}")
            result[key] = handles[key]
        return result

    def command(
        self,
        verb: str,
        payload: Any = NO_PAYLOAD,
        targets: Iterable[str] | None = None,
        payloads: Mapping[str, Any] | None = None,
    ) -> dict[str, Reply]:
        """Send ``verb`` to all satellites (or ``targets``) at once; name -> Reply."""
        handles = self._targets(targets)
        before = self.states
        futures = {
            name: self._pool.submit(
                handle.command,
                verb,
                payloads[name] if payloads is not None else payload,
                self.timeout,
            )
            for name, handle in handles.items()
        }
        replies: dict[str, Reply] = {}
        for name, future in futures.items():
            try:
                replies[name] = future.result()
            except Exception as exc:  # one satellite's failure must not hide the others' replies
                replies[name] = Reply(CSCPType.ERROR, str(exc) or type(exc).__name__)
        transitional = _TRANSITIONAL.get(verb.lower())
        if transitional is not None:
            now = time.monotonic()
            with self._lock:
                for name, reply in replies.items():
                    # Show the accepted transition at once, unless heartbeats already reported
                    # a newer state (the transition itself, its end, or a failure).
                    if reply.ok and name in before:
                        changes = self._view.accepted(name, transitional.name, before[name], now)
                        self._apply(changes)
        return replies

    def initialize(
        self,
        config: str | Any,
        targets: Iterable[str] | None = None,
    ) -> dict[str, Reply]:
        """Send each satellite its merged section of ``config`` (path, mapping or loaded)."""
        loaded: ControllerConfig = load_config(config)
        handles = self._targets(targets)
        for name in loaded.satellites():
            if name not in {n.lower() for n in handles} and targets is None:
                log.warning("configured satellite %s is not present", name)
        payloads = {name: loaded.for_satellite(name) for name in handles}
        check_conditions(payloads, self.satellites)
        check_receivers(payloads, self.transmitters)
        return self.command("initialize", targets=list(handles), payloads=payloads)

    def launch(self, targets: Iterable[str] | None = None) -> dict[str, Reply]:
        return self.command("launch", targets=targets)

    def land(self, targets: Iterable[str] | None = None) -> dict[str, Reply]:
        return self.command("land", targets=targets)

    def start(self, run_id: str, targets: Iterable[str] | None = None) -> dict[str, Reply]:
        return self.command("start", run_id, targets=targets)

    def stop(self, targets: Iterable[str] | None = None) -> dict[str, Reply]:
        return self.command("stop", targets=targets)

    def reconfigure(
        self, partial: Mapping[str, Any], targets: Iterable[str] | None = None
    ) -> dict[str, Reply]:
        return self.command("reconfigure", dict(partial), targets=targets)

    def shutdown(self, targets: Iterable[str] | None = None) -> dict[str, Reply]:
        return self.command("shutdown", targets=targets)

    # --- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect; the satellites are not affected."""
        if self._closed:
            return
        self._closed = True
        # getattr: a construction that failed half-way closes what it built.
        for part in ("discovery",):
            if getattr(self, part, None) is not None:
                getattr(self, part).close()
        for handle in self.satellites.values():
            handle.close()
        for part in ("heartbeats", "_heartbeat"):
            if getattr(self, part, None) is not None:
                getattr(self, part).close()
        self.loop.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._callbacks.put(None)
        if threading.current_thread() is not self._callback_thread:
            self._callback_thread.join(5.0)

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ignore(event: DiscoveryEvent, service: DiscoveredService) -> None:
    """Discovery listener that only makes the backend browse a service kind."""


def _own_beat() -> HeartbeatState:
    """What a controller's heartbeats report: never a satellite state."""
    return HeartbeatState(int(State.NEW), 0, "controller")


def _state_name(code: int) -> str:
    try:
        return State(code).name
    except ValueError:
        return f"0x{code:02X}"
