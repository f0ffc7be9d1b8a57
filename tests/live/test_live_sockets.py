"""The tap on real ZeroMQ sockets (loopback), the deferred publishing of a writer, and the
DataReceiver fixes (fair polling, connected() from another thread)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import zmq

from constellation.core.commands import CommandRegistry
from constellation.live.hooks import ReceiverLive
from constellation.live.protocol import LiveHeader, encode_report, marker_topic
from constellation.live.tap import EOR_RESEND_INTERVAL, LiveTap
from constellation.net import data_receiver
from constellation.net.data_receiver import DataReceiver
from constellation.net.discovery import DiscoveredService, ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.protocol.cdtp2 import DataRecord, encode_data_frame, make_bor, make_eor
from tests.helpers import LOOPBACK, wait_for

SCOPE = NetworkScope((LOOPBACK,))


@pytest.fixture
def tap() -> Iterator[LiveTap]:
    live = LiveTap(zmq.Context.instance(), SCOPE, "Rx.r")
    yield live
    live.close()


def _subscriber(port: int, *topics: bytes) -> zmq.Socket[Any]:
    sock = zmq.Context.instance().socket(zmq.XSUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{LOOPBACK}:{port}")
    for topic in topics:
        sock.send(b"\x01" + topic)
    return sock


def _receive(sock: zmq.Socket[Any]) -> tuple[LiveHeader, bytes]:
    assert sock.poll(5000), "nothing published"
    _topic, header, payload = sock.recv_multipart()
    return LiveHeader.decode(header), payload


def test_nothing_is_sent_without_subscribers_and_a_joiner_gets_the_bor_first(
    tap: LiveTap,
) -> None:
    bor = make_bor("Tx.a", {"x": 1}, {"rate": 1}).encode()[0]
    data = encode_data_frame("Tx.a", [DataRecord(1, {}, [b"abc"])])
    tap.publish("BOR", "Tx.a", "run_1", bor)
    tap.publish("DATA", "Tx.a", "run_1", data, 1, 1)
    assert tap.published == 0 and not tap.active
    sub = _subscriber(tap.port, marker_topic("s1"), b"r")
    try:
        wait_for(lambda: tap.service() or tap.subscribers == 1, 5, what="subscription")
        header, payload = _receive(sub)
        assert (header.kind, header.replay, payload) == ("BOR", True, bor)
        frame = zmq.Frame(data)
        tap.publish("DATA", "Tx.a", "run_1", frame, 2, 1, 7)
        header, payload = _receive(sub)
        assert (header.kind, header.first, header.index, payload) == ("DATA", 2, 7, data)
        sub.send(encode_report("s1", 10, 4))
        sub.send(b"\x07garbage")
        wait_for(lambda: tap.service() or tap.reported_drops == 4, 5, what="the report")
    finally:
        sub.close(linger=0)
    wait_for(lambda: tap.service() or tap.subscribers == 0, 5, what="the unsubscription")
    assert not tap.active


def test_a_sender_subscription_gets_only_that_sender(tap: LiveTap) -> None:
    sub = _subscriber(tap.port, b"rtx.b\n")
    try:
        wait_for(lambda: tap.service() or tap.active, 5, what="subscription")
        for sender in ("Tx.a", "Tx.b"):
            tap.publish("DATA", sender, "r", encode_data_frame(sender, []), 1, 0)
        header, _ = _receive(sub)
        assert header.sender == "Tx.b"
        assert not sub.poll(100)
    finally:
        sub.close(linger=0)


# --- deferred publishing (H5DataWriter) ----------------------------------------------------------
class _FakeTap:
    active = True

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def publish(self, *args: Any) -> None:
        self.sent.append(args)


def test_a_deferred_receiver_publishes_in_order_after_storing() -> None:
    sat = SimpleNamespace(
        commands=CommandRegistry(), metrics=mock.Mock(), run_id="run_1", canonical_name="W.w"
    )
    live = ReceiverLive(sat, deferred=True)
    fake = _FakeTap()
    live.tap = fake  # type: ignore[assignment]
    from constellation.protocol.cdtp2 import CDTP2Message, CDTPType

    def message(kind: CDTPType, first: int, count: int) -> CDTP2Message:
        records = [DataRecord(first + i, {}, [b"x"]) for i in range(count)]
        return CDTP2Message("Tx.a", kind, records)

    live.accept(message(CDTPType.BOR, 0, 2), [b"bor"])
    live.accept(message(CDTPType.DATA, 1, 3), [b"d1"])
    live.accept(message(CDTPType.DATA, 4, 2), [b"d2"])
    live.substitute_eor("Tx.a", {"data_records": 5})
    assert fake.sent == []  # nothing is published before it is stored
    live.stored("Tx.a", "BOR")
    live.stored("Tx.a", "DATA", 5)  # two messages written in one merged batch
    live.stored("Tx.a", "EOR")
    kinds = [(s[0], s[3], s[4], s[5], s[6]) for s in fake.sent]
    assert kinds == [
        ("BOR", b"bor", 0, 0, None),
        ("DATA", b"d1", 1, 3, 0),
        ("DATA", b"d2", 4, 2, 3),
        ("EOR", fake.sent[3][3], 0, 0, None),
    ]
    assert "get_live_endpoint" in sat.commands


def test_a_uniform_message_is_published_by_its_sequence_range_without_records(
    monkeypatch: Any,
) -> None:
    from constellation.protocol import cdtp2_uniform
    from constellation.protocol.cdtp2 import CDTPType

    def no_records(*_: Any) -> None:
        raise AssertionError("a record was built")

    monkeypatch.setattr(cdtp2_uniform.UniformRecords, "__getitem__", no_records)
    monkeypatch.setattr(cdtp2_uniform.UniformRecords, "__iter__", no_records)
    sat = SimpleNamespace(
        commands=CommandRegistry(), metrics=mock.Mock(), run_id="run_1", canonical_name="W.w"
    )
    live = ReceiverLive(sat)
    fake = _FakeTap()
    live.tap = fake  # type: ignore[assignment]
    records = [DataRecord(5 + i, {"n": 1}, [bytes(64 * 1024)]) for i in range(3)]
    frame = encode_data_frame("Tx.a", records, CDTPType.DATA)
    message = cdtp2_uniform.decode_uniform(frame)
    assert message is not None
    live.accept(message, [frame])
    assert fake.sent == [("DATA", "Tx.a", "run_1", frame, 5, 3)]


# --- DataReceiver -------------------------------------------------------------------------------
def _pusher(name: str) -> tuple[zmq.Socket[Any], DiscoveredService]:
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, 5000)
    port = sock.bind_to_random_port(f"tcp://{LOOPBACK}")
    return sock, DiscoveredService("g", name, ServiceId.DATA, LOOPBACK, port)


def test_one_busy_transmitter_does_not_starve_the_others(monkeypatch: Any) -> None:
    monkeypatch.setattr(data_receiver, "_POLL_BYTES", 20_000)  # about 20 messages per poll
    receiver = DataReceiver(zmq.Context.instance())
    pushers = [_pusher(name) for name in ("Tx.a", "Tx.b")]
    try:
        for _, service in pushers:
            receiver.connect(service)
        list(receiver.poll(0))  # opens the sockets
        for sock, service in pushers:
            for seq in range(1, 201):
                sock.send(encode_data_frame(service.name, [DataRecord(seq, {}, [b"x" * 1000])]))
        wait_for(lambda: len(receiver._poller.poll(0)) == 2, 5, what="both sockets ready")
        senders = {message.sender for message, _ in receiver.poll(1000)}
        assert senders == {"Tx.a", "Tx.b"}
        assert receiver.last_frames and len(receiver.last_frames) == 1
    finally:
        receiver.close()
        for sock, _ in pushers:
            sock.close(linger=0)


class _ChangingDict(dict):  # type: ignore[type-arg]
    """Changes while it is iterated, as the polling thread may do."""

    def values(self) -> Any:
        items = iter(list(dict.values(self)))
        yield next(items)
        self["tcp://127.0.0.1:1"] = "late"
        yield from dict.values(self)


def test_connected_does_not_iterate_what_the_polling_thread_changes() -> None:
    receiver = DataReceiver(zmq.Context.instance())
    sock, service = _pusher("Tx.a")
    try:
        receiver.connect(service)
        list(receiver.poll(0))
        receiver._names = _ChangingDict(receiver._names)
        receiver._names["tcp://127.0.0.1:2"] = "other"
        assert receiver.connected() == ["tx.a"]
    finally:
        receiver.close()
        sock.close(linger=0)


def test_the_last_eors_are_sent_again_between_runs() -> None:
    now = [1000.0]
    live = LiveTap(zmq.Context.instance(), SCOPE, "Rx.r", clock=lambda: now[0])
    sub = _subscriber(live.port, b"r")
    try:
        wait_for(lambda: live.service() or live.active, 5, what="subscription")
        bor = make_bor("Tx.a", {}, {}).encode()[0]
        eor = make_eor("Tx.a", {}, {"data_records": 7}).encode()[0]
        live.publish("BOR", "Tx.a", "run_1", bor)
        live.publish("EOR", "Tx.a", "run_1", eor)
        kinds = [_receive(sub)[0] for _ in range(2)]
        assert [(h.kind, h.replay) for h in kinds] == [("BOR", False), ("EOR", False)]
        live.service()
        assert not sub.poll(100)  # not before the interval
        now[0] += EOR_RESEND_INTERVAL
        live.service()
        header, payload = _receive(sub)
        assert (header.kind, header.replay, payload) == ("EOR", True, eor)
        live.start_run()  # a new run: the old EORs are not sent again
        now[0] += 10 * EOR_RESEND_INTERVAL
        live.service()
        assert not sub.poll(100)
    finally:
        sub.close(linger=0)
        live.close()
