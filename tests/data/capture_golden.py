"""Record golden wire frames from the reference implementation (PyPI ``constellationdaq``).

Every frame in ``golden_frames.json`` is produced by the reference package's own message
classes and transmitter objects (over in-process ZeroMQ sockets where the package only offers a
socket-based sender), together with a description of the fields a decoder must find in it.
``tests/unit/protocol/test_golden.py`` decodes each entry with our codecs, checks those fields
and re-encodes the message byte for byte.

The reference package is also imported as ``constellation``, so it must live in its own
virtual environment, never in the project's. To (re-)create the file:

    python3 -m venv /tmp/goldvenv
    /tmp/goldvenv/bin/pip install constellationdaq==1.0.2
    /tmp/goldvenv/bin/python tests/data/capture_golden.py          # from the repository root

The script writes ``golden_frames.json`` next to itself (pass another path as first argument
to write elsewhere). Header timestamps of socket-sent messages come from the clock, so a
re-run changes those bytes; the test derives everything it checks from the file.

JSON conventions for expected values: bytes are ``{"$bytes": "<hex>"}``, datetimes
``{"$datetime": "<ISO 8601, UTC>"}`` and msgpack timestamps ``{"$timestamp": [s, ns]}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgpack
import zmq

try:
    from constellation.core.cdtp import DataTransmitter
    from constellation.core.chirp import (
        CHIRPMessage,
        CHIRPMessageType,
        CHIRPServiceIdentifier,
        get_uuid,
    )
    from constellation.core.chp import CHPMessageFlags, CHPTransmitter, chp_decode_message
    from constellation.core.cscp import CommandTransmitter
    from constellation.core.message.cdtp2 import (
        CDTP2BORMessage,
        CDTP2EORMessage,
        CDTP2Message,
        DataRecord,
    )
    from constellation.core.message.cmdp1 import (
        CMDP1LogMessage,
        CMDP1Message,
        CMDP1Notification,
        CMDP1StatMessage,
    )
    from constellation.core.message.cscp1 import CSCP1Message
    from constellation.core.protocol.cmdp1 import LogLevel, Metric
except ImportError as exc:  # pragma: no cover - guidance for the person running the script
    sys.exit(f"needs the reference package (see the module docstring): {exc}")

UTC = timezone.utc
T0 = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)

# --- JSON helpers ---------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Expected values in the JSON conventions of the module docstring."""
    if isinstance(value, datetime):
        return {"$datetime": value.astimezone(UTC).isoformat()}
    if isinstance(value, msgpack.Timestamp):
        return {"$timestamp": [value.seconds, value.nanoseconds]}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


ENTRIES: list[dict[str, Any]] = []


def add(
    name: str, protocol: str, description: str, frames: list[bytes], /, **expected: Any
) -> None:
    ENTRIES.append(
        {
            "name": name,
            "protocol": protocol,
            "description": description,
            "frames": [bytes(frame).hex() for frame in frames],
            "expected": jsonable(expected),
        }
    )


# --- CSCP1 ----------------------------------------------------------------------------------------


def cscp_header_time(frames: list[bytes]) -> msgpack.Timestamp:
    """The header timestamp of frames[0] as sent (the reference decoder returns a datetime)."""
    unpacker = msgpack.Unpacker()
    unpacker.feed(frames[0])
    unpacker.unpack()
    unpacker.unpack()
    return unpacker.unpack()


def cscp_expected(frames: list[bytes]) -> dict[str, Any]:
    msg = CSCP1Message.disassemble(frames)
    has_payload = len(frames) == 3
    payload = None
    if has_payload:
        payload = msgpack.unpackb(frames[2], timestamp=3)
    return {
        "sender": msg.sender,
        "msg_type": int(msg.verb_type),
        "verb": msg.verb_msg,
        "tags": msg.tags,
        "has_payload": has_payload,
        "payload": payload,
        "time": cscp_header_time(frames),
    }


