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
from controller.conditions import check_conditions, check_receivers
from controller.config import ControllerConfig, load_config
from controller.state_view import Change, StateView

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
        deadline = time.monotonic() + timeout
        # One request at a time per connection; waiting for another caller's reply counts
        # against this call's timeout (a hung satellite must not stack up waits).
        if not self._lock.acquire(timeout=timeout):
            raise TimeoutError(f"{self.name} did not answer '{verb}' within {timeout:g} s")
        try:
            sock = self._socket()
            sock.send_multipart(request.encode())
            remaining = max(0.0, deadline - time.monotonic())
            if not sock.poll(int(remaining * 1000)):
                self._reset()  # a REQ socket without reply cannot be reused
                raise TimeoutError(f"{self.name} did not answer '{verb}' within {timeout:g} s")
            frames = sock.recv_multipart()
        finally:
            self._lock.release()
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
            self.heartbeats = HeartbeatReceiver(self.loop, name, self._on_peer_events)
            self._heartbeat = HeartbeatSender(
                self.loop, self.scope, name, lambda: HeartbeatState(int(State.NEW), 0, "controller")
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

    def await_satellites(self, names: Iterable[str], timeout: float = 20.0) -> None:
        """Block until every named satellite (``Type.Name``) was discovered."""
        wanted = {n.lower() for n in names}
        self._wait(
            lambda: wanted <= {n.lower() for n in self._handles},
            timeout,
            lambda: f"satellites not found: {sorted(wanted - {n.lower() for n in self._handles})}",
            self._ask_again,
        )

    def await_n_satellites(self, n: int, timeout: float = 20.0) -> None:
        """Block until at least ``n`` satellites were discovered."""
        self._wait(
            lambda: len(self._handles) >= n,
            timeout,
            lambda: f"only {len(self._handles)} of {n} satellites found",
            self._ask_again,
        )

    def _ask_again(self) -> None:
        """While waiting for satellites: ask peers to announce again (CHIRP beacons can be lost;
        a no-op with mDNS, which repeats its queries itself)."""
        for service in (ServiceId.CONTROL, ServiceId.HEARTBEAT):
            self.discovery.request(service)

    def _wait(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        why: Callable[[], str],
        every_second: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + 1.0
        with self._changed:
            while not predicate():
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    raise TimeoutError(why())
                if every_second is not None and now >= next_tick:
                    next_tick = now + 1.0
                    every_second()
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
                self._settle_view(names, wanted, deadline)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = {n: self.states.get(n, "?") for n in names if n not in confirmed}
                raise TimeoutError(f"not in {wanted} after {timeout:g} s: {missing}")
            with self._changed:
                self._changed.wait(min(remaining, 0.1))

    def _settle_view(self, names: list[str], state: str, deadline: float) -> None:
        """After ``get_state`` confirmed ``state``, let the heartbeat view catch up with it.

        Heartbeats are the view's source; their extrasystoles arrive within milliseconds, but
        may be overtaken by a command reply. Wait for them briefly (so ``states`` agrees when
        ``await_state`` returns); a satellite whose heartbeats do not confirm in time is set
        from the answer.
        """
        grace = time.monotonic() + min(1.0, max(0.1, deadline - time.monotonic()))
        lagging = names
        with self._changed:
            while True:
                lagging = [n for n in names if self._view.states().get(n) != state]
                remaining = grace - time.monotonic()
                if not lagging or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.05))
        with self._lock:
            for name in lagging:
                self._apply(self._view.confirm(name, state, time.monotonic()))

    def _poll_state(self, name: str, joined: bool = False) -> str:
        """Ask ``name`` for its state; the answer enters the view unless it changed meanwhile.

        It fills the view when no heartbeat did yet, and replaces ``DEAD`` once a satellite
        ``joined`` (again: restarted under the same name after it was declared dead or left).
        """
        handle = self._handles.get(name)
        if handle is None or (not joined and self.states.get(name) == "DEAD"):
            return "DEAD"  # departed, or silent: do not wait for a command timeout
        version = self._view_version(name)
        try:
            reply = handle.command("get_state", timeout=self.timeout)
        except TimeoutError:
            return self.states.get(name, "?")
        if reply.ok:
            with self._lock:  # enters the view only if it did not change meanwhile
                changes = self._view.answered(
                    name, reply.verb, version, time.monotonic(), rejoined=joined
                )
                self._apply(changes)
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


def _state_name(code: int) -> str:
    try:
        return State(code).name
    except ValueError:
        return f"0x{code:02X}"
