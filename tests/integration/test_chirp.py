"""CHIRP discovery on loopback: beacons on the wire, the discovery table, names, "both" mode, e2e.

Every socket here is bound to or sends through 127.0.0.1 only. Injected datagrams use
IP_MULTICAST_IF=127.0.0.1 and TTL 0, so nothing leaves the host. Each test uses its own group;
beacons of one sender over ``lo`` arrive in order, so a final valid "barrier" beacon proves the
ones sent before it were received (and dropped) without sleeping.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq

from constellation.net.chirp import ChirpDiscovery, chirp_addresses, placeholder_name
from constellation.net.combined import CombinedDiscovery
from constellation.net.discovery import (
    DiscoveredService,
    Discovery,
    DiscoveryEvent,
    ServiceId,
    make_discovery,
)
from constellation.net.heartbeat import HeartbeatSender, HeartbeatState, HeartbeatTiming
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.protocol.chirp import ChirpBeacon, ChirpType, name_id
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from satellites.example import Example
from tests.chirp_guard import no_processes_of_theirs
from tests.conftest import FAST_SETTINGS
from tests.helpers import LOOPBACK, unique_group, wait_for

GROUP_ADDRESS = "239.192.7.123"
PORT = 7123
SCOPE = NetworkScope((LOOPBACK,))
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)

pytestmark = pytest.mark.timeout(60)


# --- helpers -------------------------------------------------------------------------------------
class Recorder:
    """Collects discovery events (called from backend threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[DiscoveryEvent, DiscoveredService]] = []

    def __call__(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        with self._lock:
            self.events.append((event, service))

    def find(
        self, event: DiscoveryEvent, name: str, service: ServiceId, port: int | None = None
    ) -> list[DiscoveredService]:
        with self._lock:
            return [
                s
                for e, s in self.events
                if e is event
                and s.name == name
                and s.service is service
                and (port is None or s.port == port)
            ]

    def names(self) -> set[str]:
        with self._lock:
            return {s.name for _, s in self.events}


class RawReceiver:
    """A plain socket on 0.0.0.0:7123 that joined the CHIRP group on loopback only."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with contextlib.suppress(OSError):  # Linux: only the group joined on loopback
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        self.sock.bind(("0.0.0.0", PORT))
        membership = socket.inet_aton(GROUP_ADDRESS) + socket.inet_aton(LOOPBACK)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        self.sock.settimeout(0.1)

    def expect(self, predicate: Callable[[bytes], bool], timeout: float = 5.0) -> tuple[bytes, str]:
        """The next datagram matching ``predicate`` (others are skipped)."""
        found: list[tuple[bytes, str]] = []

        def poll() -> bool:
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                return False
            if predicate(data):
                found.append((data, source[0]))
            return bool(found)

        wait_for(poll, timeout, interval=0, what="a matching CHIRP datagram")
        return found[0]

    def close(self) -> None:
        self.sock.close()


class LoopbackInjector:
    """Sends arbitrary datagrams to the CHIRP group through loopback only (TTL 0)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        self.sock.bind((LOOPBACK, 0))

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, (GROUP_ADDRESS, PORT))

    def beacon(
        self, msg_type: ChirpType, group: str, host: str, service: ServiceId, port: int = 0
    ) -> None:
        self.send(ChirpBeacon.for_names(msg_type, group, host, service, port).encode())

    def close(self) -> None:
        self.sock.close()


def md5(text: str) -> bytes:
    return hashlib.md5(text.lower().encode()).digest()


def expected_beacon(msg_type: int, group: str, host: str, service: int, port: int) -> bytes:
    """The layout of docs/protocols.md#chirp-v1-discovery-beacons, written out without the codec."""
    return (
        b"CHIRP"
        + bytes([1, msg_type])
        + md5(group)
        + md5(host)
        + bytes([service])
        + port.to_bytes(2, "big")
    )


def foreign_chirp_sockets() -> list[Any]:
    """UDP sockets on port 7123 of processes outside this test session (e.g. a running
    Constellation). The session is this process, or under ``pytest -n`` the controller that
    started this worker, with every descendant: our satellites, the other worker and its
    satellites, which drop garbage as tested here. Interop tests' Constellation processes are
    descendants too; :func:`no_processes_of_theirs` keeps them out while this test runs."""
    try:
        conns = psutil.net_connections(kind="udp4")
    except psutil.AccessDenied:  # cannot tell: assume the worst
        return [None]
    root = psutil.Process(os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid())
    session = {root.pid} | {p.pid for p in root.children(recursive=True)}
    return [c for c in conns if c.laddr and c.laddr.port == PORT and c.pid not in session]


