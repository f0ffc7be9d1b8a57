"""I/O layer: discovery over CHIRP, the UDP multicast beacons of Constellation 1.x deployments.

Beacons (``constellation.protocol.chirp``) go to 239.192.7.123:7123, once per chosen interface;
loopback is always one of them. A service is offered when announced, offered again (after a
random 0-200 ms delay) when a peer requests its kind, and departs on withdraw/close. Discovered
services are keyed by (host id, service id). A beacon names its sender only by the MD5 of the
lower-cased canonical name, so a :class:`_NameResolver` learns the real name by asking the peer:
``get_name`` over CSCP if it offers control, else the sender field of its first heartbeat or
monitoring notification. Names can also be fed in with :meth:`ChirpDiscovery.learn_name` (mDNS,
heartbeats). Events of a host are held back until its name is known; after ``name_timeout`` the
host is reported under a placeholder name (``chirp-<first 8 hex digits of the host id>``).
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import ipaddress
import logging
import random
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import psutil
import zmq

from constellation.errors import DecodeError, DiscoveryError
from constellation.net.discovery import DiscoveredService, Discovery, DiscoveryListener, ServiceId
from constellation.net.interfaces import NetworkScope, local_ipv4_addresses
from constellation.net.ratelimit import RateLimitedWarning
from constellation.protocol.chirp import (
    CHIRP_MULTICAST_ADDRESS,
    CHIRP_PORT,
    ChirpBeacon,
    ChirpType,
    name_id,
)
from constellation.protocol.chp1 import CHP1Message
from constellation.protocol.cmdp1 import decode_cmdp1
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

__all__ = [
    "LOOPBACK",
    "MULTICAST_TTL",
    "REPLY_MAX_DELAY",
    "ChirpDiscovery",
    "chirp_addresses",
    "placeholder_name",
]

log = logging.getLogger("constellation.net.chirp")

LOOPBACK: Final = "127.0.0.1"
#: Time to live of sent beacons (as Constellation).
MULTICAST_TTL: Final = 8
#: Longest random delay before a REQUEST is answered (seconds).
REPLY_MAX_DELAY: Final = 0.2
#: Linux socket option: deliver only multicast of groups this socket joined (not in Python 3.11).
_IP_MULTICAST_ALL: Final = getattr(socket, "IP_MULTICAST_ALL", 49)
_RECV_TIMEOUT: Final = 0.05
_RECV_BUFFER: Final = 1024
_PROBE_TIMEOUT: Final = 1.0
_PROBE_MAX_MESSAGE: Final = 64 * 1024


def placeholder_name(host_id: bytes) -> str:
    """Name reported for a host whose canonical name could not be learned."""
    return f"chirp-{host_id.hex()[:8]}"


def _multicast_addresses() -> list[str]:
    """IPv4 addresses of interfaces that are up and multicast-capable."""
    stats = psutil.net_if_stats()
    result = []
    for name, ips in local_ipv4_addresses().items():
        flags = getattr(stats.get(name), "flags", "multicast")
        if "multicast" in flags.split(","):
            result.extend(ips)
    return result


def chirp_addresses(scope: NetworkScope) -> list[str]:
    """Interface addresses CHIRP joins and sends on: 127.0.0.1 first, then the scope's others.

    Every loopback address stands for ``lo`` and collapses into 127.0.0.1; an unrestricted scope
    means every interface that is up and has the MULTICAST flag.
    """
    candidates = list(scope.addresses) if scope.addresses is not None else _multicast_addresses()
    result = [LOOPBACK]
    for ip in candidates:
        if not ipaddress.IPv4Address(ip).is_loopback and ip not in result:
            result.append(ip)
    return result


def _open_receiver(addresses: list[str]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError):  # only groups joined on our interfaces
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        sock.bind(("0.0.0.0", CHIRP_PORT))
        group = socket.inet_aton(CHIRP_MULTICAST_ADDRESS)
        for ip in addresses:
            try:
                membership = group + socket.inet_aton(ip)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            except OSError as exc:
                if ip == LOOPBACK:
                    raise
                # EADDRINUSE: a second address of an interface that already joined
                level = logging.DEBUG if exc.errno == errno.EADDRINUSE else logging.WARNING
                log.log(level, "CHIRP: cannot join %s on %s: %s", CHIRP_MULTICAST_ADDRESS, ip, exc)
    except OSError as exc:
        sock.close()
        raise DiscoveryError(f"CHIRP: cannot listen on UDP port {CHIRP_PORT}: {exc}") from exc
    return sock


def _open_sender(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
        loop = 1 if address == LOOPBACK else 0
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, loop)
        sock.bind((address, 0))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Entry:
    """One discovered service: where it is and what was reported for it (None = held back)."""

    address: str
    port: int
    reported: DiscoveredService | None = None


_Action = tuple[bool, DiscoveredService]  # (added?, service)


class ChirpDiscovery(Discovery):
    """Discovery backend speaking CHIRP v1 (docs/protocols.md#chirp-v1-discovery-beacons)."""

    def __init__(
        self,
        group: str,
        name: str,
        scope: NetworkScope,
        *,
        resolve_names: bool = True,
        name_timeout: float = 3.0,
    ) -> None:
        super().__init__(group, name, scope)
        self._group_id = name_id(group)
        self._host_id = name_id(name)
        self._namesake: list[str] | None = None  # set while find_namesake() looks
        self._namesake_found = threading.Event()
        self._loopback_only = scope.loopback_only
        self._emit_lock = threading.RLock()  # taken before self._lock; keeps events in order
        self._send_lock = threading.Lock()
        self._offers: dict[ServiceId, int] = {}
        self._browsing: set[ServiceId] = set()
        self._table: dict[tuple[bytes, ServiceId], _Entry] = {}
        self._names: dict[bytes, str] = {}
        self._pending: dict[bytes, float] = {}  # host id -> monotonic time first seen
        self._gave_up: set[bytes] = set()
        self._replies: list[tuple[float, ServiceId]] = []  # heap of delayed OFFERs
        self._bad_input = RateLimitedWarning(log)
        self._socket_trouble = RateLimitedWarning(log)
        self._stopping = threading.Event()
        self._closed = False
        self.addresses = chirp_addresses(scope)
        self._rx = _open_receiver(self.addresses)
        self._tx: list[socket.socket] = []
        try:
            for ip in self.addresses:
                try:
                    self._tx.append(_open_sender(ip))
                except OSError as exc:
                    if ip == LOOPBACK:
                        raise DiscoveryError(f"CHIRP: cannot send on {ip}: {exc}") from exc
                    log.warning("CHIRP: cannot send on %s: %s", ip, exc)
        except DiscoveryError:
            self._close_sockets()
            raise
        self._resolver = _NameResolver(self, name_timeout) if resolve_names else None
        self._thread = threading.Thread(
            target=self._receive_loop, name=f"chirp-{name}", daemon=True
        )
        self._thread.start()

    # --- announcing ------------------------------------------------------------------------
    def announce(self, service: ServiceId, port: int) -> None:
        with self._lock:
            if self._closed:
                return
            self._offers[service] = port
        self._send(ChirpType.OFFER, service, port)
        log.debug("offered %s on port %d via CHIRP", service.name, port)

    def withdraw(self, service: ServiceId) -> None:
        with self._lock:
            port = self._offers.pop(service, None)
        if port is not None:
            self._send(ChirpType.DEPART, service, port)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            offers = list(self._offers.items())
            self._offers.clear()
        for service, port in offers:
            self._send(ChirpType.DEPART, service, port)
        self._stopping.set()
        if self._resolver is not None:
            self._resolver.stop()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self._close_sockets()

    def _close_sockets(self) -> None:
        with self._send_lock:
            for sock in self._tx:
                sock.close()
            self._tx.clear()
        self._rx.close()

    # --- browsing --------------------------------------------------------------------------
    def add_listener(self, services: Iterable[ServiceId], listener: DiscoveryListener) -> None:
        with self._emit_lock:  # no event may overtake the replay of known services
            super().add_listener(services, listener)

    def _start_browsing(self, services: frozenset[ServiceId]) -> None:
        with self._lock:
            new = services - self._browsing
            self._browsing |= new
        for service in sorted(new):
            self.request(service)

    def request(self, service: ServiceId) -> None:
        """Multicast a REQUEST: every peer offering ``service`` answers with an OFFER."""
        self._send(ChirpType.REQUEST, service, 0)

    # --- names -----------------------------------------------------------------------------
    def learn_name(self, name: str) -> bool:
        """Tell the backend a canonical name (from mDNS, heartbeats, CSCP...).

        The name is matched to a host by its MD5; services of that host held back or reported
        under a placeholder are (re-)reported under it. Returns True if the name was new.
        """
        host = name_id(name)
        if host == self._host_id:
            return False
        actions: list[_Action] = []
        with self._emit_lock:
            with self._lock:
                old = self._names.get(host)
                if old is not None and old.lower() == name.lower():
                    return False
                self._names[host] = name
                self._pending.pop(host, None)
                self._gave_up.discard(host)
                for (peer, service), entry in self._table.items():
                    if peer == host:
                        self._report(entry, service, name, actions)
            self._apply(actions)
        log.debug("CHIRP host %s is %s", host.hex()[:8], name)
        return True

    def name_of(self, host_id: bytes) -> str | None:
        """The canonical name learned for ``host_id`` (None while unknown)."""
        with self._lock:
            return self._names.get(host_id)

    @property
    def dropped_malformed(self) -> int:
        """How many malformed datagrams were received and dropped so far."""
        return self._bad_input.total

    def _report(self, entry: _Entry, service: ServiceId, name: str, actions: list[_Action]) -> None:
        if entry.reported is not None:
            if entry.reported.name == name:
                return
            actions.append((False, entry.reported))
        entry.reported = DiscoveredService(self.group, name, service, entry.address, entry.port)
        actions.append((True, entry.reported))

    def _apply(self, actions: list[_Action]) -> None:
        for added, service in actions:
            if added:
                self._service_added(service)
            else:
                self._service_removed(service.name, service.service)

    def _give_up(self, host: bytes) -> None:
        """Report a host whose name could not be learned in time under a placeholder name."""
        actions: list[_Action] = []
        with self._emit_lock:
            with self._lock:
                if self._pending.pop(host, None) is None:
                    return
                self._gave_up.add(host)
                name = placeholder_name(host)
                for (peer, service), entry in self._table.items():
                    if peer == host:
                        self._report(entry, service, name, actions)
            self._apply(actions)
        log.info("CHIRP: name of host %s not learned in time; reported as %s", host.hex(), name)

    def _unresolved(self) -> dict[bytes, tuple[float, dict[ServiceId, str]]]:
        """Hosts waiting for a name: first-seen time and their service endpoints."""
        with self._lock:
            result: dict[bytes, tuple[float, dict[ServiceId, str]]] = {
                host: (since, {}) for host, since in self._pending.items()
            }
            for (host, service), entry in self._table.items():
                if host in result:
                    result[host][1][service] = f"tcp://{entry.address}:{entry.port}"
            return result

    # --- sending ---------------------------------------------------------------------------
    def _send(self, msg_type: ChirpType, service: ServiceId, port: int) -> None:
        data = ChirpBeacon(msg_type, self._group_id, self._host_id, service, port).encode()
        with self._send_lock:
            for sock in self._tx:
                try:
                    sock.sendto(data, (CHIRP_MULTICAST_ADDRESS, CHIRP_PORT))
                except OSError as exc:
                    self._socket_trouble("CHIRP: sending %s failed: %s", msg_type.name, exc)

    def _send_due_replies(self) -> float:
        """Send the delayed OFFERs that are due; returns the time until the next one."""
        now = time.monotonic()
        due: list[ServiceId] = []
        with self._lock:
            while self._replies and self._replies[0][0] <= now:
                due.append(heapq.heappop(self._replies)[1])
            wait = self._replies[0][0] - now if self._replies else _RECV_TIMEOUT
            offers = {s: self._offers[s] for s in due if s in self._offers}
        for service, port in offers.items():
            self._send(ChirpType.OFFER, service, port)
            log.debug("CHIRP: answered a REQUEST with an OFFER of %s (port %d)", service.name, port)
        return min(_RECV_TIMEOUT, wait)

    # --- receiving -------------------------------------------------------------------------
    def _receive_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._rx.settimeout(max(0.001, self._send_due_replies()))
                data, source = self._rx.recvfrom(_RECV_BUFFER)
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    return
                self._socket_trouble("CHIRP: receiving failed: %s", exc)
                self._stopping.wait(_RECV_TIMEOUT)
                continue
            try:
                self._on_datagram(data, source[0])
            except Exception:  # a bad beacon must never end the thread
                log.exception("CHIRP: failed to handle a beacon from %s", source[0])

    def _on_datagram(self, data: bytes, address: str) -> None:
        try:
            beacon = ChirpBeacon.decode(data)
        except DecodeError as exc:
            self._bad_input("malformed CHIRP datagram from %s dropped: %s", address, exc)
            return
        if beacon.group_id != self._group_id:
            return
        if beacon.host_id == self._host_id:
            self._on_own_id(beacon, address)
            return
        if self._loopback_only and not ipaddress.IPv4Address(address).is_loopback:
            return
        if beacon.msg_type is ChirpType.REQUEST:
            self._on_request(beacon.service)
        elif beacon.msg_type is ChirpType.OFFER:
            self._on_offer(beacon.host_id, beacon.service, address, beacon.port)
        else:
            self._on_depart(beacon.host_id, beacon.service)

    def _on_own_id(self, beacon: ChirpBeacon, address: str) -> None:
        """A beacon with our name's id: ours, or a namesake's (another process, same name).

        A REQUEST is answered even so: a namesake asks before it starts whether the name is
        taken (an answer to our own request only repeats our offers). An OFFER of control is
        a namesake's while we look for one and offer nothing ourselves.
        """
        if beacon.msg_type is ChirpType.REQUEST:
            self._on_request(beacon.service)
            return
        watch = self._namesake
        offer = beacon.msg_type is ChirpType.OFFER and beacon.service is ServiceId.CONTROL
        if watch is not None and offer and not self._offers:
            watch.append(f"tcp://{address}:{beacon.port}")
            self._namesake_found.set()

    def find_namesake(self, timeout: float) -> str | None:
        """Ask for control services; an OFFER under our own name's id is a namesake's."""
        if timeout <= 0:
            return None
        found: list[str] = []
        self._namesake_found.clear()
        self._namesake = found
        try:
            self.request(ServiceId.CONTROL)
            self._namesake_found.wait(timeout)
        finally:
            self._namesake = None
        return found[0] if found else None

    def _on_request(self, service: ServiceId) -> None:
        with self._lock:
            offered = service in self._offers
            queued = any(s == service for _, s in self._replies)
            if offered and not queued:
                due = time.monotonic() + random.uniform(0.0, REPLY_MAX_DELAY)
                heapq.heappush(self._replies, (due, service))
        log.debug(
            "CHIRP REQUEST for %s (offered %s, reply queued %s)", service.name, offered, queued
        )

    def _on_offer(self, host: bytes, service: ServiceId, address: str, port: int) -> None:
        actions: list[_Action] = []
        wake = False
        with self._emit_lock:
            with self._lock:
                old = self._table.get((host, service))
                if old is not None and old.port == port:
                    return
                if old is not None and old.reported is not None:
                    actions.append((False, old.reported))
                entry = self._table[(host, service)] = _Entry(address, port)
                name = self._names.get(host)
                if name is None and (host in self._gave_up or self._resolver is None):
                    name = placeholder_name(host)
                if name is not None:
                    self._report(entry, service, name, actions)
                elif host not in self._pending:
                    self._pending[host] = time.monotonic()
                    wake = True
                elif service in _Probe.KINDS:
                    wake = True
            self._apply(actions)
        if wake and self._resolver is not None:
            self._resolver.wake()

    def _on_depart(self, host: bytes, service: ServiceId) -> None:
        with self._emit_lock:
            with self._lock:
                entry = self._table.pop((host, service), None)
                if entry is None:
                    return
                if not any(peer == host for peer, _ in self._table):
                    self._pending.pop(host, None)
                    self._gave_up.discard(host)
            if entry.reported is not None:
                self._apply([(False, entry.reported)])


class _Probe:
    """One attempt to read a peer's canonical name from one of its services (resolver thread)."""

    KINDS: Final = (ServiceId.CONTROL, ServiceId.HEARTBEAT, ServiceId.MONITORING)

    def __init__(self, context: zmq.Context[Any], service: ServiceId, endpoint: str, own: str):
        self.service = service
        self.started = time.monotonic()
        self.answered = False
        kind = zmq.REQ if service is ServiceId.CONTROL else zmq.SUB
        self.sock: zmq.Socket[Any] = context.socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, _PROBE_MAX_MESSAGE)
        if service is ServiceId.HEARTBEAT:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        elif service is ServiceId.MONITORING:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"LOG?")  # answered with a notification
        self.sock.connect(endpoint)
        if service is ServiceId.CONTROL:
            request = CSCP1Message(own, CSCPType.REQUEST, "get_name")
            self.sock.send_multipart(request.encode())

    @property
    def expired(self) -> bool:
        """A request without reply is given up (and retried later); subscriptions are kept."""
        return self.service is ServiceId.CONTROL and time.monotonic() - self.started > (
            _PROBE_TIMEOUT
        )

    def names(self) -> list[str]:
        """Candidate names in the messages received so far."""
        found: list[str] = []
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return found
            if self.service is ServiceId.CONTROL:  # a REQ socket takes exactly one reply
                self.answered = True
            with contextlib.suppress(DecodeError):
                if self.service is ServiceId.CONTROL:
                    reply = CSCP1Message.decode(frames)
                    if reply.msg_type is CSCPType.SUCCESS:
                        found.append(reply.verb)
                    found.append(reply.sender)
                elif self.service is ServiceId.HEARTBEAT:
                    found.append(CHP1Message.decode(frames).sender)
                else:
                    found.append(decode_cmdp1(frames).sender)
            if self.answered:
                return found

    def close(self) -> None:
        self.sock.close(linger=0)


