"""I/O layer: discovery over CHIRP, the UDP multicast beacons of Constellation 1.x deployments.

Beacons (``constellation.protocol.chirp``) go to 239.192.7.123:7123, once per chosen interface;
loopback is always one of them. A service is offered when announced, offered again (after a
random 0-200 ms delay) when a peer requests its kind, and departs on withdraw/close. Discovered
services are keyed by (host id, service id). A beacon names its sender only by the MD5 of the
lower-cased canonical name, so a :class:`~constellation.net.chirp_names.NameResolver` learns the
real name by asking the peer. Names can also be fed in with :meth:`ChirpDiscovery.learn_name` (mDNS,
heartbeats). Events of a host are held back until its name is known; after ``name_timeout`` the
host is reported under a placeholder name (``chirp-<first 8 hex digits of the host id>``).

What the beacons mean is decided by the pure :class:`~constellation.core.chirp_table.ChirpTable`;
this module owns the sockets, the receiving thread and the locks. Sockets and addresses are in
``constellation.net.chirp_sockets``, the name resolver in ``constellation.net.chirp_names``.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import threading
import time
from collections.abc import Iterable
from typing import Final

from constellation.core.chirp_table import Action, ChirpTable, Unresolved, placeholder_name
from constellation.errors import DecodeError, DiscoveryError
from constellation.net.chirp_names import NameResolver
from constellation.net.chirp_sockets import (
    LOOPBACK,
    MULTICAST_TTL,
    chirp_addresses,
    open_receiver,
    open_sender,
)
from constellation.net.discovery import Discovery, DiscoveryListener, ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.net.ratelimit import RateLimitedWarning
from constellation.protocol.chirp import (
    CHIRP_MULTICAST_ADDRESS,
    CHIRP_PORT,
    ChirpBeacon,
    ChirpType,
    name_id,
)

__all__ = [
    "LOOPBACK",
    "MULTICAST_TTL",
    "REPLY_MAX_DELAY",
    "ChirpDiscovery",
    "chirp_addresses",
    "placeholder_name",
]

log = logging.getLogger("constellation.net.chirp")

#: Longest random delay before a REQUEST is answered (seconds).
REPLY_MAX_DELAY: Final = 0.2
_RECV_TIMEOUT: Final = 0.05
_RECV_BUFFER: Final = 1024


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
        self._browsing: set[ServiceId] = set()
        self._table = ChirpTable(group, resolving=resolve_names)
        self._bad_input = RateLimitedWarning(log)
        self._socket_trouble = RateLimitedWarning(log)
        self._stopping = threading.Event()
        self._closed = False
        self.addresses = chirp_addresses(scope)
        self._rx = open_receiver(self.addresses)
        self._tx: list[socket.socket] = []
        try:
            for ip in self.addresses:
                try:
                    self._tx.append(open_sender(ip))
                except OSError as exc:
                    if ip == LOOPBACK:
                        raise DiscoveryError(f"CHIRP: cannot send on {ip}: {exc}") from exc
                    log.warning("CHIRP: cannot send on %s: %s", ip, exc)
        except DiscoveryError:
            self._close_sockets()
            raise
        self._resolver = NameResolver(self, name_timeout) if resolve_names else None
        self._thread = threading.Thread(
            target=self._receive_loop, name=f"chirp-{name}", daemon=True
        )
        self._thread.start()

    # --- announcing ------------------------------------------------------------------------
    def announce(self, service: ServiceId, port: int) -> None:
        with self._lock:
            if self._closed:
                return
            self._table.offer(service, port)
        self._send(ChirpType.OFFER, service, port)
        log.debug("offered %s on port %d via CHIRP", service.name, port)

    def withdraw(self, service: ServiceId) -> None:
        with self._lock:
            port = self._table.withdraw(service)
        if port is not None:
            self._send(ChirpType.DEPART, service, port)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            offers = self._table.withdraw_all()
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
        with self._emit_lock:
            with self._lock:
                actions = self._table.learn_name(host, name)
            if actions is None:
                return False
            self._apply(actions)
        log.debug("CHIRP host %s is %s", host.hex()[:8], name)
        return True

    def name_of(self, host_id: bytes) -> str | None:
        """The canonical name learned for ``host_id`` (None while unknown)."""
        with self._lock:
            return self._table.name_of(host_id)

    @property
    def dropped_malformed(self) -> int:
        """How many malformed datagrams were received and dropped so far."""
        return self._bad_input.total

    def _apply(self, actions: list[Action]) -> None:
        for added, service in actions:
            if added:
                self._service_added(service)
            else:
                self._service_removed(service.name, service.service)

    def give_up(self, host: bytes) -> None:
        """Resolver thread: report a host whose name was not learned in time under a
        placeholder name."""
        with self._emit_lock:
            with self._lock:
                actions = self._table.give_up(host)
            if actions is None:
                return
            self._apply(actions)
        name = placeholder_name(host)
        log.info("CHIRP: name of host %s not learned in time; reported as %s", host.hex(), name)

    def unresolved(self) -> Unresolved:
        """Resolver thread: hosts waiting for a name, first-seen time and service endpoints."""
        with self._lock:
            return self._table.unresolved()

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
        with self._lock:
            offers, wait = self._table.due_replies(time.monotonic())
        for service, port in offers:
            self._send(ChirpType.OFFER, service, port)
            log.debug("CHIRP: answered a REQUEST with an OFFER of %s (port %d)", service.name, port)
        return _RECV_TIMEOUT if wait is None else min(_RECV_TIMEOUT, wait)

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
        if watch is not None and offer and not self._table.offers:
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
        due = time.monotonic() + random.uniform(0.0, REPLY_MAX_DELAY)
        with self._lock:
            queued = self._table.on_request(service, due)
        log.debug("CHIRP REQUEST for %s (reply queued %s)", service.name, queued)

    def _on_offer(self, host: bytes, service: ServiceId, address: str, port: int) -> None:
        with self._emit_lock:
            with self._lock:
                actions, wake = self._table.on_offer(host, service, address, port, time.monotonic())
            self._apply(actions)
        if wake and self._resolver is not None:
            self._resolver.wake()

    def _on_depart(self, host: bytes, service: ServiceId) -> None:
        with self._emit_lock:
            with self._lock:
                actions = self._table.on_depart(host, service)
            self._apply(actions)