def capture_cscp(ctx: zmq.Context[Any]) -> None:
    rep = ctx.socket(zmq.REP)
    rep.bind("inproc://cscp")
    req = ctx.socket(zmq.REQ)
    req.connect("inproc://cscp")
    controller = CommandTransmitter("Ctrl.c1", req)
    satellite = CommandTransmitter("Sputnik.One", rep)

    def exchange(
        name: str,
        command: str,
        payload: Any,
        reply: tuple[str, CSCP1Message.Type, Any, dict[str, Any] | None],
        request_tags: dict[str, Any] | None = None,
    ) -> None:
        controller.send_request(command, payload, request_tags)
        frames = rep.recv_multipart()
        add(
            f"cscp_request_{name}",
            "CSCP1",
            f"request '{command}' sent by the reference CommandTransmitter over REQ/REP",
            frames,
            **cscp_expected(frames),
        )
        text, msg_type, reply_payload, tags = reply
        satellite.send_reply(text, msg_type, reply_payload, tags)
        frames = req.recv_multipart()
        add(
            f"cscp_reply_{name}",
            "CSCP1",
            f"{msg_type.name} reply to '{command}' sent by the reference CommandTransmitter",
            frames,
            **cscp_expected(frames),
        )

    last_changed = datetime.now(UTC)
    exchange(
        "get_state",
        "get_state",
        None,
        (
            "ORBIT",
            CSCP1Message.Type.SUCCESS,
            0x30,
            {"last_changed": last_changed, "last_changed_iso": last_changed.isoformat()},
        ),
    )
    exchange(
        "get_commands",
        "get_commands",
        None,
        (
            "3 commands known",
            CSCP1Message.Type.SUCCESS,
            {
                "get_name": "Get canonical name.\nNo arguments.",
                "get_state": "Get state.\nNo arguments.",
                "start": "Start a run.\nArguments: run_identifier: str.",
            },
            {},
        ),
    )
    exchange("start", "start", "run_1", ("transitioning", CSCP1Message.Type.SUCCESS, "start", {}))
    exchange(
        "initialize",
        "initialize",
        {
            "voltage": 1.5,
            "channels": [1, 2, 3],
            "names": ["a", "b"],
            "enabled": True,
            "label": "setup",
            "_autonomy": {"role": "ESSENTIAL", "max_heartbeat_interval": 10},
            "_conditions": {"require_starting_after": ["Sputnik.Two"]},
            "big": 2**40,
            "negative": -5,
            "empty": [],
        },
        ("transitioning", CSCP1Message.Type.SUCCESS, "initialize", {}),
        request_tags={"origin": "golden", "attempt": 1},
    )
    exchange(
        "launch_in_new",
        "launch",
        None,
        ("Transition not allowed: launch in NEW", CSCP1Message.Type.INVALID, None, None),
    )
    exchange(
        "unknown",
        "frobnicate",
        [1, "two", 3.0],
        ("Unknown command: frobnicate", CSCP1Message.Type.UNKNOWN, None, None),
    )
    exchange(
        "get_role",
        "get_role",
        None,
        ("ESSENTIAL", CSCP1Message.Type.SUCCESS, 7, {}),
    )
    req.close(linger=0)
    rep.close(linger=0)

    # Message objects with a fixed time, sent by nobody: byte-stable entries.
    for name, msg_type, verb, payload, tags in (
        ("fixed_request_no_payload", CSCP1Message.Type.REQUEST, "get_name", None, None),
        ("fixed_error", CSCP1Message.Type.ERROR, "Can only handle REQUEST", None, {"a": "b"}),
        ("fixed_notimplemented", CSCP1Message.Type.NOTIMPLEMENTED, "reconfigure", "x", None),
        ("fixed_incomplete", CSCP1Message.Type.INCOMPLETE, "Wrong argument: x", "x", None),
    ):
        msg = CSCP1Message("Sputnik.One", (msg_type, verb), T0, tags)
        if payload is not None:
            msg.payload = payload
        frames = msg.assemble().frames
        add(
            f"cscp_{name}",
            "CSCP1",
            f"{msg_type.name} message assembled by the reference CSCP1Message",
            frames,
            **cscp_expected(frames),
        )


