"""ReceivingRole with uniform batches: counted by range, handed to ``uniform`` (or as records)."""

from __future__ import annotations

from typing import Any

import pytest

from constellation.protocol.cdtp2 import DataRecord, decode_data_frame, encode_data_frame, make_bor
from constellation.protocol.cdtp2_uniform import UniformBatch, decode_uniform
from constellation.roles.receiving import ReceiveCallbacks, ReceivingRole
from tests.unit.roles.test_receiving_role import FakeReceiver, _context, _ignore

SENDER = "Tx.a"


def _frame(first: int, count: int) -> bytes:
    records = [DataRecord(s, {"k": 1}, [bytes([s % 256]) * 8]) for s in range(first, first + count)]
    return encode_data_frame(SENDER, records)


def _run(uniform: bool) -> tuple[ReceivingRole, list[Any], FakeReceiver]:
    got: list[Any] = []
    receivers: list[FakeReceiver] = []

    def make_receiver() -> Any:
        receivers.append(FakeReceiver())
        return receivers[-1]

    callbacks = ReceiveCallbacks(
        _ignore,
        lambda sender, records: got.append(("records", sender, list(records))),
        _ignore,
        (lambda sender, batch: got.append(("uniform", sender, batch))) if uniform else None,
    )
    role = ReceivingRole(_context(), callbacks, make_receiver)
    role.begin_run("r", {}, {})
    role._dispatch(decode_data_frame(make_bor(SENDER, {}, {}).encode()[0]), 10)
    return role, got, receivers[0]


@pytest.mark.parametrize("uniform", [True, False])
def test_uniform_messages_are_counted_and_handed_on(uniform: bool) -> None:
    role, got, receiver = _run(uniform)
    assert receiver.uniform is uniform  # the receiver only decodes them if wanted
    for first in (1, 11, 31):  # 21..30 are missing
        message = decode_uniform(_frame(first, 10))
        assert message is not None
        role._dispatch(message, 123)
    summary = role.tracker.summary(SENDER)
    assert (summary.records, summary.missed, summary.last_sequence) == (30, 10, 40)
    assert role.rx_records == 30 and role.rx_bytes == 3 * 123
    assert len(got) == 3
    if uniform:
        assert all(kind == "uniform" and isinstance(b, UniformBatch) for kind, _, b in got)
        assert [b.first_seq for _, _, b in got] == [1, 11, 31]
    else:  # no uniform callback: the records, as the general decoder gives them
        assert got[1][2] == list(decode_data_frame(_frame(11, 10)).records)
    role.end_run(interrupted=False)


def test_uniform_data_before_the_bor_counts_as_orphans() -> None:
    role, got, _ = _run(True)
    role.begin_run("r2", {}, {})  # a new run: no BOR yet
    message = decode_uniform(_frame(1, 5))
    assert message is not None
    role._dispatch(message, 50)
    assert got == [] and role.run_condition_text() == "NO_BOR"
    role.end_run(interrupted=False)


@pytest.mark.parametrize("wanted", [True, False])
def test_uniform_wanted_is_asked_when_the_run_begins(wanted: bool) -> None:
    receivers: list[FakeReceiver] = []

    def make_receiver() -> Any:
        receivers.append(FakeReceiver())
        return receivers[-1]

    callbacks = ReceiveCallbacks(_ignore, _ignore, _ignore, _ignore, lambda: wanted)
    role = ReceivingRole(_context(), callbacks, make_receiver)
    role.begin_run("r", {}, {})
    assert receivers[0].uniform is wanted
    role.end_run(interrupted=False)
