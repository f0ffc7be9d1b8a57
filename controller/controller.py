"""Controller layer: the scriptable Controller API.

A controller discovers the satellites of its group, keeps one CSCP connection per satellite,
follows their states through heartbeats, and sends commands to all of them at once. It holds no
run state of its own: closing and re-opening it never affects the satellites.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zmq

from constellation.core.heartbeat_tracker import PeerEvent
from constellation.core.roles import PeerEventKind
from constellation.core.states import State
from constellation.errors import DecodeError, TransitionError
from constellation.net.discovery import DiscoveredService, DiscoveryEvent, ServiceId, make_discovery
from constellation.net.heartbeat import HeartbeatReceiver, HeartbeatSender, HeartbeatState
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from controller.config import ControllerConfig, load_config

__all__ = ["Controller", "Reply", "SatelliteHandle"]

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


@dataclass(frozen=True)
class Reply:
    """A CSCP reply: verb type, verb text, payload and tags."""

    msg_type: CSCPType
    verb: str
    payload: Any = None
    tags: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.msg_type is CSCPType.SUCCESS

    def __str__(self) -> str:
        return f"{self.msg_type.name}: {self.verb}"


class SatelliteHandle:
    """A connection to one satellite's command service."""

    def __init__(self, name: str, endpoint: str, controller_name: str, context: Any) -> None:
        self.name = name
        self.type_name, _, self.sat_name = name.partition(".")
        self.endpoint = endpoint
        self._controller_name = controller_name
        self._context = context
        self._lock = threading.Lock()
        self._sock: Any = None

    def _socket(self) -> Any:
        if self._sock is None:
            self._sock = self._context.socket(zmq.REQ)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(self.endpoint)
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def command(self, verb: str, payload: Any = NO_PAYLOAD, timeout: float = 5.0) -> Reply:
        """Send ``verb`` (with an optional payload) and wait for the reply."""
        request = CSCP1Message(self._controller_name, CSCPType.REQUEST, verb, payload)
        with self._lock:
            sock = self._socket()
            sock.send_multipart(request.encode())
            if not sock.poll(int(timeout * 1000)):
                self._reset()  # a REQ socket without reply cannot be reused
                raise TimeoutError(f"{self.name} did not answer '{verb}' within {timeout:g} s")
            frames = sock.recv_multipart()
        try:
            reply = CSCP1Message.decode(frames)
        except DecodeError as exc:
            return Reply(CSCPType.ERROR, f"undecodable reply: {exc}")
        payload = None if reply.payload is NO_PAYLOAD else reply.payload
        return Reply(reply.msg_type, reply.verb, payload, dict(reply.tags))

    def close(self) -> None:
        with self._lock:
            self._reset()

    def __repr__(self) -> str:
        return f"<SatelliteHandle {self.name} at {self.endpoint}>"


StateCallback = Callable[[str, str, str], None]
PeerCallback = Callable[[str], None]


