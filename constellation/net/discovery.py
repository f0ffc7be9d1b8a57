"""I/O layer: the discovery interface shared by the mDNS and CHIRP backends.

A backend announces this process's services (control, heartbeat, monitoring, data) under its
group and name, browses for the services of its group and reports them to listeners as
:class:`DiscoveredService` added/removed events. Listeners are called from a backend thread and
must hand work to their own thread quickly.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from constellation.core.discovered import DiscoveredService, DiscoveryEvent
from constellation.net.interfaces import NetworkScope
from constellation.protocol.chirp import ServiceId

__all__ = [
    "DiscoveredService",
    "Discovery",
    "DiscoveryEvent",
    "DiscoveryListener",
    "ServiceId",
    "make_discovery",
]

log = logging.getLogger("constellation.net.discovery")


DiscoveryListener = Callable[[DiscoveryEvent, DiscoveredService], None]


class Discovery(ABC):
    """Announce own services and browse for the services of one group."""

    def __init__(self, group: str, name: str, scope: NetworkScope) -> None:
        self.group = group
        self.name = name
        self.scope = scope
        self._lock = threading.RLock()
        self._known: dict[tuple[str, ServiceId], DiscoveredService] = {}
        self._listeners: list[tuple[frozenset[ServiceId], DiscoveryListener]] = []

    # --- announcing ------------------------------------------------------------------------
    @abstractmethod
    def announce(self, service: ServiceId, port: int) -> None:
        """Offer ``service`` on ``port`` to the group."""

    @abstractmethod
    def withdraw(self, service: ServiceId) -> None:
        """Stop offering ``service`` (peers see it depart)."""

    @abstractmethod
    def close(self) -> None:
        """Withdraw every service and stop browsing."""

    # --- browsing --------------------------------------------------------------------------
    def add_listener(self, services: Iterable[ServiceId], listener: DiscoveryListener) -> None:
        """Call ``listener`` for every known and future service of the given kinds."""
        wanted = frozenset(services)
        with self._lock:
            self._listeners.append((wanted, listener))
            current = [s for s in self._known.values() if s.service in wanted]
        self._start_browsing(wanted)
        for service in current:
            self._call(listener, DiscoveryEvent.ADDED, service)

    def remove_listener(self, listener: DiscoveryListener) -> None:
        with self._lock:
            self._listeners = [(s, cb) for s, cb in self._listeners if cb is not listener]

    def request(self, service: ServiceId) -> None:  # noqa: B027 - optional hook
        """Ask peers to announce ``service`` again (a no-op where the backend does it itself)."""

    def find_namesake(self, timeout: float) -> str | None:
        """Before announcing anything: the control endpoint of another process that already
        offers this group and name, if one answers within ``timeout`` s (else ``None``)."""
        return None

    def known(self, service: ServiceId | None = None) -> list[DiscoveredService]:
        with self._lock:
            return [s for s in self._known.values() if service is None or s.service == service]

    @abstractmethod
    def _start_browsing(self, services: frozenset[ServiceId]) -> None:
        """Make sure the given service kinds are being browsed."""

    # --- for backends ----------------------------------------------------------------------
    def _is_own(self, name: str) -> bool:
        return name.lower() == self.name.lower()

    def _service_added(self, service: DiscoveredService) -> None:
        if service.group.lower() != self.group.lower() or self._is_own(service.name):
            return
        with self._lock:
            old = self._known.get(service.key)
            if old == service:
                return
            self._known[service.key] = service
        if old is not None:
            self._emit(DiscoveryEvent.REMOVED, old)
        log.debug("discovered %s %s at %s", service.name, service.service.name, service.endpoint)
        self._emit(DiscoveryEvent.ADDED, service)

    def _service_removed(self, name: str, service_id: ServiceId) -> None:
        with self._lock:
            old = self._known.pop((name.lower(), service_id), None)
        if old is not None:
            log.debug("%s withdrew %s", old.name, service_id.name)
            self._emit(DiscoveryEvent.REMOVED, old)

    def _emit(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        with self._lock:
            listeners = [cb for wanted, cb in self._listeners if service.service in wanted]
        for listener in listeners:
            self._call(listener, event, service)

    @staticmethod
    def _call(listener: DiscoveryListener, event: DiscoveryEvent, svc: DiscoveredService) -> None:
        try:
            listener(event, svc)
        except Exception:
            log.exception("discovery listener failed for %s %s", svc.name, svc.service.name)


def make_discovery(kind: str, group: str, name: str, scope: NetworkScope) -> Discovery:
    """Build the discovery backend ``kind`` (``mdns``, ``chirp`` or ``both``)."""
    kind = kind.lower()
    if kind == "mdns":
        from constellation.net.mdns import MdnsDiscovery

        return MdnsDiscovery(group, name, scope)
    if kind == "chirp":
        from constellation.net.chirp import ChirpDiscovery

        return ChirpDiscovery(group, name, scope)
    if kind == "both":
        from constellation.net.combined import CombinedDiscovery

        return CombinedDiscovery(group, name, scope)
    raise ValueError(f"unknown discovery backend '{kind}' (use mdns, chirp or both)")
