"""Round trips of every message type: decode(encode(m)) == m, and re-encoding is stable."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.protocol import (
    NO_PAYLOAD,
    CDTP2Message,
    CDTPType,
    ChirpBeacon,
    ChirpType,
    CHP1Message,
    CHPFlags,
    CMDP1Log,
    CMDP1Metric,
    CMDP1Notification,
    CSCP1Message,
    CSCPType,
    DataRecord,
    ServiceId,
    decode_cmdp1,
    decode_data_frame,
    encode_data_frame,
    make_bor,
    make_eor,
    split_bor_eor,
    to_datetime,
    utc_now,
)

from .strategies import (
    INT64,
    canonical_names,
    datetimes,
    floats,
    log_levels,
    payloads,
    texts,
    timestamps,
    upper_topics,
    wire_maps,
)

FAST = settings(max_examples=60, deadline=None)


def _cscp_roundtrip(msg: CSCP1Message) -> None:
    frames = msg.encode()
    decoded = CSCP1Message.decode(frames)
    assert decoded == msg
    assert decoded.encode() == frames


@FAST
@given(
    sender=canonical_names,
    msg_type=st.sampled_from(CSCPType),
    verb=texts,
    payload=st.one_of(st.just(NO_PAYLOAD), payloads),
    tags=wire_maps,
    time=timestamps,
)
def test_cscp1(
    sender: str, msg_type: CSCPType, verb: str, payload: Any, tags: dict[str, Any], time: Any
) -> None:
    _cscp_roundtrip(CSCP1Message(sender, msg_type, verb, payload, tags, time))


def test_cscp1_payload_frames() -> None:
    without = CSCP1Message("Ctrl.c1", CSCPType.REQUEST, "launch")
    assert len(without.encode()) == 2
    assert CSCP1Message.decode(without.encode()).payload is NO_PAYLOAD
    assert not without.has_payload
    nil = CSCP1Message("Ctrl.c1", CSCPType.REQUEST, "launch", None)
    assert nil.encode()[2] == b"\xc0"
    decoded = CSCP1Message.decode(nil.encode())
    assert decoded.payload is None and decoded.has_payload


def test_cscp1_get_state_reply_tags() -> None:
    changed = datetime.now(timezone.utc)
    msg = CSCP1Message(
        "Sputnik.One", CSCPType.SUCCESS, "ORBIT", 0x30, {"last_changed": changed}, utc_now()
    )
    decoded = CSCP1Message.decode(msg.encode())
    assert decoded.tags["last_changed"] == changed
    assert decoded.tags["last_changed"].tzinfo is not None


def test_header_time_accepts_datetime() -> None:
    local = datetime(2025, 6, 1, 12, 0, 0, 123456).astimezone()
    msg = CSCP1Message("A.b", 1, "x", time=local)  # type: ignore[arg-type]
    assert isinstance(msg.time, msgpack.Timestamp)
    assert msg.msg_type is CSCPType.SUCCESS
    assert to_datetime(CSCP1Message.decode(msg.encode()).time) == local


def test_naive_datetime_in_tags_is_local_time() -> None:
    naive = datetime(2025, 6, 1, 12, 0, 0)
    msg = CSCP1Message("A.b", CSCPType.REQUEST, "x", {"when": naive}, {"t": naive})
    decoded = CSCP1Message.decode(msg.encode())
    assert decoded.tags["t"] == naive.astimezone()
    assert decoded.payload["when"] == naive.astimezone()


@FAST
@given(
    sender=canonical_names,
    state=st.integers(0, 255),
    flags=st.integers(0, 255),
    interval=st.integers(0, 65535),
    status=st.one_of(st.none(), st.text(max_size=30)),
    time=timestamps,
)
def test_chp1(
    sender: str, state: int, flags: int, interval: int, status: str | None, time: Any
) -> None:
    msg = CHP1Message(sender, state, flags, interval, status, time)
    frames = msg.encode()
    assert len(frames) == (1 if status is None else 2)
    decoded = CHP1Message.decode(frames)
    assert decoded == msg
    assert isinstance(decoded.flags, CHPFlags)
    assert decoded.encode() == frames


def test_chp1_extrasystole() -> None:
    msg = CHP1Message("A.b", 0x40, CHPFlags.IS_EXTRASYSTOLE | CHPFlags.MARK_DEGRADED, 500, "")
    decoded = CHP1Message.decode(msg.encode())
    assert decoded.is_extrasystole and decoded.status == ""


@FAST
@given(
    sender=canonical_names,
    level=log_levels,
    message=st.text(max_size=40),
    topic=st.one_of(st.just(""), upper_topics),
    tags=wire_maps,
    time=timestamps,
)
def test_cmdp1_log(
    sender: str, level: str, message: str, topic: str, tags: dict[str, Any], time: Any
) -> None:
    msg = CMDP1Log(sender, level, message, topic, tags, time)
    frames = msg.encode()
    assert frames[0] == (f"LOG/{level}/{topic}" if topic else f"LOG/{level}").encode()
    assert frames[2] == message.encode()
    decoded = decode_cmdp1(frames)
    assert decoded == msg
    assert decoded.encode() == frames


def test_cmdp1_log_normalises_case() -> None:
    msg = CMDP1Log("A.b", "warning", "hi", "fsm")
    assert msg.topic == "LOG/WARNING/FSM"


@FAST
@given(
    sender=canonical_names,
    name=upper_topics,
    value=st.one_of(st.none(), st.booleans(), INT64, floats, texts, datetimes),
    unit=texts,
    tags=wire_maps,
)
def test_cmdp1_metric(sender: str, name: str, value: Any, unit: str, tags: dict[str, Any]) -> None:
    msg = CMDP1Metric(sender, name, value, unit, tags)
    frames = msg.encode()
    assert frames[0] == f"STAT/{name}".encode()
    decoded = decode_cmdp1(frames)
    assert decoded == msg
    assert decoded.encode() == frames


def test_cmdp1_metric_ignores_flags() -> None:
    frames = CMDP1Metric("A.b", "X", 1, "u").encode()
    frames[2] = msgpack.packb(1) + msgpack.packb(0x42) + msgpack.packb("u")
    decoded = decode_cmdp1(frames)
    assert isinstance(decoded, CMDP1Metric) and decoded.value == 1


@FAST
@given(
    sender=canonical_names,
    kind=st.sampled_from(["LOG", "STAT"]),
    topics=st.dictionaries(upper_topics, texts, max_size=5),
)
def test_cmdp1_notification(sender: str, kind: Any, topics: dict[str, str]) -> None:
    msg = CMDP1Notification(sender, kind, topics)
    frames = msg.encode()
    assert frames[0] == f"{kind}?".encode()
    decoded = decode_cmdp1(frames)
    assert decoded == msg
    assert decoded.encode() == frames


records = st.lists(
    st.builds(
        DataRecord,
        st.integers(0, 2**64 - 1),
        wire_maps,
        st.lists(st.binary(max_size=40), max_size=3),
    ),
    max_size=6,
)


@FAST
@given(sender=canonical_names, msg_type=st.sampled_from(CDTPType), recs=records)
def test_cdtp2(sender: str, msg_type: CDTPType, recs: list[DataRecord]) -> None:
    msg = CDTP2Message(sender, msg_type, recs)
    frames = msg.encode()
    assert len(frames) == 1
    decoded = CDTP2Message.decode(frames)
    assert decoded == msg
    assert decoded.encode() == frames
    assert decode_data_frame(frames[0]) == msg
    assert encode_data_frame(sender, recs, msg_type) == frames[0]


def test_cdtp2_accepts_buffers() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    blocks: list[Any] = [
        array,
        array[:, ::2],  # not contiguous: copied in C order
        memoryview(b"abc"),
        np.arange(3, dtype=np.uint16).data,
        bytearray(b"xy"),
        b"",
    ]
    expected = [
        array.tobytes(),
        array[:, ::2].tobytes(),
        b"abc",
        np.arange(3, dtype=np.uint16).tobytes(),
        b"xy",
        b"",
    ]
    decoded = decode_data_frame(encode_data_frame("A.b", [DataRecord(1, {"dtype": "f4"}, blocks)]))
    assert decoded.records == [DataRecord(1, {"dtype": "f4"}, expected)]
    assert all(type(block) is bytes for block in decoded.records[0].blocks)


def test_cdtp2_large_batch() -> None:
    batch = [
        DataRecord(i + 1, {"n": i} if i % 3 else {}, [bytes([i % 256]) * 64]) for i in range(2000)
    ]
    decoded = decode_data_frame(encode_data_frame("A.b", batch))
    assert decoded.records == batch
    assert isinstance(decoded.records[5], DataRecord)
    assert decoded.records[5].sequence == 6


def test_cdtp2_tuples_of_blocks_and_plain_records() -> None:
    frame = encode_data_frame("A.b", [(1, {}, (b"a", b"b")), [2, {}, [b"c"]]])  # type: ignore[list-item]
    assert decode_data_frame(frame).records == [
        DataRecord(1, {}, [b"a", b"b"]),
        DataRecord(2, {}, [b"c"]),
    ]


def test_bor_eor_helpers() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    bor = make_bor("Tx.t1", {"dtype": "uint8"}, {"seed": 1, "_data": {"license": "x"}})
    eor = make_eor(
        "Tx.t1", {}, {"run_id": "r1", "time_start": start, "time_end": start + timedelta(1)}
    )
    for msg in (bor, eor):
        decoded = CDTP2Message.decode(msg.encode())
        assert decoded == msg
        assert split_bor_eor(decoded) == (msg.records[0].tags, msg.records[1].tags)
    assert bor.msg_type is CDTPType.BOR and eor.msg_type is CDTPType.EOR
    assert [r.sequence for r in bor.records] == [0, 1]


@FAST
@given(
    msg_type=st.sampled_from(ChirpType),
    group=st.binary(min_size=16, max_size=16),
    host=st.binary(min_size=16, max_size=16),
    service=st.sampled_from(ServiceId),
    port=st.integers(0, 65535),
)
def test_chirp(
    msg_type: ChirpType, group: bytes, host: bytes, service: ServiceId, port: int
) -> None:
    beacon = ChirpBeacon(msg_type, group, host, service, port)
    data = beacon.encode()
    assert len(data) == 42 and data[:6] == b"CHIRP\x01"
    assert ChirpBeacon.decode(data) == beacon
    assert ChirpBeacon.decode(memoryview(bytearray(data))) == beacon


@pytest.mark.parametrize(
    "encoded",
    [
        bytes.fromhex("d6ff00000001"),  # timestamp32
        bytes.fromhex("d7ff0000000400000001"),  # timestamp64, 1 ns
        bytes.fromhex("c70cff00000001ffffffffffffffff"),  # timestamp96, negative seconds
    ],
)
def test_header_timestamp_sizes(encoded: bytes) -> None:
    header = msgpack.packb("CSCP\x01") + msgpack.packb("A.b") + encoded + msgpack.packb({})
    frames = [header, msgpack.packb(0) + msgpack.packb("get_name")]
    msg = CSCP1Message.decode(frames)
    assert isinstance(msg.time, msgpack.Timestamp)
    assert msg.encode() == frames
    tags_frames = [
        msgpack.packb("CSCP\x01") + msgpack.packb("A.b") + encoded + b"\x81\xa1t" + encoded,
        frames[1],
    ]
    when = CSCP1Message.decode(tags_frames).tags["t"]
    assert isinstance(when, datetime) and when.tzinfo is not None
    assert when == to_datetime(msg.time)


def test_long_headers() -> None:
    """Headers longer than the decoder's first read window still decode."""
    sender = "Type." + "n" * 6000
    for msg in (
        CDTP2Message(sender, CDTPType.DATA, [DataRecord(1, {}, [b"x" * 10000])]),
        CHP1Message(sender, 0x30, 0, 500, "status"),
        CSCP1Message(sender, CSCPType.REQUEST, "x", None, {"k": "v" * 5000}),
    ):
        assert type(msg).decode(msg.encode()) == msg
