"""I/O layer: discovery over mDNS / DNS-SD with python-zeroconf (the default backend).

Each service is one DNS-SD instance of a type per protocol (see ``SERVICE_TYPES``). The instance
name is derived from the canonical name and a hash of the group, so it is unique per group; the
TXT record carries the exact ``group`` and ``name`` (compared case-insensitively). Restricting the
scope to addresses restricts both the multicast traffic and the announced addresses.

Browser callbacks only queue the change: resolving an instance may take up to 3 s, and it
happens in worker threads of our own (``cnstln-mdns-resolve-N``), several at once (an instance
that no longer answers holds up one of them for the whole timeout, not the others), so that
zeroconf's browser thread is never held up. A removal seen while its instance is still being
resolved wins: each name has a generation, and a resolve of an older one is discarded.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import socket
import threading
import time
from typing import Any

from zeroconf import (
    InterfaceChoice,
    IPVersion,
    ServiceBrowser,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)

from constellation import __version__
from constellation.errors import DiscoveryError
from constellation.net.discovery import DiscoveredService, Discovery, ServiceId
from constellation.net.interfaces import NetworkScope, choose_address

__all__ = ["SERVICE_TYPES", "MdnsDiscovery", "instance_name", "txt_properties"]

log = logging.getLogger("constellation.net.mdns")

#: DNS-SD service type per Constellation service.
SERVICE_TYPES: dict[ServiceId, str] = {
    ServiceId.CONTROL: "_cnstln-cscp._tcp.local.",
    ServiceId.HEARTBEAT: "_cnstln-chp._tcp.local.",
    ServiceId.MONITORING: "_cnstln-cmdp._tcp.local.",
    ServiceId.DATA: "_cnstln-cdtp._tcp.local.",
}
_TYPE_TO_SERVICE = {v: k for k, v in SERVICE_TYPES.items()}
_RESOLVE_TIMEOUT_MS = 3000
#: Browser changes waiting to be resolved; beyond this many, new ones are dropped (and logged).
_MAX_PENDING_CHANGES = 10_000
_STOP = None
#: Resolver threads per discovery instance.
_RESOLVERS = 4


def txt_properties(info: ServiceInfo) -> dict[str, str]:
    """A resolved instance's TXT record as text (undecodable bytes replaced, no value -> "")."""
    return {
        k.decode(errors="replace"): (v or b"").decode(errors="replace")
        for k, v in info.properties.items()
    }


def instance_name(group: str, name: str) -> str:
    """DNS-SD instance label for ``name`` in ``group`` (at most 63 bytes)."""
    digest = hashlib.md5(f"{group.lower()}/{name.lower()}".encode()).hexdigest()[:8]
    return f"{name.replace('.', '-')[:50]}-{digest}"