# --- CHP1 -----------------------------------------------------------------------------------------


def capture_chp(ctx: zmq.Context[Any]) -> None:
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://chp")
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://chp")
    sender = CHPTransmitter("Sputnik.One", push)
    dynamic = CHPMessageFlags.MARK_DEGRADED | CHPMessageFlags.TRIGGER_INTERRUPT
    cases = [
        ("regular_orbit", 0x30, 500, dynamic, None),
        ("extrasystole_run", 0x40, 1500, dynamic | CHPMessageFlags.IS_EXTRASYSTOLE, "Run started"),
        ("error_state", 0xF0, 30000, CHPMessageFlags.DENY_DEPARTURE | dynamic, "Failure: boom"),
        ("new_no_role", 0x10, 65535, CHPMessageFlags.NONE, None),
        (
            "interrupting_unicode",
            0x0E,
            500,
            CHPMessageFlags.MARK_DEGRADED,
            "Status: \u00e9t\u00e9 \u2713",
        ),
    ]
    for name, state, interval, flags, status in cases:
        sender.send(state, interval, flags, status)
        frames = pull.recv_multipart()
        host, timestamp, rstate, rflags, rinterval, rstatus = chp_decode_message(frames)
        add(
            f"chp_{name}",
            "CHP1",
            "heartbeat sent by the reference CHPTransmitter"
            + (" with a status frame" if status else " without status frame"),
            frames,
            sender=host,
            time=timestamp,
            state=rstate,
            flags=int(rflags),
            interval_ms=rinterval,
            status=rstatus,
        )
    push.close(linger=0)
    pull.close(linger=0)


# --- CMDP1 ----------------------------------------------------------------------------------------


def cmdp_common(frames: list[bytes]) -> dict[str, Any]:
    msg = CMDP1Message.disassemble(frames)
    return {
        "sender": msg.sender,
        "time": cscp_header_time(frames[1:]),  # same header layout as CSCP
        "tags": msg.tags,
        "topic": msg.cmdp_topic,
    }


def capture_cmdp() -> None:
    logger = logging.getLogger("golden")
    record = logger.makeRecord(
        "golden.fsm", logging.WARNING, "satellite.py", 42, "Voltage %s too high", (7.5,), None
    )
    record.funcName = "do_launching"
    messages: list[tuple[str, str, Any]] = [
        (
            "log_from_record",
            "log message made from a logging.LogRecord (the reference sender's path)",
            CMDP1LogMessage.from_log_record(record, "Sputnik.One"),
        ),
        (
            "log_no_topic",
            "log message without log topic",
            CMDP1LogMessage("Sputnik.One", LogLevel.STATUS, "", "Launched", T0, {}),
        ),
        (
            "log_trace_topic",
            "TRACE log message with topic and non-ASCII text",
            CMDP1LogMessage("Sputnik.One", LogLevel.TRACE, "LINK", "caf\u00e9 \u2192 ok", T0),
        ),
        (
            "log_critical",
            "CRITICAL log message with a traceback tag",
            CMDP1LogMessage(
                "Sputnik.One", LogLevel.CRITICAL, "FSM", "boom", T0, {"traceback": "Trace..."}
            ),
        ),
    ]
    for name, value, unit in (
        ("CPU", 1.5, "%"),
        ("MEM_AVAIL", 15872, "MiB"),
        ("RUN_ID", "run_1", ""),
        ("STATE", "ORBIT", ""),
        ("FLAG", True, ""),
        ("NOTHING", None, ""),
        ("NEGATIVE", -123456789012, "count"),
        ("rx_bytes", 2**33, "B"),
    ):
        messages.append(
            (
                f"stat_{name.lower()}",
                f"metric {name} = {value!r} made by the reference CMDP1StatMessage",
                CMDP1StatMessage("Sputnik.One", Metric(name, unit, "desc"), value, T0),
            )
        )
    messages.append(
        (
            "notification_log",
            "LOG? notification (log topics)",
            CMDP1Notification("Sputnik.One", "LOG", {"FSM": "", "LINK": "", "SATELLITE": ""}, T0),
        )
    )
    messages.append(
        (
            "notification_stat",
            "STAT? notification (metric descriptions)",
            CMDP1Notification(
                "Sputnik.One", "STAT", {"CPU_LOAD_AVG": "CPU load", "RUN_ID": "Run id"}, T0
            ),
        )
    )
    for name, description, msg in messages:
        frames = msg.assemble().frames
        expected = cmdp_common(frames)
        if isinstance(msg, CMDP1LogMessage):
            expected.update(
                kind="log",
                level=msg.log_level.name,
                log_topic=msg.log_topic,
                message=msg.log_message,
            )
        elif isinstance(msg, CMDP1StatMessage):
            decoded = CMDP1StatMessage.disassemble(frames)
            expected.update(
                kind="metric",
                name=decoded.metric.name,
                value=decoded.value,
                unit=decoded.metric.unit,
            )
        else:
            decoded_n = CMDP1Notification.disassemble(frames)
            expected.update(
                kind="notification", topics_kind=decoded_n.topics_prefix, topics=decoded_n.topics
            )
        add(f"cmdp_{name}", "CMDP1", description, frames, **expected)