@pytest.fixture
def chirp(group: str) -> Iterator[Callable[..., ChirpDiscovery]]:
    """Factory for loopback-only ChirpDiscovery instances, closed at teardown."""
    made: list[Discovery] = []

    def make(name: str, group_name: str | None = None, **kwargs: Any) -> ChirpDiscovery:
        disc = ChirpDiscovery(group_name or group, name, SCOPE, **kwargs)
        made.append(disc)
        return disc

    yield make
    for disc in made:
        disc.close()


@pytest.fixture
def raw() -> Iterator[RawReceiver]:
    receiver = RawReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def inject() -> Iterator[LoopbackInjector]:
    injector = LoopbackInjector()
    yield injector
    injector.close()


def no_leaked_threads(before: set[threading.Thread]) -> bool:
    return not [t for t in threading.enumerate() if t not in before and t.name.startswith("chirp")]


# --- interfaces ----------------------------------------------------------------------------------
def test_loopback_scope_uses_only_loopback() -> None:
    assert chirp_addresses(SCOPE) == [LOOPBACK]
    assert chirp_addresses(NetworkScope(("127.0.0.2",))) == [LOOPBACK]
    assert chirp_addresses(NetworkScope(("192.0.2.7",))) == [LOOPBACK, "192.0.2.7"]
    assert chirp_addresses(NetworkScope())[0] == LOOPBACK


def test_make_discovery_builds_chirp(group: str) -> None:
    disc = make_discovery("chirp", group, "Test.maker", SCOPE)
    try:
        assert isinstance(disc, ChirpDiscovery)
        assert disc.addresses == [LOOPBACK]
    finally:
        disc.close()


# --- discovery table -----------------------------------------------------------------------------
def test_two_instances_discover_each_other(chirp: Callable[..., ChirpDiscovery]) -> None:
    a, b = chirp("Test.a"), chirp("Test.b")
    for disc, peer in ((a, "Test.b"), (b, "Test.a")):
        disc.learn_name(peer)
    a.announce(ServiceId.CONTROL, 40001)  # before b browses: b's REQUEST brings it
    seen_a, seen_b = Recorder(), Recorder()
    b.add_listener(list(ServiceId), seen_b)
    a.add_listener(list(ServiceId), seen_a)
    b.announce(ServiceId.HEARTBEAT, 40011)  # after a browses: the OFFER brings it
    a.announce(ServiceId.DATA, 40002)

    wait_for(lambda: seen_b.find(DiscoveryEvent.ADDED, "Test.a", ServiceId.CONTROL, 40001))
    wait_for(lambda: seen_b.find(DiscoveryEvent.ADDED, "Test.a", ServiceId.DATA, 40002))
    wait_for(lambda: seen_a.find(DiscoveryEvent.ADDED, "Test.b", ServiceId.HEARTBEAT, 40011))
    control = seen_b.find(DiscoveryEvent.ADDED, "Test.a", ServiceId.CONTROL)[0]
    assert control.address == LOOPBACK
    assert control.endpoint == "tcp://127.0.0.1:40001"
    assert control.group == a.group
    assert {s.key for s in b.known()} == {("test.a", ServiceId.CONTROL), ("test.a", ServiceId.DATA)}
    assert seen_a.names() == {"Test.b"} and seen_b.names() == {"Test.a"}  # never themselves


def test_departures(chirp: Callable[..., ChirpDiscovery]) -> None:
    a, b = chirp("Test.a"), chirp("Test.b")
    b.learn_name("Test.a")
    seen = Recorder()
    b.add_listener(list(ServiceId), seen)
    a.announce(ServiceId.CONTROL, 40001)
    a.announce(ServiceId.MONITORING, 40003)
    wait_for(lambda: len(b.known()) == 2, what="both services")

    a.withdraw(ServiceId.CONTROL)
    wait_for(lambda: seen.find(DiscoveryEvent.REMOVED, "Test.a", ServiceId.CONTROL, 40001))
    assert b.known(ServiceId.MONITORING)
    a.close()  # DEPART for every remaining service
    wait_for(lambda: seen.find(DiscoveryEvent.REMOVED, "Test.a", ServiceId.MONITORING, 40003))
    assert b.known() == []