class MdnsDiscovery(Discovery):
    """Discovery backend on zeroconf."""

    def __init__(self, group: str, name: str, scope: NetworkScope) -> None:
        super().__init__(group, name, scope)
        interfaces: Any = list(scope.addresses) if scope.addresses else InterfaceChoice.All
        self._zc = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        self._infos: dict[ServiceId, ServiceInfo] = {}
        self._extra: list[ServiceInfo] = []  # services of other types (announce_type)
        self._browsers: dict[ServiceId, ServiceBrowser] = {}
        self._resolved: dict[str, tuple[str, ServiceId]] = {}
        self._closed = False
        self._closing = False
        self._changes: queue.Queue[tuple[str, str, ServiceStateChange] | None] = queue.Queue(
            _MAX_PENDING_CHANGES
        )
        # Per instance name: the number of the last change queued (taken in zeroconf's order)
        # and of the last one applied; resolvers run in parallel, so an older change that
        # finishes after a newer one was applied is dropped (a re-announce's Removed then
        # Added must not end with the instance removed).
        self._queued: dict[str, int] = {}
        self._applied: dict[str, int] = {}
        self._resolved_lock = threading.Lock()
        self._resolvers = [
            threading.Thread(
                target=self._resolve_changes, name=f"cnstln-mdns-resolve-{i}", daemon=True
            )
            for i in range(_RESOLVERS)
        ]
        for thread in self._resolvers:
            thread.start()

    def find_namesake(self, timeout: float) -> str | None:
        """Ask for our own control instance: an answer comes from a namesake."""
        if timeout <= 0:
            return None
        type_ = SERVICE_TYPES[ServiceId.CONTROL]
        name = f"{instance_name(self.group, self.name)}.{type_}"
        info = self._zc.get_service_info(type_, name, timeout=int(timeout * 1000))
        if info is None or not info.port:
            return None
        addresses = info.parsed_addresses(IPVersion.V4Only)
        return f"tcp://{addresses[0] if addresses else '?'}:{info.port}"

    # --- announcing ------------------------------------------------------------------------
    def _info(self, type_: str, port: int, properties: dict[str, str]) -> ServiceInfo:
        """Our DNS-SD instance of ``type_``: ``group`` and ``name`` always in its TXT record."""
        label = instance_name(self.group, self.name)
        host = hashlib.md5(f"{self.group}/{self.name}".lower().encode()).hexdigest()[:12]
        return ServiceInfo(
            type_,
            f"{label}.{type_}",
            port=port,
            addresses=[socket.inet_aton(a) for a in self.scope.announced_addresses()],
            properties={"group": self.group, "name": self.name, **properties},
            server=f"cnstln-{host}.local.",
        )

    def _register(self, info: ServiceInfo, what: str) -> None:
        # Names are unique per group by construction, so probing is skipped (saves ~1.5 s).
        loop = self._zc.loop
        if loop is None:
            raise DiscoveryError(f"cannot announce {what}: mDNS is not running")
        future = asyncio.run_coroutine_threadsafe(
            self._zc.async_register_service(info, cooperating_responders=True), loop
        )
        future.result(timeout=10)

    def announce(self, service: ServiceId, port: int) -> None:
        info = self._info(SERVICE_TYPES[service], port, {"version": __version__})
        with self._lock:
            old = self._infos.pop(service, None)
        if old is not None:
            self._zc.unregister_service(old)
        self._register(info, service.name)
        with self._lock:
            self._infos[service] = info
        log.debug("announced %s on port %d via mDNS", service.name, port)

    def announce_type(self, type_: str, port: int, properties: dict[str, str]) -> None:
        """Offer a service of another DNS-SD type (e.g. the live data service of a receiver),
        with ``group`` and ``name`` in its TXT record like ours; withdrawn by :meth:`close`."""
        info = self._info(type_, port, properties)
        self._register(info, type_)
        with self._lock:
            self._extra.append(info)

    def withdraw(self, service: ServiceId) -> None:
        with self._lock:
            info = self._infos.pop(service, None)
        if info is not None and not self._closed:
            self._zc.unregister_service(info)

    def close(self) -> None:
        if self._closed:
            return
        self._closing = True  # queued browser callbacks return at once from now on
        for browser in list(self._browsers.values()):
            browser.cancel()
        with self._lock:
            infos = list(self._infos.values()) + self._extra
            self._infos.clear()
            self._extra = []
        for info in infos:
            try:
                self._zc.unregister_service(info)
            except Exception:  # closing anyway
                log.debug("could not withdraw %s", info.name, exc_info=True)
        self._closed = True
        for _ in self._resolvers:  # blocks only while the queue is full, and it is draining
            self._changes.put(_STOP)
        self._zc.close()
        # A resolver inside get_service_info may wait out its timeout even after zeroconf
        # closed (seen under load): give it that long, so no thread outlives close().
        deadline = time.monotonic() + _RESOLVE_TIMEOUT_MS / 1000 + 1.0
        for thread in self._resolvers:  # an unfinished resolve is ignored (closing)
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    # --- browsing --------------------------------------------------------------------------
    def _start_browsing(self, services: frozenset[ServiceId]) -> None:
        for service in services:
            with self._lock:
                if service in self._browsers or self._closed:
                    continue
                self._browsers[service] = ServiceBrowser(
                    self._zc, SERVICE_TYPES[service], handlers=[self._on_change]
                )

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """Zeroconf's browser thread: queue the change for the resolver thread, never block."""
        if self._closing or service_type not in _TYPE_TO_SERVICE:
            return
        with self._resolved_lock:
            number = self._queued[name] = self._queued.get(name, 0) + 1
        try:
            self._changes.put_nowait((service_type, name, state_change, number))
        except queue.Full:
            log.warning("mDNS change of %s dropped: %d changes wait", name, _MAX_PENDING_CHANGES)

    def _resolve_changes(self) -> None:
        while (change := self._changes.get()) is not _STOP:
            if self._closing:
                continue
            try:
                self._apply_change(*change)
            except Exception:
                if not self._closing:  # resolving while zeroconf closes may fail: ignored
                    log.exception("mDNS change of %s could not be handled", change[1])

    def _take_turn(self, name: str, number: int) -> bool:
        """Under ``_resolved_lock``: True (and recorded) if change ``number`` of ``name`` is newer
        than every change of it applied so far."""
        if number <= self._applied.get(name, 0):
            return False
        self._applied[name] = number
        return True

    def _apply_change(
        self, service_type: str, name: str, state_change: ServiceStateChange, number: int
    ) -> None:
        service = _TYPE_TO_SERVICE[service_type]
        if state_change is ServiceStateChange.Removed:
            with self._resolved_lock:
                if not self._take_turn(name, number):
                    return  # a newer change of this instance was applied already
                found = self._resolved.pop(name, None)
            if found is not None:
                self._service_removed(found[0], found[1])
            return
        info = self._zc.get_service_info(service_type, name, timeout=_RESOLVE_TIMEOUT_MS)
        if info is None or info.port is None or self._closing:
            log.debug("could not resolve %s", name)
            return
        props = txt_properties(info)
        group, peer = props.get("group", ""), props.get("name", "")
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not peer or not addresses or group.lower() != self.group.lower():
            # Only instances of our group may be remembered: a goodbye of another group's
            # satellite of the same name must not remove ours (names are unique per group).
            return
        with self._resolved_lock:
            if not self._take_turn(name, number):
                return  # removed or changed again while it was being resolved
            self._resolved[name] = (peer, service)
        self._service_added(
            DiscoveredService(group, peer, service, choose_address(addresses), info.port)
        )
