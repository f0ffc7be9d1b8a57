"""Process-wide tuning is the launcher's: library objects leave malloc and gc alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from constellation.net import process_tuning
from constellation.net.data_receiver import DataReceiver
from constellation.net.data_sender import DataSender
from constellation.net.interfaces import NetworkScope
from tests.helpers import LOOPBACK


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.term()


def test_data_sockets_do_not_tune_the_allocator(
    monkeypatch: pytest.MonkeyPatch, context: zmq.Context[Any]
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(process_tuning, "_allocator_tuned", None)
    monkeypatch.setattr(process_tuning, "_set_malloc_thresholds", lambda: calls.append(True))
    sender = DataSender(context, NetworkScope((LOOPBACK,)), "Tx.t")
    receiver = DataReceiver(context)
    sender.close()
    receiver.close()
    assert calls == []


def test_gc_relief_changes_nothing_until_the_launcher_enables_it() -> None:
    relief = process_tuning._GcRelief(threshold=123_456)
    before = gc.get_threshold()
    relief.acquire()
    try:
        assert gc.get_threshold() == before
    finally:
        relief.release()
    relief.enable()
    relief.acquire()
    try:
        assert gc.get_threshold()[0] == max(before[0], 123_456)
    finally:
        relief.release()
    assert gc.get_threshold() == before