def test_new_port_replaces_the_old_service(chirp: Callable[..., ChirpDiscovery]) -> None:
    a, b = chirp("Test.a"), chirp("Test.b")
    b.learn_name("Test.a")
    seen = Recorder()
    b.add_listener([ServiceId.CONTROL], seen)
    a.announce(ServiceId.CONTROL, 40001)
    wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "Test.a", ServiceId.CONTROL, 40001))
    a.announce(ServiceId.CONTROL, 40009)
    wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "Test.a", ServiceId.CONTROL, 40009))
    kinds = [(e, s.port) for e, s in seen.events]
    assert kinds == [
        (DiscoveryEvent.ADDED, 40001),
        (DiscoveryEvent.REMOVED, 40001),
        (DiscoveryEvent.ADDED, 40009),
    ]
    assert [s.port for s in b.known()] == [40009]


def test_instances_share_the_port_and_all_receive(chirp: Callable[..., ChirpDiscovery]) -> None:
    a = chirp("Test.a")
    browsers = [chirp(f"Test.b{i}") for i in range(3)]
    recorders = []
    for browser in browsers:
        browser.learn_name("Test.a")
        recorders.append(Recorder())
        browser.add_listener([ServiceId.HEARTBEAT], recorders[-1])
    a.announce(ServiceId.HEARTBEAT, 40002)
    for seen in recorders:
        wait_for(partial(seen.find, DiscoveryEvent.ADDED, "Test.a", ServiceId.HEARTBEAT, 40002))


def test_other_groups_and_own_host_are_ignored(
    chirp: Callable[..., ChirpDiscovery], inject: LoopbackInjector, group: str
) -> None:
    b = chirp("Test.b")
    other = chirp("Test.o", group_name=unique_group())
    b.learn_name("Test.o")
    b.learn_name("Test.barrier")
    seen = Recorder()
    b.add_listener(list(ServiceId), seen)
    other.announce(ServiceId.CONTROL, 40001)  # same name-id space, other group
    inject.beacon(ChirpType.OFFER, group, "Test.b", ServiceId.CONTROL, 40002)  # "our" host id
    inject.beacon(ChirpType.OFFER, group.upper(), "Test.barrier", ServiceId.CONTROL, 40003)
    wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "Test.barrier", ServiceId.CONTROL, 40003))
    assert seen.names() == {"Test.barrier"}  # group ids are case-insensitive, the rest dropped


def test_malformed_datagrams_are_dropped(
    chirp: Callable[..., ChirpDiscovery], inject: LoopbackInjector, group: str
) -> None:
    with no_processes_of_theirs():
        foreign = foreign_chirp_sockets()
        if foreign:
            pytest.skip(
                f"processes outside this test session listen on UDP {PORT} (Constellation "
                f"1.0.2 satellites would go to ERROR on garbage): {foreign}"
            )
        b = chirp("Test.b")
        b.learn_name("Test.barrier")
        seen = Recorder()
        b.add_listener(list(ServiceId), seen)
        good = ChirpBeacon.for_names(
            ChirpType.OFFER, group, "Test.x", ServiceId.CONTROL, 1
        ).encode()
        garbage = [
            b"",
            b"CHIRP",
            good[:41],
            good + b"\x00",
            b"\xff" * 42,
            b"CHIRQ" + good[5:],
            good[:5] + b"\x02" + good[6:],  # version 2
            good[:6] + b"\x00" + good[7:],  # type 0
            good[:6] + b"\x04" + good[7:],  # type 4
            good[:39] + b"\x00" + good[40:],  # service 0
            good[:39] + b"\x05" + good[40:],  # service 5
            os.urandom(1400),
        ]
        for data in garbage:
            inject.send(data)
        inject.beacon(ChirpType.OFFER, group, "Test.barrier", ServiceId.HEARTBEAT, 40004)
        wait_for(
            lambda: seen.find(DiscoveryEvent.ADDED, "Test.barrier", ServiceId.HEARTBEAT, 40004)
        )
        assert b.dropped_malformed == len(garbage)
        assert seen.names() == {"Test.barrier"}
        inject.beacon(ChirpType.DEPART, group, "Test.barrier", ServiceId.HEARTBEAT, 40004)
        wait_for(lambda: seen.find(DiscoveryEvent.REMOVED, "Test.barrier", ServiceId.HEARTBEAT))