# --- CDTP2 ----------------------------------------------------------------------------------------


class _QuietLogger:
    def debug(self, *args: Any) -> None:
        pass

    trace = info = warning = debug


def cdtp_expected(frame: bytes) -> dict[str, Any]:
    msg = CDTP2Message.disassemble([frame])
    return {
        "sender": msg.sender,
        "msg_type": int(msg.type),
        "records": [
            [record.sequence_number, record.tags, record.blocks] for record in msg.data_records
        ],
    }


def capture_cdtp(ctx: zmq.Context[Any]) -> None:
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://cdtp")
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://cdtp")
    failures: list[str] = []
    tx = DataTransmitter("RandomTransmitter.t1", push, _QuietLogger(), failures.append)  # type: ignore[arg-type]
    config = {
        "seed": 42,
        "block_size": 64,
        "rate": 2.5,
        "_autonomy": {"role": "DYNAMIC"},
        "_data": {"payload_threshold": 128, "license": "ODC-By-1.0"},
        "channels": ["x", "y"],
    }
    tx.send_bor({"dtype": "uint8", "start_time": T0}, config)
    frames = pull.recv_multipart()
    add(
        "cdtp_bor",
        "CDTP2",
        "BOR sent by the reference DataTransmitter (user tags, configuration)",
        frames,
        **cdtp_expected(frames[0]),
    )
    tx.start_sending()
    payloads = [bytes(range(64)), b"", bytes(200), b"\xff" * 3]
    for index in range(6):
        record = tx.new_data_record({"event": index, "dtype": "uint8"} if index % 2 else None)
        for block in payloads[: index % 4]:
            record.add_block(block)
        tx.send_data_record(record)
    tx.stop_sending()
    for index, frames in enumerate(drain(pull)):
        add(
            f"cdtp_data_{index}",
            "CDTP2",
            "DATA message sent by the reference DataTransmitter's push thread",
            frames,
            **cdtp_expected(frames[0]),
        )
    metadata = {
        "version": "1.0.2",
        "cnstln_version": "1.0.2",
        "cnstln_codename": "Corona Australis",
        "run_id": "run_1",
        "time_start": T0,
        "license": "ODC-By-1.0",
        "time_end": T0 + timedelta(seconds=90, microseconds=1),
        "condition_code": 0,
        "condition": "GOOD",
        "data_records": 6,
    }
    tx.send_eor({"note": "golden"}, metadata)
    frames = pull.recv_multipart()
    add(
        "cdtp_eor",
        "CDTP2",
        "EOR sent by the reference DataTransmitter (user tags, run metadata)",
        frames,
        **cdtp_expected(frames[0]),
    )
    push.close(linger=0)
    pull.close(linger=0)
    if failures:
        raise RuntimeError(f"transmitter failed: {failures}")

    # Directly assembled messages: no records, a large sequence number, many records.
    empty = CDTP2Message("Tx.t1", CDTP2Message.Type.DATA)
    big = CDTP2Message("Tx.t1", CDTP2Message.Type.DATA)
    for seq in (2**40, 2**64 - 1):
        record = DataRecord(seq, {"nested": {"depth": {"x": [1.5, 2.5]}}, "when": T0})
        record.add_block(b"\x00\x01")
        big.add_data_record(record)
    for name, description, msg in (
        ("cdtp_data_empty", "DATA message without records", empty),
        ("cdtp_data_big_sequence", "DATA records with 2^40 and 2^64-1 sequence numbers", big),
        (
            "cdtp_bor_empty",
            "BOR with empty maps",
            CDTP2BORMessage("Tx.t1", {}, {}),
        ),
        (
            "cdtp_eor_interrupted",
            "EOR of an interrupted run",
            CDTP2EORMessage(
                "Tx.t1", {}, {"condition_code": 4, "condition": "INTERRUPTED", "run_id": "r-2"}
            ),
        ),
    ):
        frames = msg.assemble().frames
        add(name, "CDTP2", description, frames, **cdtp_expected(frames[0]))


