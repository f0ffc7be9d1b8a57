"""Controller layer: the scriptable Controller API.

A controller discovers the satellites of its group, keeps one CSCP connection per satellite,
follows their states through heartbeats, and sends commands to all of them at once. It holds no
run state of its own: closing and re-opening it never affects the satellites.

State view: ``states`` is fed by the heartbeat tracker (every state change; a peer gone
silent shows ``DEAD``). A ``get_state`` answer (when a satellite joins, and while
``await_state`` polls) fills the view only while no heartbeat of that satellite arrived, so
an answer that overtook a heartbeat never makes the view step back; ``await_state`` returns
once the view agrees with the answers (or after a short grace). ``on_state_change``, ``on_join`` and
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

from constellation.core.config import CONDITION_TRANSITIONS, normalize_framework_keys
from constellation.core.heartbeat_tracker import PeerEvent
from constellation.core.roles import PeerEventKind
from constellation.core.states import State
from constellation.errors import ConfigError, DecodeError, TransitionError
from constellation.net.discovery import DiscoveredService, DiscoveryEvent, ServiceId, make_discovery
from constellation.net.heartbeat import HeartbeatReceiver, HeartbeatSender, HeartbeatState
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from controller.config import ControllerConfig, load_config

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
_ANY = object()  # "no expected state" marker of Controller._set_state
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
        self._states: dict[str, str] = {}
        self._versions: dict[str, int] = {}  # bumped on every change of a satellite's view
        self._known: set[str] = set()
        self._status: dict[str, str] = {}
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
                first_time = name not in self._known
                self._known.add(name)
                current = self._states.get(name)
                self._changed.notify_all()
                self._fire(self._join_callbacks, name)
                if first_time and current is not None:
                    self._fire_state(name, "?", current)  # heartbeats were faster
            if old is not None:
                old.close()
            log.info("satellite %s found at %s", name, service.endpoint)
            self._pool.submit(self._poll_state, name, True)
            return
        with self._lock:
            old = self._handles.pop(name, None)
            previous = self._states.get(name)
            if old is not None:
                self._states[name] = "DEAD"
                self._versions[name] = self._versions.get(name, 0) + 1
                if previous != "DEAD":
                    self._fire_state(name, previous or "?", "DEAD")
                self._fire(self._leave_callbacks, name)
            self._changed.notify_all()
        if old is not None:
            old.close()
            log.info("satellite %s left", name)

    def _view_version(self, name: str) -> int:
        with self._lock:
            return self._versions.get(_canonical(self._handles, name), 0)

    def _on_peer_events(self, events: list[PeerEvent]) -> None:
        for event in events:
            peer = self.heartbeats.tracker.get(event.name)
            if peer is not None and peer.status is not None:
                with self._lock:
                    self._status[_canonical(self._handles, event.name)] = peer.status
            if event.kind is PeerEventKind.DIED:
                log.warning("satellite %s lost (%s)", event.name, event.detail)
                self._set_state(event.name, "DEAD")
            elif event.kind is PeerEventKind.REVIVED:
                log.info("satellite %s is back", event.name)
                self._set_state(event.name, _state_name(event.new_state or 0))
            elif event.kind in (PeerEventKind.JOINED, PeerEventKind.STATE_CHANGED):
                self._set_state(event.name, _state_name(event.new_state or 0))

    def _set_state(
        self, name: str, state: str, expected: object = _ANY, version: int | None = None
    ) -> None:
        """Record ``state`` in the view (atomically, and only if it still is as assumed).

        ``expected``: only if the view shows that state; ``version``: only if the view of
        this satellite did not change since :meth:`_view_version` returned ``version``.
        """
        with self._lock:
            name = _canonical(self._handles, name)
            old = self._states.get(name)
            if old == state or (expected is not _ANY and old != expected):
                return
            if version is not None and self._versions.get(name, 0) != version:
                return
            self._versions[name] = self._versions.get(name, 0) + 1
            self._states[name] = state
            if name in self._known:  # other controllers, and satellites not yet joined: silent
                self._fire_state(name, old or "?", state)
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
            return {n: s for n, s in self._states.items() if n in self._known}

    @property
    def statuses(self) -> dict[str, str]:
        """Canonical name -> last status text (from heartbeats, which carry every change)."""
        peers = self.heartbeats.peers()
        with self._lock:
            result = dict(self._status)
            for name, info in peers.items():
                if info.status is not None:
                    result[_canonical(self._handles, name)] = info.status
            return result

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
            except TimeoutError as exc:
                replies[name] = Reply(CSCPType.ERROR, str(exc))
        transitional = _TRANSITIONAL.get(verb.lower())
        if transitional is not None:
            for name, reply in replies.items():
                # Show the accepted transition at once, unless heartbeats already reported a
                # newer state (the transition itself, its end, or a failure).
                if reply.ok and self.states.get(name) == before.get(name):
                    self._set_state(name, transitional.name, expected=before.get(name))
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
                lagging = [n for n in names if self._states.get(n) != state]
                remaining = grace - time.monotonic()
                if not lagging or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.05))
        for name in lagging:
            self._set_state(name, state)

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
            if self.heartbeats.peer(name) is None or self.states.get(name) == "DEAD":
                self._set_state(name, reply.verb, version=version)  # unless the view changed
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
        self._callbacks.put(None)
        if threading.current_thread() is not self._callback_thread:
            self._callback_thread.join(5.0)

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


def check_conditions(configs: Mapping[str, Mapping[str, Any]], present: Iterable[str]) -> None:
    """Check the conditional transitions of the configurations about to be sent.

    ``configs`` maps each target's canonical name to the merged section it will receive;
    ``present`` lists the satellites of the group. Every name in a
    ``_conditions.require_<transition>_after`` list must be a present satellite, and for each
    transition the "waits for" graph must have no cycle (a satellite waiting for itself
    included), since such satellites would wait for each other until the timeout.

    Raises :class:`ConfigError` whose key is ``<Type.Name>._conditions.require_<t>_after`` and
    whose message names the satellites involved. Pure function: no I/O.
    """
    known = {name.lower(): name for name in present}
    known.update({name.lower(): name for name in configs})
    for transition in CONDITION_TRANSITIONS:
        key = f"require_{transition.name}_after"
        graph: dict[str, list[str]] = {}
        for sat, config in configs.items():
            waits_for = _condition_list(sat, normalize_framework_keys(config), key)
            for peer in waits_for:
                if peer.lower() not in known:
                    raise ConfigError(
                        f"{sat}._conditions.{key}",
                        f"{sat} waits for {peer}, which is not a satellite of this group "
                        f"(present: {', '.join(sorted(known.values())) or 'none'})",
                    )
            graph[sat.lower()] = [peer.lower() for peer in waits_for]
        cycle = _find_cycle(graph)
        if cycle:
            names = [known.get(n, n) for n in cycle]
            raise ConfigError(
                f"{names[0]}._conditions.{key}",
                f"circular condition: {' -> '.join(names)} (these satellites would wait for "
                "each other until the transition timeout)",
            )


def _condition_list(sat: str, config: Mapping[str, Any], key: str) -> list[str]:
    section = config.get("_conditions")
    if not isinstance(section, Mapping) or section.get(key) is None:
        return []
    value = section[key]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"{sat}._conditions.{key}", f"expected a list of canonical names, got {value!r}"
        )
    return names


def _find_cycle(graph: Mapping[str, list[str]]) -> list[str]:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` (iterative depth-first search)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(graph.get(root, []))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if child in on_path:
                return [*path[path.index(child) :], child]
            if child in done:
                continue
            path.append(child)
            on_path.add(child)
            stack.append(iter(graph.get(child, [])))
    return []