# --- the wire ------------------------------------------------------------------------------------
def test_beacons_on_the_wire(
    chirp: Callable[..., ChirpDiscovery], raw: RawReceiver, group: str
) -> None:
    name = "Sputnik.One"
    a = chirp(name)
    a.announce(ServiceId.CONTROL, 23999)
    data, source = raw.expect(lambda d: d[23:39] == md5(name))
    assert data == expected_beacon(2, group, name, 1, 23999)
    assert len(data) == 42 and data[:6] == b"CHIRP\x01" and data[40:] == b"\x5d\xbf"
    assert source == LOOPBACK

    a.add_listener([ServiceId.HEARTBEAT], Recorder())
    data, _ = raw.expect(lambda d: d[23:39] == md5(name))
    assert data == expected_beacon(1, group, name, 2, 0)  # REQUEST HEARTBEAT, port 0

    a.withdraw(ServiceId.CONTROL)
    data, _ = raw.expect(lambda d: d[23:39] == md5(name))
    assert data == expected_beacon(3, group, name, 1, 23999)  # DEPART carries the port

    a.announce(ServiceId.DATA, 24001)
    raw.expect(lambda d: d == expected_beacon(2, group, name, 4, 24001))
    a.close()
    raw.expect(lambda d: d == expected_beacon(3, group, name, 4, 24001))


def test_request_is_answered(
    chirp: Callable[..., ChirpDiscovery], raw: RawReceiver, inject: LoopbackInjector, group: str
) -> None:
    a = chirp("Test.a")
    a.announce(ServiceId.CONTROL, 40001)
    a.announce(ServiceId.MONITORING, 40003)
    offer = expected_beacon(2, group, "Test.a", 3, 40003)
    raw.expect(lambda d: d == offer)  # the announcement itself
    inject.beacon(ChirpType.REQUEST, group, "Test.asker", ServiceId.MONITORING)
    raw.expect(lambda d: d == expected_beacon(1, group, "Test.asker", 3, 0))
    raw.expect(lambda d: d == offer)  # the answer, after 0-200 ms


def test_requests_answered_by_all_next_to_a_stalled_socket(
    chirp: Callable[..., ChirpDiscovery], raw: RawReceiver, inject: LoopbackInjector, group: str
) -> None:
    """Every instance answers every REQUEST, also while another socket on the port overflows.

    The stalled socket is set up as constellationdaq 1.0.2 does on Linux (SO_REUSEADDR only,
    group joined on 127.0.0.1) and is never read, like a hung peer process; the kernel drops
    datagrams for that socket alone (docs/interop.md, "Open issues").
    """
    stalled = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the minimum: a few beacons
        stalled.bind(("0.0.0.0", PORT))
        membership = socket.inet_aton(GROUP_ADDRESS) + socket.inet_aton(LOOPBACK)
        stalled.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        names = [f"Test.r{i}" for i in range(3)]
        for i, name in enumerate(names):
            chirp(name).announce(ServiceId.HEARTBEAT, 41000 + i)
        offers = {expected_beacon(2, group, n, 2, 41000 + i) for i, n in enumerate(names)}
        for round_ in range(11):  # round 0: the announcements; then one REQUEST per round
            if round_:
                inject.beacon(ChirpType.REQUEST, group, "Test.asker", ServiceId.HEARTBEAT)
            missing = set(offers)
            while missing:
                data, _ = raw.expect(missing.__contains__)
                missing.discard(data)
        udp = Path("/proc/net/udp")
        if udp.exists():  # Linux: the kernel did drop datagrams for the stalled socket
            inode = str(os.fstat(stalled.fileno()).st_ino)
            rows = [ln.split() for ln in udp.read_text().splitlines()[1:]]
            assert next(int(r[-1]) for r in rows if r[9] == inode) > 0
    finally:
        stalled.close()


