"""Hostile input on every socket a satellite binds, and on a receiver's data path.

Garbage, truncated frames, 40 MB frames, wrong protocol identifiers and well-formed messages with
wrong types: nothing crashes, memory stays bounded, the satellite keeps answering.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constellation.net.discovery import DiscoveredService, DiscoveryEvent
from constellation.protocol.cdtp2 import CDTP2Message, CDTPType, DataRecord, make_bor, make_eor
from constellation.protocol.chirp import ServiceId
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from controller import Controller
from satellites.devnull_receiver import DevNullReceiver
from tests.conftest import FAST_SETTINGS, FAST_TIMING
from tests.helpers import LOOPBACK, SatelliteProcess, unique_group, wait_for

BIG = 40 * 1024 * 1024
#: Flood rounds after the warm-up round, and the RSS growth allowed over all of them: a leak of
#: 0.5 MiB a round (most of a 40 MB frame, or a few KiB per junk message) exceeds it.
LEAK_ROUNDS = 6
LEAK_BOUND = 2 * 1024 * 1024


def _valid_request(verb: str = "get_state") -> list[bytes]:
    return CSCP1Message("fuzzer", CSCPType.REQUEST, verb).encode()


def junk_messages() -> list[list[bytes]]:
    """One flood round: every kind of bad input, as multipart messages (without envelope)."""
    valid = _valid_request()
    header = valid[0]
    wrong_types = [
        msgpack.packb("CSCP\x01") + msgpack.packb(42) + msgpack.packb(["x"]),
        msgpack.packb("CSCP\x01") + msgpack.packb("fuzzer") + msgpack.packb(1.5),
        msgpack.packb({"a": 1}) + msgpack.packb(None),
    ]
    return [
        [b""],
        [b"\x00"],
        [os.urandom(64)],
        [os.urandom(4096), os.urandom(10)],
        [header[: len(header) // 2]],  # truncated
        [header[:1]],
        [*valid[:1], b"\xc1"],  # invalid msgpack payload
        [header.replace(b"CSCP", b"CHP\x00")],  # wrong protocol identifier
        [header.replace(b"CSCP", b"XXXX")],
        *([w] for w in wrong_types),
        [header, b"", b"", b"", b""],  # too many frames
        [b"\x01" + os.urandom(32)],  # looks like a subscription on XPUB sockets
        [b"\x00" + os.urandom(32)],
        [b"\x01" * 100_000],
    ]


def _wait_disconnected(monitor: zmq.Socket[Any], timeout: float = 10.0) -> None:
    """Wait for the monitor's EVENT_DISCONNECTED: the peer dropped us at the oversized frame,
    so it has read (and answered or dropped) everything sent before it."""
    from zmq.utils.monitor import recv_monitor_message

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not monitor.poll(int(left * 1000)):
            break
        if recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED:
            return
    raise AssertionError(f"the satellite did not drop the connection within {timeout} s")


def _send_round(sock: zmq.Socket[Any], envelope: list[bytes], big: bool) -> None:
    for frames in junk_messages():
        sock.send_multipart(envelope + frames)
    if big:
        # Not b"\x01" + ...: a raw XSUB keeps every subscription it sent in a trie, and libzmq
        # (4.3.5) overflows the *sender's* stack destroying a 40 MB one (it crashes the test).
        sock.send_multipart([*envelope, b"\x02" + b"\x00" * BIG])


@pytest.fixture(scope="module")
def victim() -> Iterator[tuple[SatelliteProcess, dict[ServiceId, str], str]]:
    """One satellite process; in NEW it binds command, heartbeat and monitoring sockets."""
    group = unique_group("hostile")
    proc = SatelliteProcess("SatelliteRandomTransmitter", "victim", group, env=FAST_TIMING)
    ctl = Controller(group, interface=LOOPBACK)
    ctl.discovery.add_listener([ServiceId.MONITORING], lambda event, service: None)  # browse it
    try:
        ctl.await_satellites(["RandomTransmitter.victim"], timeout=20)
        name = "RandomTransmitter.victim"

        def endpoints() -> dict[ServiceId, str]:
            known = {s.service: s.endpoint for s in ctl.discovery.known() if s.name == name}
            wanted = {ServiceId.CONTROL, ServiceId.HEARTBEAT, ServiceId.MONITORING}
            return known if wanted <= set(known) else {}

        yield proc, wait_for(endpoints, 20, what="command/heartbeat/monitoring services"), group
    finally:
        ctl.close()
        proc.stop()


def _answers(endpoint: str, timeout: float = 5.0) -> str:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(_valid_request())
        if not sock.poll(int(timeout * 1000)):
            return ""
        return CSCP1Message.decode(sock.recv_multipart()).verb
    finally:
        sock.close()


@pytest.mark.parametrize("service", ["CONTROL", "HEARTBEAT", "MONITORING"])
def test_flood_every_bound_socket(victim: Any, service: str) -> None:
    proc, endpoints, _group = victim
    kind = ServiceId[service]
    ctx = zmq.Context.instance()
    ps = psutil.Process(proc.pid)
    rss: list[int] = []
    for _round in range(1 + LEAK_ROUNDS):
        sock = ctx.socket(zmq.DEALER if kind is ServiceId.CONTROL else zmq.XSUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        # no wait for the connection: connect() makes the pipe at once (ZMQ_IMMEDIATE off), and
        # with SNDHWM 0 every message below is queued on it until the TCP connection is up
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.connect(endpoints[kind])
        envelope = [b""] if kind is ServiceId.CONTROL else []
        _send_round(sock, envelope, big=True)
        # garbage gets ERROR replies (or is dropped); the oversized frame drops the connection
        try:
            _wait_disconnected(monitor)
        finally:
            sock.disable_monitor()
            monitor.close()
            sock.close()
        assert proc.proc.poll() is None, "satellite died"
        assert _answers(endpoints[ServiceId.CONTROL]) == "NEW"
        rss.append(ps.memory_info().rss)
    # round 0 warms up (buffers, allocator arenas); after it, RSS must stay flat
    assert rss[-1] - rss[1] < LEAK_BOUND, f"RSS grew {[r >> 20 for r in rss]} MiB"


def test_garbage_command_gets_error_reply(victim: Any) -> None:
    _proc, endpoints, _group = victim
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoints[ServiceId.CONTROL])
    try:
        sock.send_multipart([b"", os.urandom(50)])
        assert sock.poll(5000), "no reply to garbage"
        reply = CSCP1Message.decode(sock.recv_multipart()[1:])
        assert reply.msg_type == CSCPType.ERROR
    finally:
        sock.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    frames=st.lists(
        st.one_of(
            st.binary(max_size=256),
            st.builds(
                lambda b, n: _valid_request()[0][:n] + b, st.binary(max_size=16), st.integers(0, 40)
            ),
            st.builds(
                lambda v: msgpack.packb("CSCP\x01") + msgpack.packb("f") + msgpack.packb(v),
                st.one_of(
                    st.integers(-(2**63), 2**64 - 1),
                    st.text(max_size=20),
                    st.none(),
                    st.lists(st.integers(-(2**31), 2**31), max_size=3),
                ),
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_command_socket(victim: Any, frames: list[bytes]) -> None:
    proc, endpoints, _group = victim
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoints[ServiceId.CONTROL])
    try:
        sock.send_multipart([b"", *frames])
        if sock.poll(2000):  # every request is answered (ERROR for junk)
            sock.recv_multipart()
        else:
            pytest.fail("no reply")
    finally:
        sock.close()
    assert proc.proc.poll() is None


def test_still_answers_after_fuzz(victim: Any) -> None:
    """Order-independent: fuzzes the command socket itself, then checks the satellite answers."""
    proc, endpoints, _group = victim
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoints[ServiceId.CONTROL])
    try:
        _send_round(sock, [b""], big=False)
        # requests on one connection are answered in order: a reply to a valid request sent
        # last means every junk message before it was taken
        sock.send_multipart([b"", *_valid_request()])
        wait_for(lambda: _last_reply_is_state(sock), 10, what="reply to the request after junk")
    finally:
        sock.close()
    assert proc.proc.poll() is None
    assert _answers(endpoints[ServiceId.CONTROL]) == "NEW"


def _last_reply_is_state(sock: zmq.Socket[Any]) -> bool:
    """Drain replies; True once the SUCCESS reply to ``get_state`` (verb ``NEW``) arrived."""
    while sock.poll(50):
        reply = CSCP1Message.decode(sock.recv_multipart()[1:])
        if reply.msg_type == CSCPType.SUCCESS and reply.verb == "NEW":
            return True
    return False


def test_max_message_size_env_bounds_command_socket() -> None:
    group = unique_group("maxmsg")
    env = {**FAST_TIMING, "CONSTELLATION_MAX_MESSAGE_SIZE": "65536"}
    proc = SatelliteProcess("SatelliteRandomTransmitter", "small", group, env=env)
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.await_satellites(["RandomTransmitter.small"], timeout=20)
            endpoint = ctl.satellites["RandomTransmitter.small"].endpoint
        ctx = zmq.Context.instance()
        for size, answered in ((60_000, True), (70_000, False)):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            sock.send_multipart([b"", b"\x00" * size])
            assert bool(sock.poll(1500)) is answered, size
            sock.close()
        assert _answers(endpoint) == "NEW"
    finally:
        proc.stop()


# --- data path: a fake transmitter feeding an in-process receiver -------------------------------


_MARKER_META = {"run_id": "junk", "data_records": 0, "condition": "GOOD", "condition_code": 0}


class Collector(DevNullReceiver):
    def do_starting(self, run_id: str) -> None:
        super().do_starting(run_id)
        self.got: list[tuple[str, Any]] = []

    def receive_bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        self.got.append(("BOR", sender))

    def receive_data_batch(self, sender: str, records: Any) -> None:
        super().receive_data_batch(sender, records)
        self.got.extend(("DATA", r.sequence) for r in records)

    def receive_eor(self, sender: str, user_tags: dict[str, Any], meta: dict[str, Any]) -> None:
        marker = sender.startswith("Marker")
        self.got.append(("EOR", sender if marker else meta.get("data_records")))


def test_fake_transmitter_sends_junk_to_receiver(
    satellites: Any, group: str, tmp_path: Path, fast_timing: Any
) -> None:
    receiver = satellites(Collector, "rx")
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    port = push.bind_to_random_port(f"tcp://{LOOPBACK}")
    ps = psutil.Process()
    try:
        with Controller(group, interface=LOOPBACK, settings=FAST_SETTINGS) as ctl:
            ctl.await_satellites(["Collector.rx"], timeout=20)
            ctl.initialize({"_default": {"_data": {"eor_timeout": 2}}})
            ctl.await_state("INIT", 10)
            ctl.launch()
            ctl.await_state("ORBIT", 10)
            ctl.start("junk")
            ctl.await_state("RUN", 10)
            service = DiscoveredService(group, "Fake.tx", ServiceId.DATA, LOOPBACK, port)
            receiver._role.on_data_service(DiscoveryEvent.ADDED, service)
            sender = "Fake.tx"
            rss = []
            for _round in range(1 + LEAK_ROUNDS):
                for frames in junk_messages():
                    push.send_multipart(frames)
                push.send(b"\x00" * BIG)  # oversized junk
                # valid-looking with wrong types: DATA before BOR, record fields of wrong kinds
                push.send_multipart(
                    CDTP2Message(sender, CDTPType.DATA, [DataRecord(7, {}, [b"x"])]).encode()
                )
                push.send_multipart(
                    CDTP2Message(sender, CDTPType.EOR, [DataRecord(0, {}, [])]).encode()
                )
                # a proper run of a marker sender after the junk: once its EOR arrived, so was
                # everything sent before it on this connection (PUSH/PULL keeps the order)
                marker = f"Marker{_round}.tx"
                push.send_multipart(make_bor(marker, {}, {}).encode())
                push.send_multipart(make_eor(marker, {}, {**_MARKER_META}).encode())
                wait_for(lambda m=marker: ("EOR", m) in receiver.got, 20, what="marker EOR")
                assert ctl.satellites["Collector.rx"].command("get_state").verb == "RUN"
                rss.append(ps.memory_info().rss)
            assert rss[-1] - rss[1] < LEAK_BOUND, [r >> 20 for r in rss]  # round 0 warms up
            # the receiver still takes a proper run from this sender
            push.send_multipart(make_bor(sender, {}, {"a": 1}).encode())
            for seq in range(1, 6):
                push.send_multipart(
                    CDTP2Message(sender, CDTPType.DATA, [DataRecord(seq, {}, [b"abc"])]).encode()
                )
            meta = {"run_id": "junk", "data_records": 5, "condition": "GOOD", "condition_code": 0}
            push.send_multipart(make_eor(sender, {}, meta).encode())
            wait_for(lambda: ("EOR", 5) in receiver.got, 10, what="valid run after junk")
            assert [g for g in receiver.got if g[0] == "DATA"] == [("DATA", i) for i in range(1, 6)]
            assert [g for g in receiver.got if g[0] == "BOR"][-1] == ("BOR", sender)
            assert ("BOR", sender) not in receiver.got[:-7]  # the junk never opened its run
            ctl.stop()
            ctl.await_state("ORBIT", 20)
    finally:
        push.close()
