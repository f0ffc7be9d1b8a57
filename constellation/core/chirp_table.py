"""CHIRP host and service table: what the beacons of a group mean, without sockets or threads.

Layer: ``core`` (pure logic). :class:`ChirpTable` is fed decoded beacon facts and learned names,
with the time passed in (seconds of a monotonic clock), and answers with the discovery events
to emit (:data:`Action`: added or removed, and the service). It decides:

* own offers, and which REQUESTs get a delayed OFFER in reply (at most one queued per kind);
* the services of other hosts, keyed by (host id, service id): a repeated OFFER with the same
  port is ignored, another port replaces the service (removed, then added);
* names: a beacon names its sender only by the MD5 of its canonical name, so a host's services
  are held back until its name is learned; after the resolver gives up they are reported under
  :func:`placeholder_name`; learning the real name later re-reports them under it;
* departures: a DEPART removes a service; a host without services is forgotten.

Which sender ids count as our own or a namesake's, and the multicast I/O, are the caller's job
(``constellation.net.chirp``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from constellation.core.discovered import DiscoveredService
from constellation.protocol.chirp import ServiceId

__all__ = ["NAME_PROBE_KINDS", "Action", "ChirpTable", "Unresolved", "placeholder_name"]

#: (added?, service): one discovery event to emit, in order.
Action = tuple[bool, DiscoveredService]
#: Host id -> (first seen, service -> endpoint) of every host still waiting for its name.
Unresolved = dict[bytes, tuple[float, dict[ServiceId, str]]]
#: Services a name resolver can read a canonical name from.
NAME_PROBE_KINDS = (ServiceId.CONTROL, ServiceId.HEARTBEAT, ServiceId.MONITORING)


def placeholder_name(host_id: bytes) -> str:
    """Name reported for a host whose canonical name could not be learned."""
    return f"chirp-{host_id.hex()[:8]}"


@dataclass
class _Entry:
    """One discovered service: where it is and what was reported for it (None = held back)."""

    address: str
    port: int
    reported: DiscoveredService | None = None


class ChirpTable:
    """Own offers, delayed replies and the discovered services of one group (not thread-safe).

    With ``resolving`` False there is no name resolver: every host is reported at once under
    its placeholder name.
    """

    def __init__(self, group: str, *, resolving: bool = True) -> None:
        self.group = group
        self.resolving = resolving
        self.offers: dict[ServiceId, int] = {}
        self._entries: dict[tuple[bytes, ServiceId], _Entry] = {}
        self._names: dict[bytes, str] = {}
        self._pending: dict[bytes, float] = {}  # host id -> time first seen
        self._gave_up: set[bytes] = set()
        self._replies: list[tuple[float, ServiceId]] = []  # heap of delayed OFFERs

    # --- own offers ------------------------------------------------------------------------
    def offer(self, service: ServiceId, port: int) -> None:
        self.offers[service] = port

    def withdraw(self, service: ServiceId) -> int | None:
        """Stop offering ``service``; the port it was offered on (None if it was not)."""
        return self.offers.pop(service, None)

    def withdraw_all(self) -> list[tuple[ServiceId, int]]:
        offers = list(self.offers.items())
        self.offers.clear()
        return offers

    def on_request(self, service: ServiceId, due: float) -> bool:
        """A REQUEST for ``service``: queue an OFFER for time ``due`` if we offer it and none
        is queued yet; returns whether one is queued now."""
        if service not in self.offers:
            return False
        if not any(s == service for _, s in self._replies):
            heapq.heappush(self._replies, (due, service))
        return True

    def due_replies(self, now: float) -> tuple[list[tuple[ServiceId, int]], float | None]:
        """OFFERs due at ``now`` (of services still offered) and the time to the next one."""
        due: list[ServiceId] = []
        while self._replies and self._replies[0][0] <= now:
            due.append(heapq.heappop(self._replies)[1])
        wait = self._replies[0][0] - now if self._replies else None
        return [(s, self.offers[s]) for s in due if s in self.offers], wait

    # --- other hosts -----------------------------------------------------------------------
    def on_offer(
        self, host: bytes, service: ServiceId, address: str, port: int, now: float
    ) -> tuple[list[Action], bool]:
        """An OFFER: the events to emit, and whether the name resolver has new work."""
        actions: list[Action] = []
        old = self._entries.get((host, service))
        if old is not None and old.port == port:
            return actions, False
        if old is not None and old.reported is not None:
            actions.append((False, old.reported))
        entry = self._entries[(host, service)] = _Entry(address, port)
        name = self._names.get(host)
        if name is None and (host in self._gave_up or not self.resolving):
            name = placeholder_name(host)
        if name is not None:
            self._report(entry, service, name, actions)
            return actions, False
        if host not in self._pending:
            self._pending[host] = now
            return actions, True
        return actions, service in NAME_PROBE_KINDS

    def on_depart(self, host: bytes, service: ServiceId) -> list[Action]:
        entry = self._entries.pop((host, service), None)
        if entry is None:
            return []
        if not any(peer == host for peer, _ in self._entries):
            self._pending.pop(host, None)
            self._gave_up.discard(host)
        return [] if entry.reported is None else [(False, entry.reported)]

    def learn_name(self, host: bytes, name: str) -> list[Action] | None:
        """``name`` belongs to ``host``: (re-)report its services; None if already known."""
        old = self._names.get(host)
        if old is not None and old.lower() == name.lower():
            return None
        self._names[host] = name
        self._pending.pop(host, None)
        self._gave_up.discard(host)
        return self._report_host(host, name)

    def give_up(self, host: bytes) -> list[Action] | None:
        """The name of ``host`` was not learned in time: report it under its placeholder.
        None if the host no longer waits for a name."""
        if self._pending.pop(host, None) is None:
            return None
        self._gave_up.add(host)
        return self._report_host(host, placeholder_name(host))

    def name_of(self, host: bytes) -> str | None:
        return self._names.get(host)

    def unresolved(self) -> Unresolved:
        """Hosts waiting for a name: first-seen time and their service endpoints."""
        result: Unresolved = {host: (since, {}) for host, since in self._pending.items()}
        for (host, service), entry in self._entries.items():
            if host in result:
                result[host][1][service] = f"tcp://{entry.address}:{entry.port}"
        return result

    def reported(self) -> list[DiscoveredService]:
        """Every service currently reported (for tests and diagnostics)."""
        return [e.reported for e in self._entries.values() if e.reported is not None]

    # --- internals -------------------------------------------------------------------------
    def _report_host(self, host: bytes, name: str) -> list[Action]:
        actions: list[Action] = []
        for (peer, service), entry in self._entries.items():
            if peer == host:
                self._report(entry, service, name, actions)
        return actions

    def _report(self, entry: _Entry, service: ServiceId, name: str, actions: list[Action]) -> None:
        if entry.reported is not None:
            if entry.reported.name == name:
                return
            actions.append((False, entry.reported))
        entry.reported = DiscoveredService(self.group, name, service, entry.address, entry.port)
        actions.append((True, entry.reported))