def test_request_via_api(
    chirp: Callable[..., ChirpDiscovery],
    raw: RawReceiver,
    inject: LoopbackInjector,
    group: str,
) -> None:
    a, b = chirp("Test.a"), chirp("Test.b")
    b.learn_name("Test.a")
    b.learn_name("Test.barrier")
    a.announce(ServiceId.DATA, 40002)
    offer = expected_beacon(2, group, "Test.a", 4, 40002)
    raw.expect(lambda d: d == offer)
    seen = Recorder()
    b.add_listener(list(ServiceId), seen)
    wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "Test.a", ServiceId.DATA))
    b.request(ServiceId.DATA)
    raw.expect(lambda d: d == expected_beacon(1, group, "Test.b", 4, 0))
    raw.expect(lambda d: d == offer)  # a answers; b already knows (host, service, port)
    inject.beacon(ChirpType.OFFER, group, "Test.barrier", ServiceId.DATA, 40003)
    wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "Test.barrier", ServiceId.DATA))
    assert len(seen.find(DiscoveryEvent.ADDED, "Test.a", ServiceId.DATA)) == 1
    assert not seen.find(DiscoveryEvent.REMOVED, "Test.a", ServiceId.DATA)


# --- names ---------------------------------------------------------------------------------------
class FakeCommandServer:
    """A REP socket answering ``get_name`` with ``name`` (in its own thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = 0
        self._sock = zmq.Context.instance().socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self.port = self._sock.bind_to_random_port(f"tcp://{LOOPBACK}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(50):
                continue
            request = CSCP1Message.decode(self._sock.recv_multipart())
            self.requests += 1
            verb = self.name if request.verb == "get_name" else "?"
            self._sock.send_multipart(CSCP1Message(self.name, CSCPType.SUCCESS, verb).encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def test_name_is_learned_with_get_name(chirp: Callable[..., ChirpDiscovery]) -> None:
    server = FakeCommandServer("Fake.Peer")
    try:
        peer = chirp("fake.peer")  # ids hash the lower-cased name
        peer.announce(ServiceId.MONITORING, 40003)  # not probed: nobody answers there
        peer.announce(ServiceId.CONTROL, server.port)
        b = chirp("Test.b")
        seen = Recorder()
        b.add_listener(list(ServiceId), seen)
        wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "Fake.Peer", ServiceId.CONTROL))
        wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "Fake.Peer", ServiceId.MONITORING))
        assert seen.names() == {"Fake.Peer"}  # held back until known, never a placeholder
        assert b.name_of(name_id("Fake.Peer")) == "Fake.Peer"
        assert server.requests >= 1
    finally:
        server.close()


def test_name_is_learned_from_heartbeats(chirp: Callable[..., ChirpDiscovery]) -> None:
    loop = EventLoop(zmq.Context.instance(), "hb-test")
    loop.start()
    fast = HeartbeatTiming(scale=FAST_SETTINGS.heartbeat_scale)
    state = lambda: HeartbeatState(0x10, 0, "ok")  # noqa: E731
    sender = HeartbeatSender(loop, SCOPE, "Ctl.hb", state, timing=fast)
    try:
        peer = chirp("Ctl.hb")
        peer.announce(ServiceId.HEARTBEAT, sender.port)
        b = chirp("Test.b")
        seen = Recorder()
        b.add_listener([ServiceId.HEARTBEAT], seen)
        found = wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "Ctl.hb", ServiceId.HEARTBEAT))
        assert found[0].port == sender.port
    finally:
        sender.close()
        loop.stop()


def test_placeholder_then_learned_name(chirp: Callable[..., ChirpDiscovery]) -> None:
    a = chirp("Test.quiet")
    b = chirp("Test.b", name_timeout=0.3)
    seen = Recorder()
    b.add_listener([ServiceId.DATA], seen)
    a.announce(ServiceId.DATA, 40002)  # nothing to ask: reported under a placeholder
    placeholder = placeholder_name(name_id("Test.quiet"))
    assert placeholder == "chirp-" + md5("test.quiet").hex()[:8]
    wait_for(lambda: seen.find(DiscoveryEvent.ADDED, placeholder, ServiceId.DATA, 40002))
    assert b.learn_name("TEST.QUIET")  # the hook for higher layers
    wait_for(lambda: seen.find(DiscoveryEvent.ADDED, "TEST.QUIET", ServiceId.DATA, 40002))
    assert [(e, s.name) for e, s in seen.events] == [
        (DiscoveryEvent.ADDED, placeholder),
        (DiscoveryEvent.REMOVED, placeholder),
        (DiscoveryEvent.ADDED, "TEST.QUIET"),
    ]
    assert not b.learn_name("test.quiet")  # same host, already known


def test_close_is_prompt_and_leaves_no_threads(group: str) -> None:
    before = set(threading.enumerate())
    disc = ChirpDiscovery(group, "Test.c", SCOPE)
    disc.announce(ServiceId.CONTROL, 40001)
    disc.add_listener([ServiceId.CONTROL], Recorder())
    started = time.monotonic()
    disc.close()
    assert time.monotonic() - started < 2.0  # threads wake every 50 ms
    disc.close()  # idempotent
    disc.announce(ServiceId.CONTROL, 40001)  # ignored after close
    wait_for(lambda: no_leaked_threads(before), timeout=2, what="CHIRP threads to end")


# --- both ----------------------------------------------------------------------------------------
def test_combined_reports_each_service_once(group: str) -> None:
    a = CombinedDiscovery(group, "Both.a", SCOPE)
    b = CombinedDiscovery(group, "Both.b", SCOPE)
    try:
        seen, via_mdns, via_chirp = Recorder(), Recorder(), Recorder()
        b.add_listener([ServiceId.CONTROL], seen)
        b.mdns.add_listener([ServiceId.CONTROL], via_mdns)
        b.chirp.add_listener([ServiceId.CONTROL], via_chirp)
        a.announce(ServiceId.CONTROL, 40001)
        for backend in (via_mdns, via_chirp):
            wait_for(
                partial(backend.find, DiscoveryEvent.ADDED, "Both.a", ServiceId.CONTROL),
                timeout=15,
                what="both backends to report the service",
            )
        added = seen.find(DiscoveryEvent.ADDED, "Both.a", ServiceId.CONTROL, 40001)
        assert len(added) == 1 and added[0].address == LOOPBACK
        assert [s.name for s in b.chirp.known()] == ["Both.a"]  # name via mDNS, no look-up
        assert [s.key for s in b.known()] == [("both.a", ServiceId.CONTROL)]

        a.withdraw(ServiceId.CONTROL)
        wait_for(lambda: seen.find(DiscoveryEvent.REMOVED, "Both.a", ServiceId.CONTROL))
        wait_for(
            lambda: not b.mdns.known() and not b.chirp.known(),
            timeout=15,
            what="both backends to drop the service",
        )
        assert len(seen.events) == 2 and b.known() == []
    finally:
        a.close()
        b.close()


def test_combined_merge_rules(group: str) -> None:
    """Merge logic with stand-in backends (no traffic)."""

    class Stub(Discovery):
        def announce(self, service: ServiceId, port: int) -> None: ...
        def withdraw(self, service: ServiceId) -> None: ...
        def close(self) -> None: ...
        def _start_browsing(self, services: frozenset[ServiceId]) -> None: ...

    class ChirpStub(Stub):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.learned: list[str] = []

        def learn_name(self, name: str) -> bool:
            self.learned.append(name)
            return True

    mdns, chirp_ = Stub(group, "X.me", SCOPE), ChirpStub(group, "X.me", SCOPE)
    both = CombinedDiscovery(group, "X.me", SCOPE, mdns=mdns, chirp=chirp_)  # type: ignore[arg-type]
    seen = Recorder()
    both.add_listener([ServiceId.CONTROL], seen)

    def svc(port: int, address: str = LOOPBACK) -> DiscoveredService:
        return DiscoveredService(group, "X.p", ServiceId.CONTROL, address, port)

    mdns._service_added(svc(1))
    chirp_._service_added(svc(1, "127.0.0.2"))  # same instance seen twice: reported once
    assert chirp_.learned == ["X.p"]
    mdns._service_removed("X.p", ServiceId.CONTROL)  # CHIRP still has it
    assert [e for e, _ in seen.events] == [DiscoveryEvent.ADDED]
    mdns._service_added(svc(1))
    chirp_._service_removed("X.p", ServiceId.CONTROL)  # a CHIRP departure removes at once
    assert [e for e, _ in seen.events] == [DiscoveryEvent.ADDED, DiscoveryEvent.REMOVED]
    mdns._service_removed("X.p", ServiceId.CONTROL)  # the late mDNS goodbye: nothing
    assert len(seen.events) == 2

    chirp_._service_added(svc(1))
    mdns._service_added(svc(1))
    chirp_._service_added(svc(2))  # restarted peer: the newest port wins
    assert [(e, s.port) for e, s in seen.events[2:]] == [
        (DiscoveryEvent.ADDED, 1),
        (DiscoveryEvent.REMOVED, 1),
        (DiscoveryEvent.ADDED, 2),
    ]
    mdns._service_removed("X.p", ServiceId.CONTROL)  # old port gone from mDNS: nothing
    assert len(seen.events) == 5
    chirp_._service_removed("X.p", ServiceId.CONTROL)
    assert [(e, s.port) for e, s in seen.events[5:]] == [(DiscoveryEvent.REMOVED, 2)]
    assert both.known() == []
    both.close()


# --- end to end ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sat_discovery", "ctl_discovery"), [("chirp", "chirp"), ("both", "chirp"), ("chirp", "both")]
)
def test_controller_steers_satellites_over_chirp(
    satellites: Any,
    group: str,
    tmp_path: Path,
    fast_timing: dict[str, str],
    sat_discovery: str,
    ctl_discovery: str,
) -> None:
    from controller import Controller

    satellites(Example, "a", discovery=sat_discovery)
    b = satellites(Example, "b", discovery=sat_discovery)
    config = tmp_path / "run.toml"
    config.write_text("[Example._default]\nsample_period = 0.01\n")
    with Controller(
        group, interface=LOOPBACK, discovery=ctl_discovery, settings=FAST_SETTINGS
    ) as ctl:
        ctl.await_satellites(["Example.a", "Example.b"], timeout=20)
        assert ctl.satellites["Example.a"].endpoint.startswith("tcp://127.0.0.1:")
        assert all(r.ok for r in ctl.initialize(config).values())
        ctl.await_state("INIT", timeout=10)
        ctl.launch()
        ctl.await_state("ORBIT", timeout=10)
        ctl.start("chirp1")
        ctl.await_state("RUN", timeout=10)
        ctl.stop()
        ctl.await_state("ORBIT", timeout=10)
        ctl.land()
        ctl.await_state("INIT", timeout=10)
        assert ctl.states == {"Example.a": "INIT", "Example.b": "INIT"}
        # heartbeats are followed under the real names too
        wait_for(
            lambda: (
                {s.name for s in ctl.discovery.known(ServiceId.HEARTBEAT)}
                == {"Example.a", "Example.b"}
            ),
            what="the controller to follow both heartbeats",
        )
        assert b.discovery is not None
        disc = b.discovery
        wait_for(
            lambda: (
                {s.name for s in disc.known(ServiceId.HEARTBEAT)} == {"Example.a", "Controller"}
            ),
            what="b to follow the heartbeats of a and the controller",
        )

        left = threading.Event()
        ctl.on_leave(lambda name: name == "Example.b" and left.set())
        b.close()  # DEPART
        assert left.wait(10), "controller did not see the departure"
        assert "Example.b" not in ctl.satellites


def test_satellite_process_with_discovery_flag(processes: Any, group: str) -> None:
    """Across processes: the console script with ``--discovery chirp`` and an in-process
    controller share UDP port 7123 on one host."""
    from controller import Controller

    proc = processes("SatelliteExample", "p", "--discovery", "chirp")
    with Controller(group, interface=LOOPBACK, discovery="chirp") as ctl:
        ctl.await_satellites(["Example.p"], timeout=20)
        assert ctl.satellites["Example.p"].command("get_name").verb == "Example.p"
        left = threading.Event()
        ctl.on_leave(lambda name: name == "Example.p" and left.set())
        proc.stop()
        assert left.wait(10), "controller did not see the DEPART of the stopped process"


def test_controller_repeats_requests_while_waiting(raw: RawReceiver, group: str) -> None:
    """A lost OFFER is not repeated by its sender: a waiting controller asks again each second."""
    from controller import Controller

    request = expected_beacon(1, group, "Controller", ServiceId.CONTROL.value, 0)
    ctl = Controller(group, interface=LOOPBACK, discovery="chirp")
    try:
        raw.expect(lambda d: d == request)  # the first REQUEST, when browsing starts

        def wait_in_vain() -> None:
            with contextlib.suppress(TimeoutError):
                ctl.await_satellites(["Nobody.here"], timeout=3.5)

        waiter = threading.Thread(target=wait_in_vain)
        waiter.start()
        raw.expect(lambda d: d == request, timeout=2.0)  # asked again while waiting
        raw.expect(lambda d: d == request, timeout=2.0)
        waiter.join(10)
    finally:
        ctl.close()
