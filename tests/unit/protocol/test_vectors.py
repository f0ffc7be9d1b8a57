"""Reference byte vectors (also shown in docs/protocols.md), byte for byte, in both directions."""

from __future__ import annotations

import msgpack

from constellation.protocol import (
    CDTP2Message,
    CDTPType,
    ChirpBeacon,
    ChirpType,
    CHP1Message,
    CMDP1Metric,
    CSCP1Message,
    CSCPType,
    DataRecord,
    ServiceId,
    decode_cmdp1,
    name_id,
)

# The 64-bit timestamp of the CSCP and CHP vectors.
TS = msgpack.unpackb(bytes.fromhex("d7ffa1dcd42067760225"), timestamp=0)


def test_chirp_offer_vector() -> None:
    wire = bytes.fromhex(
        "434849525001 02 3191fe735ce6c6bab5a659fd9bac14fd 70fa57b933da568fd97b0694fc854309 01 5dbf"
    )
    beacon = ChirpBeacon.for_names(ChirpType.OFFER, "edda", "Sputnik.One", ServiceId.CONTROL, 23999)
    assert beacon.encode() == wire
    assert ChirpBeacon.decode(wire) == beacon
    assert name_id("edda").hex() == "3191fe735ce6c6bab5a659fd9bac14fd"
    assert name_id("SPUTNIK.one") == name_id("Sputnik.One")


def test_cscp_start_vector() -> None:
    wire = [
        bytes.fromhex("a5 4353435001 a7 4374726c2e6331 d7ff a1dcd42067760225 80"),
        bytes.fromhex("00 a5 7374617274"),
        bytes.fromhex("a5 72756e5f31"),
    ]
    msg = CSCP1Message("Ctrl.c1", CSCPType.REQUEST, "start", "run_1", {}, TS)
    assert msg.encode() == wire
    assert CSCP1Message.decode(wire) == msg


def test_chp_vector() -> None:
    wire = [
        bytes.fromhex("a4 43485001 ab 537075746e696b2e4f6e65 d7ff a1dcd42067760225 30 06 cd01f4")
    ]
    msg = CHP1Message("Sputnik.One", 0x30, 0x06, 500, None, TS)
    assert msg.encode() == wire
    assert CHP1Message.decode(wire) == msg


def test_cdtp2_vector() -> None:
    wire = [bytes.fromhex("a5 4344545002 a5 54782e7431 00 91 93 01 81 a161 01 91 c402 0102")]
    msg = CDTP2Message("Tx.t1", CDTPType.DATA, [DataRecord(1, {"a": 1}, [b"\x01\x02"])])
    assert msg.encode() == wire
    assert CDTP2Message.decode(wire) == msg


def test_cmdp_stat_cpu_vector() -> None:
    msg = CMDP1Metric("Sputnik.One", "CPU", 1.5, "%")
    topic, _, payload = msg.encode()
    assert topic == bytes.fromhex("535441542f435055")
    assert payload == bytes.fromhex("cb3ff8000000000000 00 a125")
    assert decode_cmdp1(msg.encode()) == msg