class _NameResolver:
    """Thread that learns the canonical names behind the host ids of a :class:`ChirpDiscovery`."""

    def __init__(self, owner: ChirpDiscovery, timeout: float) -> None:
        self._owner = owner
        self._timeout = timeout
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._retry_after: dict[tuple[bytes, str], float] = {}
        self._thread = threading.Thread(
            target=self._run, name=f"chirp-names-{owner.name}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _run(self) -> None:
        context: zmq.Context[Any] = zmq.Context()
        probes: dict[tuple[bytes, str], _Probe] = {}
        try:
            while not self._stop.is_set():
                self._wakeup.clear()
                try:
                    wait = self._step(context, probes)
                    if probes:
                        self._read(probes, wait)
                        continue
                except Exception:  # never let the resolver die; back off and go on
                    log.exception("CHIRP name resolver step failed")
                    wait = _PROBE_TIMEOUT
                self._wakeup.wait(wait)
        finally:
            for probe in probes.values():
                probe.close()
            context.term()

    def _step(self, context: zmq.Context[Any], probes: dict[tuple[bytes, str], _Probe]) -> float:
        """Expire hosts, drop stale probes, open new ones; returns the longest wait allowed."""
        now = time.monotonic()
        work = {}
        for host, (since, services) in self._owner._unresolved().items():
            if now - since >= self._timeout:
                self._owner._give_up(host)
            else:
                work[host] = (since, services)
        for key in list(probes):
            host, endpoint = key
            if probes[key].expired:
                self._retry_after[key] = now + _PROBE_TIMEOUT
            elif host in work and endpoint in work[host][1].values():
                continue
            probes.pop(key).close()
        self._retry_after = {k: t for k, t in self._retry_after.items() if t > now}
        for host, (_, services) in work.items():
            for service in _Probe.KINDS:
                target = services.get(service)
                if target is None:
                    continue
                key = (host, target)
                if key in probes or key in self._retry_after:
                    continue
                try:
                    probes[key] = _Probe(context, service, target, self._owner.name)
                except zmq.ZMQError as exc:
                    log.debug("CHIRP: cannot probe %s for a name: %s", target, exc)
                    self._retry_after[key] = now + _PROBE_TIMEOUT
        deadlines = [since + self._timeout - now for since, _ in work.values()]
        if work:
            deadlines.extend(t - now for t in self._retry_after.values())
        return max(0.001, min([_RECV_TIMEOUT if probes else 3600.0, *deadlines]))

    def _read(self, probes: dict[tuple[bytes, str], _Probe], wait: float) -> None:
        poller = zmq.Poller()
        for probe in probes.values():
            poller.register(probe.sock, zmq.POLLIN)
        ready = dict(poller.poll(int(wait * 1000) + 1))
        for key, probe in list(probes.items()):
            if probe.sock not in ready:
                continue
            try:
                names = probe.names()
            except zmq.ZMQError as exc:
                log.debug("CHIRP name probe of %s failed: %s", key[1], exc)
                names = []
                probe.answered = True
            matching = [name for name in names if name_id(name) == key[0]]
            if matching:
                self._owner.learn_name(matching[0])
            elif probe.answered:  # answered, but not with its name: ask again later
                probes.pop(key).close()
                self._retry_after[key] = time.monotonic() + _PROBE_TIMEOUT
