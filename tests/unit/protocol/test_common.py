"""Shared protocol pieces: map validation, encode errors, names, timestamps, import hygiene."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.errors import EncodeError
from constellation.protocol import (
    NO_PAYLOAD,
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
    Protocol,
    ServiceId,
    encode_data_frame,
    to_datetime,
    to_timestamp,
    utc_now,
    validate_canonical_name,
    validate_name,
    validate_run_id,
    validate_wire_map,
)

from .strategies import wire_maps

REPO = Path(__file__).parents[3]


def test_import_does_not_pull_zmq() -> None:
    code = "import constellation.protocol, sys; assert 'zmq' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_protocol_ids() -> None:
    assert [p.value.encode() for p in Protocol] == [
        b"CSCP\x01",
        b"CMDP\x01",
        b"CHP\x01",
        b"CDTP\x02",
        b"CDTP\x01",
    ]
    assert msgpack.packb(Protocol.CHP1.value) == bytes.fromhex("a443485001")


def test_no_payload_sentinel() -> None:
    assert NO_PAYLOAD is not None
    assert repr(NO_PAYLOAD) == "NO_PAYLOAD"
    assert CSCP1Message("A.b", CSCPType.REQUEST, "x").payload is NO_PAYLOAD


def test_timestamps() -> None:
    now = utc_now()
    assert isinstance(now, msgpack.Timestamp)
    assert abs(to_datetime(now) - datetime.now(timezone.utc)).total_seconds() < 5
    aware = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    assert to_datetime(to_timestamp(aware)) == aware
    assert to_timestamp(now) is now
    naive = datetime(2030, 1, 2, 3, 4, 5)
    assert to_datetime(naive) == naive.astimezone()


@settings(max_examples=60, deadline=None)
@given(mapping=wire_maps)
def test_generated_maps_are_valid(mapping: dict[str, Any]) -> None:
    validate_wire_map(mapping)


@pytest.mark.parametrize(
    ("mapping", "path"),
    [
        ({"a": b"x"}, "tags.a"),
        ({"a": {"b": bytearray(b"x")}}, "tags.a.b"),
        ({"a": [1, "x"]}, "tags.a[1]"),
        ({"a": [True, 1]}, "tags.a[1]"),
        ({"a": [1, 1.5]}, "tags.a[1]"),
        ({"a": [None]}, "tags.a[0]"),
        ({"a": [[1]]}, "tags.a[0]"),
        ({"a": [{"b": 1}]}, "tags.a[0]"),
        ({"a": {1: "x"}}, "tags.a.1"),
        ({"a": {"b": {"c": set()}}}, "tags.a.b.c"),
        ({"big": 2**63}, "tags.big"),
        ({"a": [2**64 - 1]}, "tags.a[0]"),
        ({"a": object()}, "tags.a"),
        ({"a": msgpack.ExtType(1, b"")}, "tags.a"),
    ],
)
def test_wire_map_errors_name_the_key(mapping: dict[str, Any], path: str) -> None:
    with pytest.raises(EncodeError) as info:
        validate_wire_map(mapping, "tags")
    assert str(info.value).startswith(f"{path}: ")


def test_wire_map_accepts() -> None:
    validate_wire_map(
        {
            "n": None,
            "b": True,
            "i": -(2**63),
            "f": 1.5,
            "s": "x",
            "t": datetime.now(timezone.utc),
            "ts": msgpack.Timestamp(1, 2),
            "tuple": (1, 2),
            "empty": [],
            "times": [datetime.now(timezone.utc), msgpack.Timestamp(0)],
            "nested": {"deeper": {"x": ["a"]}},
        }
    )
    with pytest.raises(EncodeError, match="expected a dict"):
        validate_wire_map([("a", 1)])


@pytest.mark.parametrize(
    "make",
    [
        lambda: CSCP1Message("A.b", CSCPType.REQUEST, "x", tags={"k": b"bin"}),
        lambda: CSCP1Message("A.b", CSCPType.REQUEST, "x", {"cfg": {"k": [1, "a"]}}),
        lambda: CSCP1Message("A.b", CSCPType.REQUEST, "x", object()),
        lambda: CSCP1Message("A.b", 9, "x"),  # type: ignore[arg-type]
        lambda: CSCP1Message("A.b", CSCPType.REQUEST, 5),  # type: ignore[arg-type]
        lambda: CSCP1Message(5, CSCPType.REQUEST, "x"),  # type: ignore[arg-type]
        lambda: CHP1Message("A.b", 256, 0, 500),
        lambda: CHP1Message("A.b", 0x30, 0, 70000),
        lambda: CHP1Message("A.b", 0x30, -1, 500),
        lambda: CMDP1Log("A.b", "ERROR", "x"),
        lambda: CMDP1Metric("A.b", "X", [1, 2], ""),
        lambda: CMDP1Metric("A.b", "X", b"bin", ""),
        lambda: CMDP1Metric("A.b", "", 1, ""),
        lambda: CMDP1Notification("A.b", "DATA", {}),  # type: ignore[arg-type]
        lambda: CMDP1Notification("A.b", "LOG", {"A": 1}),  # type: ignore[dict-item]
        lambda: CDTP2Message("T.t", 5, []),  # type: ignore[arg-type]
        lambda: CDTP2Message("T.t", CDTPType.DATA, [DataRecord(-1, {}, [])]),
        lambda: CDTP2Message("T.t", CDTPType.DATA, [DataRecord(2**64, {}, [])]),
        lambda: CDTP2Message("T.t", CDTPType.DATA, [DataRecord(1, {"k": b"x"}, [])]),
        lambda: CDTP2Message("T.t", CDTPType.DATA, [DataRecord(1, {}, ["text"])]),  # type: ignore[list-item]
        lambda: CDTP2Message("T.t", CDTPType.DATA, [DataRecord(1, {}, [1])]),  # type: ignore[list-item]
        lambda: CDTP2Message("T.t", CDTPType.DATA, [DataRecord(1, {}, b"xy")]),  # type: ignore[arg-type]
        lambda: CDTP2Message("T.t", CDTPType.DATA, [DataRecord(1, [], [])]),  # type: ignore[arg-type]
        lambda: CDTP2Message("T.t", CDTPType.DATA, [(1, {}, [], 4)]),  # type: ignore[list-item]
        lambda: ChirpBeacon(ChirpType.OFFER, b"short", bytes(16), ServiceId.DATA, 1),
        lambda: ChirpBeacon(ChirpType.OFFER, bytes(16), bytes(16), ServiceId.DATA, 65536),
        lambda: ChirpBeacon(0, bytes(16), bytes(16), ServiceId.DATA, 1),  # type: ignore[arg-type]
        lambda: ChirpBeacon(ChirpType.OFFER, bytes(16), bytes(16), 9, 1),  # type: ignore[arg-type]
    ],
)
def test_encode_errors(make: Any) -> None:
    with pytest.raises(EncodeError):
        make().encode()


def test_data_tag_error_names_record_and_key() -> None:
    records = [DataRecord(i, {}, [b""]) for i in range(10)]
    records[7] = DataRecord(7, {"run": {"bad": [1, "x"]}}, [b""])
    with pytest.raises(EncodeError, match=r"records\[7\]\.tags\.run\.bad\[1\]"):
        encode_data_frame("T.t", records)
    records[7] = DataRecord(7, {}, [b"", "text"])  # type: ignore[list-item]
    with pytest.raises(EncodeError, match=r"records\[7\]\.blocks\[1\]"):
        encode_data_frame("T.t", records)


def test_names() -> None:
    assert validate_name("Sputnik_1") == "Sputnik_1"
    assert validate_canonical_name("Sputnik.One") == ("Sputnik", "One")
    assert validate_run_id("run-2_b") == "run-2_b"
    for bad in ("", "a.b", "a b", "a-b", "abc\n", "\u00e9"):
        with pytest.raises(ValueError):
            validate_name(bad)
    for bad in ("Sputnik", "a.b.c", ".b", "a.", "a.b-c"):
        with pytest.raises(ValueError):
            validate_canonical_name(bad)
    for bad in ("", "run 1", "run/1", "run.1"):
        with pytest.raises(ValueError):
            validate_run_id(bad)


anything = st.one_of(
    st.text(max_size=6),
    st.text(st.characters(categories=["Cs", "Lu"]), max_size=3),  # lone surrogates: not UTF-8
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.binary(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), st.integers(), max_size=2),
    st.builds(object),
    st.datetimes(),
)


@pytest.mark.parametrize(
    "cls",
    [
        CSCP1Message,
        CHP1Message,
        CMDP1Log,
        CMDP1Metric,
        CMDP1Notification,
        CDTP2Message,
        ChirpBeacon,
    ],
)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_encoders_raise_only_encode_error(cls: Any, data: st.DataObject) -> None:
    count = {CSCP1Message: 6, CHP1Message: 6, CMDP1Log: 6, CMDP1Metric: 6}.get(cls, 5)
    fields = data.draw(st.lists(anything, min_size=count, max_size=count))
    if cls is CDTP2Message:
        record = DataRecord(*data.draw(st.lists(anything, min_size=3, max_size=3)))
        fields = [*fields[:2], [record]]
    try:
        cls(*fields).encode()
    except EncodeError:
        pass
