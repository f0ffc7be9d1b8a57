"""Hostile input: whatever the decoders get, the only exception they raise is DecodeError."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constellation.errors import DecodeError, InvalidProtocolError, UnexpectedProtocolError
from constellation.protocol import (
    CDTP2Message,
    CDTPType,
    ChirpBeacon,
    ChirpType,
    CHP1Message,
    CMDP1Log,
    CMDP1Metric,
    CMDP1Notification,
    CSCP1Message,
    CSCPType,
    DataRecord,
    ServiceId,
    decode_cmdp1,
    decode_data_frame,
    split_bor_eor,
)

from .strategies import any_msgpack, frames_lists, msgpack_frames, not_bytes, pack

# A longer campaign: PROTOCOL_FUZZ_EXAMPLES=5000 pytest tests/unit/protocol/test_fuzz.py
FUZZ = settings(
    max_examples=int(os.environ.get("PROTOCOL_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _split(frames: Any) -> Any:
    msg = CDTP2Message.decode(frames)
    if msg.msg_type != CDTPType.DATA:
        split_bor_eor(msg)
    return msg


def _single(decoder: Callable[[Any], object]) -> Callable[[Any], object]:
    """A frame-list view of a single-buffer decoder: it gets the first frame or the object."""

    def decode(frames: Any) -> object:
        return decoder(frames[0] if isinstance(frames, list) and frames else frames)

    return decode


DECODERS: dict[str, Callable[[Any], object]] = {
    "cscp1": CSCP1Message.decode,
    "chp1": CHP1Message.decode,
    "cmdp1": decode_cmdp1,
    "cdtp2": _split,
    "cdtp2_frame": _single(decode_data_frame),
    "chirp": _single(ChirpBeacon.decode),
}

VALID: dict[str, list[bytes]] = {
    "cscp1": CSCP1Message(
        "Ctrl.c1", CSCPType.REQUEST, "initialize", {"a": [1, 2], "b": {"c": "d"}}, {"t": 1}
    ).encode(),
    "chp1": CHP1Message("Sputnik.One", 0x30, 6, 500, "status").encode(),
    "cmdp1": CMDP1Log("Sputnik.One", "INFO", "hello", "FSM", {"lineno": 3}).encode(),
    "cmdp1_stat": CMDP1Metric("Sputnik.One", "CPU", 1.5, "%").encode(),
    "cmdp1_note": CMDP1Notification("Sputnik.One", "STAT", {"CPU": "load"}).encode(),
    "cdtp2": CDTP2Message(
        "Tx.t1",
        CDTPType.BOR,
        [DataRecord(0, {"x": 1}, []), DataRecord(1, {"n": {"m": [1.5]}}, [b"ab", b""])],
    ).encode(),
    "chirp": [ChirpBeacon(ChirpType.OFFER, bytes(16), bytes(16), ServiceId.DATA, 80).encode()],
}
VALID_FOR = {
    "cscp1": "cscp1",
    "chp1": "chp1",
    "cmdp1": "cmdp1",
    "cdtp2": "cdtp2",
    "cdtp2_frame": "cdtp2",
    "chirp": "chirp",
}


def only_decode_error(decoder: Callable[[Any], object], frames: Any) -> None:
    try:
        decoder(frames)
    except DecodeError:
        pass


@pytest.mark.parametrize("name", DECODERS)
@FUZZ
@given(frames=frames_lists)
def test_random_frames(name: str, frames: list[bytes]) -> None:
    only_decode_error(DECODERS[name], frames)


@pytest.mark.parametrize("name", DECODERS)
@FUZZ
@given(data=st.data())
def test_mutated_valid_frames(name: str, data: st.DataObject) -> None:
    frames = list(VALID[VALID_FOR[name]])
    if name == "cmdp1":
        frames = list(
            data.draw(st.sampled_from([VALID["cmdp1"], VALID["cmdp1_stat"], VALID["cmdp1_note"]]))
        )
    index = data.draw(st.integers(0, len(frames) - 1))
    frame = bytearray(frames[index])
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(len(frame) - 1, 0)))
        if action == "flip" and frame:
            frame[pos] = data.draw(st.integers(0, 255))
        elif action == "insert":
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and frame:
            del frame[pos]
        else:
            del frame[pos:]
    frames[index] = bytes(frame)
    if data.draw(st.booleans()):  # sometimes also add or drop a whole frame
        if data.draw(st.booleans()):
            frames.append(data.draw(st.binary(max_size=8)))
        else:
            frames.pop()
    only_decode_error(DECODERS[name], frames)


@pytest.mark.parametrize("name", DECODERS)
@FUZZ
@given(data=st.data())
def test_valid_msgpack_wrong_types(name: str, data: st.DataObject) -> None:
    valid = VALID[VALID_FOR[name]]
    # Keep the frame count, replace one or more frames by well-formed but wrong msgpack.
    frames = [data.draw(msgpack_frames) if data.draw(st.booleans()) else frame for frame in valid]
    only_decode_error(DECODERS[name], frames)


@pytest.mark.parametrize("name", DECODERS)
@FUZZ
@given(frames=st.one_of(not_bytes, st.lists(not_bytes, max_size=3), st.binary(max_size=50)))
def test_not_a_frame_list(name: str, frames: Any) -> None:
    only_decode_error(DECODERS[name], frames)


@FUZZ
@given(
    header=st.lists(any_msgpack, max_size=3),
    tags=any_msgpack,
    verb=st.lists(any_msgpack, min_size=1, max_size=3),
    payload=st.lists(any_msgpack, max_size=2),
)
def test_cscp1_structured(
    header: list[Any], tags: Any, verb: list[Any], payload: list[Any]
) -> None:
    head = pack("CSCP\x01", *header, tags)
    frames = [head, pack(*verb)] + ([pack(*payload)] if payload else [])
    only_decode_error(CSCP1Message.decode, frames)


@FUZZ
@given(
    sender=any_msgpack,
    msg_type=any_msgpack,
    records=any_msgpack,
    extra=st.lists(any_msgpack, max_size=1),
)
def test_cdtp2_structured(sender: Any, msg_type: Any, records: Any, extra: list[Any]) -> None:
    only_decode_error(decode_data_frame, pack("CDTP\x02", sender, msg_type, records, *extra))


@FUZZ
@given(
    records=st.lists(
        st.lists(any_msgpack, min_size=3, max_size=3).map(
            lambda r: [abs(r[0]) if type(r[0]) is int else r[0], r[1], r[2]]
        ),
        max_size=4,
    ),
    valid=st.lists(st.just([1, {"a": 1}, [b"x"]]), max_size=3),
)
def test_cdtp2_records_almost_valid(records: list[Any], valid: list[Any]) -> None:
    only_decode_error(decode_data_frame, pack("CDTP\x02", "Tx.t1", 0, valid + records))


@FUZZ
@given(
    state=any_msgpack,
    flags=any_msgpack,
    interval=any_msgpack,
    status=st.lists(st.binary(max_size=8), max_size=2),
)
def test_chp1_structured(state: Any, flags: Any, interval: Any, status: list[bytes]) -> None:
    head = pack("CHP\x01", "A.b", msgpack.Timestamp(1, 2), state, flags, interval)
    only_decode_error(CHP1Message.decode, [head, *status])


@FUZZ
@given(
    topic=st.one_of(
        st.sampled_from(
            [
                "LOG/INFO",
                "LOG/info",
                "LOG/",
                "LOG/INFO/",
                "STAT/",
                "STAT/x",
                "LOG?",
                "STAT?",
                "LOG?X",
            ]
        ),
        st.text(max_size=12),
    ),
    payload=st.one_of(st.binary(max_size=20), msgpack_frames),
)
def test_cmdp1_structured(topic: str, payload: bytes) -> None:
    header = VALID["cmdp1"][1]
    only_decode_error(decode_cmdp1, [topic.encode("utf-8", "surrogatepass"), header, payload])


# --- specific rejections -------------------------------------------------------------------------


def test_protocol_identifier_errors() -> None:
    cscp = VALID["cscp1"]
    with pytest.raises(UnexpectedProtocolError):
        CHP1Message.decode([cscp[0]])
    with pytest.raises(UnexpectedProtocolError):
        decode_data_frame(pack("CDTP\x01", "Tx.t1", 0, 1, {}))
    with pytest.raises(InvalidProtocolError):
        CSCP1Message.decode([pack("CSCP\x02", "A.b", msgpack.Timestamp(0), {}), cscp[1]])
    with pytest.raises(InvalidProtocolError):
        ChirpBeacon.decode(b"CHIRP\x02" + bytes(36))


@pytest.mark.parametrize(
    ("decoder", "frames"),
    [
        # header fields of the wrong type (an int timestamp, a list of tags, a bin sender)
        (CSCP1Message.decode, [pack("CSCP\x01", "A.b", 5, {}), pack(0, "x")]),
        (CSCP1Message.decode, [pack("CSCP\x01", "A.b", msgpack.Timestamp(0), []), pack(0, "x")]),
        (CSCP1Message.decode, [pack("CSCP\x01", b"A.b", msgpack.Timestamp(0), {}), pack(0, "x")]),
        # bin keys in tags, extra objects in the header, verb order, unknown verb type
        (
            CSCP1Message.decode,
            [pack("CSCP\x01", "A", msgpack.Timestamp(0), {b"k": 1}), pack(0, "x")],
        ),
        (CSCP1Message.decode, [pack("CSCP\x01", "A", msgpack.Timestamp(0), {}, 1), pack(0, "x")]),
        (CSCP1Message.decode, [pack("CSCP\x01", "A", msgpack.Timestamp(0), {}), pack("x", 0)]),
        (CSCP1Message.decode, [pack("CSCP\x01", "A", msgpack.Timestamp(0), {}), pack(7, "x")]),
        (CSCP1Message.decode, [pack("CSCP\x01", "A", msgpack.Timestamp(0), {}), pack(0, "x", 1)]),
        # two payload objects, an empty payload frame, four frames
        (
            CSCP1Message.decode,
            [pack("CSCP\x01", "A", msgpack.Timestamp(0), {}), pack(0, "x"), pack(1, 2)],
        ),
        (CSCP1Message.decode, [pack("CSCP\x01", "A", msgpack.Timestamp(0), {}), pack(0, "x"), b""]),
        (CSCP1Message.decode, [*VALID["cscp1"], b"\xc0"]),
        # CHP: out of range state/flags/interval, negative, bool, non-UTF-8 status
        (CHP1Message.decode, [pack("CHP\x01", "A", msgpack.Timestamp(0), 256, 0, 1)]),
        (CHP1Message.decode, [pack("CHP\x01", "A", msgpack.Timestamp(0), 1, 0, 65536)]),
        (CHP1Message.decode, [pack("CHP\x01", "A", msgpack.Timestamp(0), -1, 0, 1)]),
        (CHP1Message.decode, [pack("CHP\x01", "A", msgpack.Timestamp(0), True, 0, 1)]),
        (CHP1Message.decode, [pack("CHP\x01", "A", msgpack.Timestamp(0), 1, 0, 1), b"\xff"]),
        (CHP1Message.decode, [pack("CHP\x01", "A", msgpack.Timestamp(0), 1, 0, 1, 2)]),
        # CMDP: unknown level, lower case, empty topic/name, bad payloads
        (decode_cmdp1, [b"LOG/ERROR", VALID["cmdp1"][1], b"x"]),
        (decode_cmdp1, [b"LOG/info", VALID["cmdp1"][1], b"x"]),
        (decode_cmdp1, [b"LOG/INFO/", VALID["cmdp1"][1], b"x"]),
        (decode_cmdp1, [b"STAT/", VALID["cmdp1"][1], pack(1, 0, "")]),
        (decode_cmdp1, [b"STAT/cpu", VALID["cmdp1"][1], pack(1, 0, "")]),
        (decode_cmdp1, [b"STAT/CPU", VALID["cmdp1"][1], pack([1], 0, "")]),
        (decode_cmdp1, [b"STAT/CPU", VALID["cmdp1"][1], pack(1, -1, "")]),
        (decode_cmdp1, [b"STAT/CPU", VALID["cmdp1"][1], pack(1, 0, "", 4)]),
        (decode_cmdp1, [b"LOG?", VALID["cmdp1"][1], pack({"A": 1})]),
        (decode_cmdp1, [b"LOG?X", VALID["cmdp1"][1], pack({"A": "b"})]),
        (decode_cmdp1, [b"DATA/X", VALID["cmdp1"][1], b""]),
        (decode_cmdp1, [b"LOG/INFO", VALID["cmdp1"][1], b"\xff\xfe"]),
        # CDTP2: records that are not [uint, map, array of bin]
        (decode_data_frame, pack("CDTP\x02", "T", 0, [[1, {}, ["str"]]])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, [[1, {}, [b"x"], 4]])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, [[-1, {}, []]])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, [[1, {b"k": 1}, []]])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, [[1, {"k": {b"n": 1}}, []]])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, [[1, {}, b"x"]])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, [{"a": 1, "b": 2, "c": 3}])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, ["abc"])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, [b"abc"])),
        (decode_data_frame, pack("CDTP\x02", "T", 3, [])),
        (decode_data_frame, pack("CDTP\x02", "T", 0, [], 0)),
        (decode_data_frame, pack("CDTP\x02", "T", 0, {})),
        # CHIRP: size, type and service
        (ChirpBeacon.decode, b"CHIRP\x01" + bytes(35)),
        (ChirpBeacon.decode, b"CHIRP\x01\x00" + bytes(32) + b"\x01\x00\x00"),
        (ChirpBeacon.decode, b"CHIRP\x01\x02" + bytes(32) + b"\x05\x00\x00"),
    ],
)
def test_rejects(decoder: Callable[[Any], object], frames: Any) -> None:
    with pytest.raises(DecodeError):
        decoder(frames)


def test_bor_eor_shape() -> None:
    data = CDTP2Message.decode(VALID["cdtp2"])
    assert split_bor_eor(data)
    with pytest.raises(DecodeError):
        split_bor_eor(CDTP2Message("T", CDTPType.DATA, []))
    with pytest.raises(DecodeError):
        split_bor_eor(CDTP2Message("T", CDTPType.EOR, [DataRecord(0, {}, [])]))


@pytest.mark.parametrize("depth", [999, 1010, 1023, 1030, 5000])
def test_deep_nesting(depth: int) -> None:
    """Nesting up to msgpack's own limit must not exhaust the Python stack in our checks."""
    nested = b"\x91" * depth + b"\x81\xc4\x01k\x01"  # innermost map has a bin key
    header = pack("CSCP\x01", "A.b", msgpack.Timestamp(0))
    verb = pack(0, "x")
    for frames in ([header + b"\x81\xa1a" + nested, verb], [header + b"\x80", verb, nested]):
        with pytest.raises(DecodeError):
            CSCP1Message.decode(frames)
    record = b"\x91\x93\x01\x81\xa1a" + nested + b"\x90"
    with pytest.raises(DecodeError):
        decode_data_frame(pack("CDTP\x02", "A.b", 0) + record)
