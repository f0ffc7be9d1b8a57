"""Pure: what discovery reports — a service of a peer (who, which service, where) and its events.

Shared by the I/O discovery implementations (``net/``) and the pure CHIRP table
(``core/chirp_table``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from constellation.protocol.chirp import ServiceId

__all__ = ["DiscoveredService", "DiscoveryEvent"]


class DiscoveryEvent(Enum):
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True)
class DiscoveredService:
    """One service of a peer: who offers it and where to connect."""

    group: str
    name: str
    service: ServiceId
    address: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.address}:{self.port}"

    @property
    def key(self) -> tuple[str, ServiceId]:
        return (self.name.lower(), self.service)