class Controller:
    """Discover, watch and steer the satellites of one group."""

    def __init__(
        self,
        group: str,
        interface: str | Iterable[str] | None = None,
        discovery: str = "mdns",
        name: str = "Controller",
        timeout: float = 5.0,
    ) -> None:
        self.group = group
        self.name = name
        self.timeout = timeout
        interfaces = [interface] if isinstance(interface, str) else interface
        self.scope = NetworkScope.from_interfaces(interfaces)
        self._context = zmq.Context.instance()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._handles: dict[str, SatelliteHandle] = {}
        self._states: dict[str, str] = {}
        self._known: set[str] = set()
        self._status: dict[str, str] = {}
        self._state_callbacks: list[StateCallback] = []
        self._join_callbacks: list[PeerCallback] = []
        self._leave_callbacks: list[PeerCallback] = []
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="ctrl-cmd")
        self.loop = EventLoop(self._context, f"{name}-loop")
        self.loop.start()
        self.heartbeats = HeartbeatReceiver(self.loop, name, self._on_peer_events)
        self._heartbeat = HeartbeatSender(
            self.loop, self.scope, name, lambda: HeartbeatState(int(State.NEW), 0, "controller")
        )
        self.discovery = make_discovery(discovery, group, name, self.scope)
        self.discovery.announce(ServiceId.HEARTBEAT, self._heartbeat.port)
        self.discovery.add_listener([ServiceId.HEARTBEAT], self._on_heartbeat_service)
        self.discovery.add_listener([ServiceId.CONTROL], self._on_control_service)
        self._closed = False

    # --- discovery and state view ---------------------------------------------------------------
    def _on_heartbeat_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        if event is DiscoveryEvent.ADDED:
            self.heartbeats.peer_added(service)
        else:
            self.heartbeats.peer_removed(service)

    def _on_control_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        name = service.name
        if event is DiscoveryEvent.ADDED:
            handle = SatelliteHandle(name, service.endpoint, self.name, self._context)
            with self._lock:
                old = self._handles.pop(name, None)
                self._handles[name] = handle
                self._known.add(name)
                self._changed.notify_all()
            if old is not None:
                old.close()
            log.info("satellite %s found at %s", name, service.endpoint)
            self._pool.submit(self._refresh_state, name)
            self._fire(self._join_callbacks, name)
            return
        with self._lock:
            old = self._handles.pop(name, None)
            previous = self._states.get(name)
            if old is not None:
                self._states[name] = "DEAD"
            self._changed.notify_all()
        if old is not None:
            old.close()
            log.info("satellite %s left", name)
            if previous != "DEAD":
                self._fire_state(name, previous or "?", "DEAD")
            self._fire(self._leave_callbacks, name)

    def _refresh_state(self, name: str) -> None:
        handle = self._handles.get(name)
        if handle is None:
            return
        try:
            reply = handle.command("get_state", timeout=self.timeout)
        except TimeoutError:
            return
        if reply.ok:
            self._set_state(name, reply.verb)

    def _on_peer_events(self, events: list[PeerEvent]) -> None:
        for event in events:
            if event.kind is PeerEventKind.DIED:
                self._set_state(event.name, "DEAD")
            elif event.new_state is not None and event.kind is not PeerEventKind.DEPARTED:
                self._set_state(event.name, _state_name(event.new_state))
            peer = self.heartbeats.tracker.get(event.name)
            if peer is not None and peer.status is not None:
                with self._lock:
                    self._status[_canonical(self._handles, event.name)] = peer.status

    def _set_state(self, name: str, state: str) -> None:
        with self._lock:
            name = _canonical(self._handles, name)
            old = self._states.get(name)
            if old == state:
                return
            self._states[name] = state
            self._changed.notify_all()
        self._fire_state(name, old or "?", state)

    def _fire_state(self, name: str, old: str, new: str) -> None:
        for callback in list(self._state_callbacks):
            try:
                callback(name, old, new)
            except Exception:
                log.exception("state callback failed")

    @staticmethod
    def _fire(callbacks: list[PeerCallback], name: str) -> None:
        for callback in list(callbacks):
            try:
                callback(name)
            except Exception:
                log.exception("callback failed")

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
            return {n: s for n, s in self._states.items() if n in self._known}

    @property
    def statuses(self) -> dict[str, str]:
        with self._lock:
            return dict(self._status)

    def on_state_change(self, callback: StateCallback) -> None:
        """Call ``callback(name, old_state, new_state)`` on every observed state change."""
        self._state_callbacks.append(callback)

    def on_join(self, callback: PeerCallback) -> None:
        self._join_callbacks.append(callback)

    def on_leave(self, callback: PeerCallback) -> None:
        self._leave_callbacks.append(callback)

    def global_state(self) -> str:
        """The common state of all present satellites, or the lowest one prefixed by ``~``."""
        states = [s for n, s in self.states.items() if n in self.satellites]
        if not states:
            return "NONE"
        if len(set(states)) == 1:
            return states[0]
        lowest = min(states, key=lambda s: State[s].value if s in State.__members__ else 0)
        return f"~{lowest}"

    def await_satellites(self, names: Iterable[str], timeout: float = 20.0) -> None:
        """Block until every named satellite (``Type.Name``) was discovered."""
        wanted = {n.lower() for n in names}
        self._wait(
            lambda: wanted <= {n.lower() for n in self._handles},
            timeout,
            lambda: f"satellites not found: {sorted(wanted - {n.lower() for n in self._handles})}",
        )

    def await_n_satellites(self, n: int, timeout: float = 20.0) -> None:
        """Block until at least ``n`` satellites were discovered."""
        self._wait(
            lambda: len(self._handles) >= n,
            timeout,
            lambda: f"only {len(self._handles)} of {n} satellites found",
        )

    def _wait(self, predicate: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(why())
                self._changed.wait(min(remaining, 0.5))

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
            except TimeoutError as exc:
                replies[name] = Reply(CSCPType.ERROR, str(exc))
        transitional = _TRANSITIONAL.get(verb.lower())
        if transitional is not None:
            for name, reply in replies.items():
                # Heartbeats may already have reported the transition (or its end).
                if reply.ok and self.states.get(name) not in (
                    transitional.name,
                    transitional.target.name,
                ):
                    self._set_state(name, transitional.name)
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

    def await_state(
        self, state: str, timeout: float = 30.0, targets: Iterable[str] | None = None
    ) -> None:
        """Block until all (target) satellites are in ``state``.

        Raises :class:`TransitionError` as soon as one is in ERROR (naming it and its status),
        and :class:`TimeoutError` listing the satellites that did not get there in time.
        """
        wanted = state.upper()
        names = list(self._targets(targets))
        deadline = time.monotonic() + timeout
        confirmed: set[str] = set()
        while True:
            for name in names:
                if name in confirmed:
                    continue
                current = self._poll_state(name)
                if current == wanted:
                    confirmed.add(name)
                elif current in ("ERROR", "DEAD") and wanted not in ("ERROR", "DEAD"):
                    status = self._poll_status(name)
                    raise TransitionError(f"{name} is in {current}: {status}")
            if len(confirmed) == len(names):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = {n: self.states.get(n, "?") for n in names if n not in confirmed}
                raise TimeoutError(f"not in {wanted} after {timeout:g} s: {missing}")
            with self._changed:
                self._changed.wait(min(remaining, 0.1))

    def _poll_state(self, name: str) -> str:
        handle = self._handles.get(name)
        if handle is None:
            return "DEAD"
        try:
            reply = handle.command("get_state", timeout=self.timeout)
        except TimeoutError:
            return self.states.get(name, "?")
        if reply.ok:
            self._set_state(name, reply.verb)
            return reply.verb
        return self.states.get(name, "?")

    def _poll_status(self, name: str) -> str:
        handle = self._handles.get(name)
        if handle is None:
            return self.statuses.get(name, "left the group")
        try:
            return handle.command("get_status", timeout=self.timeout).verb
        except TimeoutError:
            return self.statuses.get(name, "?")

    # --- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect; the satellites are not affected."""
        if self._closed:
            return
        self._closed = True
        self.discovery.close()
        for handle in self.satellites.values():
            handle.close()
        self.heartbeats.close()
        self._heartbeat.close()
        self.loop.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _state_name(code: int) -> str:
    try:
        return State(code).name
    except ValueError:
        return f"0x{code:02X}"


def _canonical(handles: Mapping[str, Any], name: str) -> str:
    for known in handles:
        if known.lower() == name.lower():
            return known
    return name
