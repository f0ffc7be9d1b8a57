"""I/O layer: the UDP sockets and interface addresses of CHIRP (multicast 239.192.7.123:7123).

Beacons go out once per chosen interface; loopback is always one of them. The receiver joins the
multicast group on every chosen interface and, on Linux, takes only groups it joined itself.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import sys
from typing import Final

import psutil

from constellation.errors import DiscoveryError
from constellation.net.interfaces import NetworkScope, local_ipv4_addresses
from constellation.protocol.chirp import CHIRP_MULTICAST_ADDRESS, CHIRP_PORT

__all__ = ["LOOPBACK", "MULTICAST_TTL", "chirp_addresses", "open_receiver", "open_sender"]

log = logging.getLogger("constellation.net.chirp")

LOOPBACK: Final = "127.0.0.1"
#: Time to live of sent beacons (as Constellation).
MULTICAST_TTL: Final = 8
#: Linux socket option: deliver only multicast of groups this socket joined (not in Python 3.11).
_IP_MULTICAST_ALL: Final = getattr(socket, "IP_MULTICAST_ALL", 49)


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


def open_receiver(addresses: list[str]) -> socket.socket:
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


def open_sender(address: str) -> socket.socket:
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
