"""Golden frames recorded from the reference package: decode, check fields, re-encode exactly.

The frames come from ``tests/data/golden_frames.json``, written by
``tests/data/capture_golden.py`` (see its docstring for how to re-record them).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest

from constellation.protocol import (
    NO_PAYLOAD,
    CDTP2Message,
    ChirpBeacon,
    CHP1Message,
    CMDP1Log,
    CMDP1Metric,
    CMDP1Notification,
    CSCP1Message,
    decode_cmdp1,
    split_bor_eor,
)

GOLDEN = Path(__file__).parents[2] / "data" / "golden_frames.json"
ENTRIES: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["entries"]


def jsonable(value: Any) -> Any:
    """Our decoded values in the JSON conventions of capture_golden.py."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None, "decoded datetimes must be aware"
        return {"$datetime": value.isoformat()}
    if isinstance(value, msgpack.Timestamp):
        return {"$timestamp": [value.seconds, value.nanoseconds]}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def by_protocol(protocol: str) -> list[Any]:
    return [pytest.param(e, id=e["name"]) for e in ENTRIES if e["protocol"] == protocol]


def frames_of(entry: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(frame) for frame in entry["frames"]]


def test_every_protocol_is_covered() -> None:
    assert {e["protocol"] for e in ENTRIES} == {"CSCP1", "CHP1", "CMDP1", "CDTP2", "CHIRP"}
    names = {e["name"] for e in ENTRIES}
    assert {"cdtp_bor", "cdtp_eor", "cdtp_data_0", "cmdp_notification_log"} <= names


@pytest.mark.parametrize("entry", by_protocol("CSCP1"))
def test_cscp1(entry: dict[str, Any]) -> None:
    frames, want = frames_of(entry), entry["expected"]
    msg = CSCP1Message.decode(frames)
    assert msg.sender == want["sender"]
    assert msg.msg_type == want["msg_type"]
    assert msg.verb == want["verb"]
    assert jsonable(msg.tags) == want["tags"]
    assert jsonable(msg.time) == want["time"]
    assert msg.has_payload == want["has_payload"]
    if want["has_payload"]:
        assert jsonable(msg.payload) == want["payload"]
    else:
        assert msg.payload is NO_PAYLOAD
    assert msg.encode() == frames


@pytest.mark.parametrize("entry", by_protocol("CHP1"))
def test_chp1(entry: dict[str, Any]) -> None:
    frames, want = frames_of(entry), entry["expected"]
    msg = CHP1Message.decode(frames)
    assert msg.sender == want["sender"]
    assert jsonable(msg.time) == want["time"]
    assert (msg.state, msg.flags, msg.interval_ms) == (
        want["state"],
        want["flags"],
        want["interval_ms"],
    )
    assert msg.status == want["status"]
    assert msg.encode() == frames


@pytest.mark.parametrize("entry", by_protocol("CMDP1"))
def test_cmdp1(entry: dict[str, Any]) -> None:
    frames, want = frames_of(entry), entry["expected"]
    msg = decode_cmdp1(frames)
    assert msg.sender == want["sender"]
    assert jsonable(msg.time) == want["time"]
    assert jsonable(msg.tags) == want["tags"]
    assert msg.topic == want["topic"]
    if want["kind"] == "log":
        assert isinstance(msg, CMDP1Log)
        assert (msg.level, msg.log_topic, msg.message) == (
            want["level"],
            want["log_topic"],
            want["message"],
        )
    elif want["kind"] == "metric":
        assert isinstance(msg, CMDP1Metric)
        assert (msg.name, jsonable(msg.value), msg.unit) == (
            want["name"],
            want["value"],
            want["unit"],
        )
    else:
        assert isinstance(msg, CMDP1Notification)
        assert (msg.kind, msg.topics) == (want["topics_kind"], want["topics"])
    assert msg.encode() == frames


@pytest.mark.parametrize("entry", by_protocol("CDTP2"))
def test_cdtp2(entry: dict[str, Any]) -> None:
    frames, want = frames_of(entry), entry["expected"]
    msg = CDTP2Message.decode(frames)
    assert msg.sender == want["sender"]
    assert msg.msg_type == want["msg_type"]
    assert jsonable([list(record) for record in msg.records]) == want["records"]
    if msg.msg_type != 0:
        user_tags, second = split_bor_eor(msg)
        assert jsonable([user_tags, second]) == [want["records"][0][1], want["records"][1][1]]
    assert msg.encode() == frames


@pytest.mark.parametrize("entry", by_protocol("CHIRP"))
def test_chirp(entry: dict[str, Any]) -> None:
    (data,), want = frames_of(entry), entry["expected"]
    beacon = ChirpBeacon.decode(data)
    assert beacon.msg_type == want["msg_type"]
    assert beacon.service == want["service"]
    assert beacon.port == want["port"]
    assert jsonable(beacon.group_id) == want["group_id"]
    assert jsonable(beacon.host_id) == want["host_id"]
    assert beacon == ChirpBeacon.for_names(
        beacon.msg_type, want["group"], want["host"], beacon.service, beacon.port
    )
    assert beacon.encode() == data
