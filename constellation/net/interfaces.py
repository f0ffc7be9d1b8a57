"""I/O layer: which network interfaces and addresses a process uses.

Users name interfaces (``lo``, ``eth0``) or IPv4 addresses (``127.0.0.1``). The result decides
where sockets bind, which addresses discovery announces, and where mDNS/CHIRP traffic goes.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from constellation.errors import DiscoveryError

__all__ = ["NetworkScope", "choose_address", "local_ipv4_addresses", "resolve_interfaces"]


def local_ipv4_addresses() -> dict[str, list[str]]:
    """Interface name -> IPv4 addresses, for interfaces that are up."""
    stats = psutil.net_if_stats()
    result: dict[str, list[str]] = {}
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        ips = [a.address for a in addrs if a.family == socket.AF_INET]
        if ips:
            result[name] = ips
    return result


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def resolve_interfaces(interfaces: Iterable[str] | None) -> list[str] | None:
    """Turn interface names and IPv4 addresses into a list of IPv4 addresses.

    ``None`` (or an empty list) means all interfaces. Unknown names, and addresses that are not
    on this host, raise DiscoveryError.
    """
    wanted = [i for i in (interfaces or []) if i]
    if not wanted:
        return None
    by_name = local_ipv4_addresses()
    on_host = {ip for ips in by_name.values() for ip in ips}
    result: list[str] = []
    for item in wanted:
        if _is_ipv4(item):
            if item not in on_host and not item.startswith("127."):
                known = ", ".join(f"{n} {' '.join(a)}" for n, a in sorted(by_name.items()))
                raise DiscoveryError(f"address {item} is not on this host (known: {known})")
            ips = [item]
        elif item in by_name:
            ips = by_name[item]
        else:
            known = ", ".join(sorted(by_name))
            raise DiscoveryError(f"unknown network interface '{item}' (known: {known})")
        result.extend(ip for ip in ips if ip not in result)
    return result


@dataclass(frozen=True)
class NetworkScope:
    """The addresses one process binds to and announces (``None`` = all interfaces)."""

    addresses: tuple[str, ...] | None = None

    @classmethod
    def from_interfaces(cls, interfaces: Iterable[str] | None) -> NetworkScope:
        ips = resolve_interfaces(interfaces)
        return cls(tuple(ips) if ips else None)

    @property
    def loopback_only(self) -> bool:
        return self.addresses is not None and all(
            ipaddress.IPv4Address(a).is_loopback for a in self.addresses
        )

    def bind_hosts(self) -> list[str]:
        """Hosts for ``tcp://HOST:PORT`` binds."""
        return list(self.addresses) if self.addresses else ["*"]

    def announced_addresses(self) -> list[str]:
        """Addresses announced for our services: routable ones first, loopback last."""
        if self.addresses:
            return list(self.addresses)
        ips = [ip for ips in local_ipv4_addresses().values() for ip in ips]
        ips.sort(key=lambda ip: ipaddress.IPv4Address(ip).is_loopback)
        return ips or ["127.0.0.1"]


def choose_address(announced: Iterable[str]) -> str:
    """Pick the address to connect to from a peer's announced list.

    A peer on this host is reached over loopback; otherwise the first announced address wins.
    """
    announced = list(announced)
    if not announced:
        raise DiscoveryError("peer announced no address")
    mine = {ip for ips in local_ipv4_addresses().values() for ip in ips}
    local = [ip for ip in announced if ip in mine]
    if local:
        return "127.0.0.1" if "127.0.0.1" in local else local[0]
    return announced[0]