def drain(sock: zmq.Socket[Any]) -> list[list[bytes]]:
    received = []
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if sock.poll(100):
            received.append(sock.recv_multipart())
            deadline = time.monotonic() + 0.3
    return received


# --- CHIRP ----------------------------------------------------------------------------------------


def capture_chirp() -> None:
    for group, host, msgtype, service, port in (
        ("edda", "Sputnik.One", CHIRPMessageType.OFFER, CHIRPServiceIdentifier.CONTROL, 23999),
        ("edda", "Sputnik.One", CHIRPMessageType.OFFER, CHIRPServiceIdentifier.HEARTBEAT, 40001),
        ("Edda", "sputnik.one", CHIRPMessageType.OFFER, CHIRPServiceIdentifier.MONITORING, 1),
        ("testbeam", "Tx.t1", CHIRPMessageType.OFFER, CHIRPServiceIdentifier.DATA, 65535),
        ("testbeam", "Ctrl", CHIRPMessageType.REQUEST, CHIRPServiceIdentifier.CONTROL, 0),
        ("testbeam", "Ctrl", CHIRPMessageType.REQUEST, CHIRPServiceIdentifier.HEARTBEAT, 0),
        ("testbeam", "Tx.t1", CHIRPMessageType.DEPART, CHIRPServiceIdentifier.DATA, 51234),
        ("testbeam", "Tx.t1", CHIRPMessageType.DEPART, CHIRPServiceIdentifier.MONITORING, 0),
    ):
        msg = CHIRPMessage(msgtype, get_uuid(group), get_uuid(host), service, port)
        data = msg.pack()
        add(
            f"chirp_{msgtype.name.lower()}_{service.name.lower()}",
            "CHIRP",
            f"{msgtype.name} beacon packed by the reference CHIRPMessage",
            [data],
            group=group,
            host=host,
            msg_type=msgtype.value,
            service=service.value,
            port=port,
            group_id=get_uuid(group).bytes,
            host_id=get_uuid(host).bytes,
        )


def main() -> None:
    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("golden_frames.json")
    )
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        capture_cscp(ctx)
        capture_chp(ctx)
        capture_cmdp()
        capture_cdtp(ctx)
        capture_chirp()
    finally:
        ctx.term()
    from importlib.metadata import version

    document = {
        "generator": "tests/data/capture_golden.py",
        "reference": f"constellationdaq {version('constellationdaq')}",
        "msgpack": ".".join(map(str, msgpack.version)),
        "entries": ENTRIES,
    }
    target.write_text(json.dumps(document, indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {len(ENTRIES)} entries to {target}")


if __name__ == "__main__":
    main()
