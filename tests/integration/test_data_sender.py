"""DataSender flow control on 127.0.0.1: a full queue blocks the producer, which resumes once
the queue has drained to half its limits, and fails with DataTimeoutError when nothing moves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import zmq

from constellation.errors import DataTimeoutError, SendingStoppedError
from constellation.net.data_sender import DataSender
from constellation.net.interfaces import NetworkScope
from constellation.protocol.cdtp2 import DataRecord, decode_data_frame
from constellation.protocol.cdtp2_reserved import ReservedFrame
from tests.helpers import LOOPBACK

__all__: list[str] = []

QUEUE = 8
BLOCK = b"x" * 2048  # above the 1 KiB payload threshold: one record per DATA message


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.term()


@pytest.fixture
def sender(context: zmq.Context[Any]) -> Iterator[DataSender]:
    snd = DataSender(context, NetworkScope((LOOPBACK,)), "Tx.t")
    snd.configure(payload_threshold_kib=1, queue_size=QUEUE, data_timeout=5.0)
    yield snd
    snd.close()


def _receive(sock: zmq.Socket[Any], count: int) -> list[int]:
    sequences: list[int] = []
    while len(sequences) < count:
        assert sock.poll(5000), f"only {len(sequences)} of {count} records arrived"
        sequences += [r.sequence for r in decode_data_frame(sock.recv()).records]
    return sequences


def test_full_queue_blocks_the_producer_and_loses_nothing(
    sender: DataSender, context: zmq.Context[Any]
) -> None:
    sender.begin_run()
    for _ in range(QUEUE):  # no receiver yet (ZMQ_IMMEDIATE): nothing leaves the queue
        sender.add({}, (BLOCK,), len(BLOCK))
    assert not sender.can_send()
    added = threading.Event()

    def produce() -> None:
        sender.add({}, (BLOCK,), len(BLOCK))
        added.set()
        for _ in range(QUEUE):
            sender.add({}, (BLOCK,), len(BLOCK))

    producer = threading.Thread(target=produce)
    producer.start()
    assert not added.wait(0.3)  # blocked while the queue is full
    pull = context.socket(zmq.PULL)
    pull.connect(f"tcp://{LOOPBACK}:{sender.port}")
    try:
        sequences = _receive(pull, 2 * QUEUE + 1)
        producer.join(10)
        assert not producer.is_alive()
        sender.end_run()
    finally:
        pull.close(0)
    assert sequences == list(range(1, 2 * QUEUE + 2))
    assert sender.records_sent == 2 * QUEUE + 1


def test_producer_fails_when_nothing_is_sent_for_data_timeout(sender: DataSender) -> None:
    sender.configure(payload_threshold_kib=1, queue_size=QUEUE, data_timeout=0.5)
    sender.begin_run()
    for _ in range(QUEUE):
        sender.add({}, (BLOCK,), len(BLOCK))
    start = time.monotonic()
    with pytest.raises(DataTimeoutError, match="receiver did not keep up"):
        sender.add({}, (BLOCK,), len(BLOCK))
    assert 0.4 < time.monotonic() - start < 3.0
    sender.abort()


def _progress(sender: DataSender, sent: int) -> None:
    """Pretend the sender thread has sent ``sent`` records (it is stuck: no receiver)."""
    with sender._cv:
        sender.records_sent = sent
        sender._sent_block_bytes = sent * len(BLOCK)
        sender._cv.notify_all()


def test_waiting_producer_resumes_only_at_half_the_queue(sender: DataSender) -> None:
    sender.begin_run()
    for _ in range(QUEUE):  # the sender thread holds the first one, unable to send it
        sender.add({}, (BLOCK,), len(BLOCK))
    added = threading.Event()

    def produce() -> None:
        sender.add({}, (BLOCK,), len(BLOCK))
        added.set()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        assert not added.wait(0.3)
        _progress(sender, 1)  # room for one record, but far from drained
        assert not added.wait(0.3)
        _progress(sender, QUEUE // 2)
        assert added.wait(5)
    finally:
        sender.abort()
        producer.join(10)


@pytest.mark.parametrize("when", ["before the run", "after end_run", "after abort"])
def test_add_outside_a_run_is_refused_not_queued(
    sender: DataSender, context: zmq.Context[Any], when: str
) -> None:
    """A record added while no run is active would never be sent: add() refuses it."""
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    try:
        pull.connect(f"tcp://{LOOPBACK}:{sender.port}")
        if when != "before the run":
            sender.begin_run()
            assert sender.add({}, (b"x",), 1) == 1
            if when == "after end_run":
                sender.end_run()
                assert _receive(pull, 1) == [1]
            else:
                sender.abort()
        sequence = sender.sequence
        with pytest.raises(SendingStoppedError, match="no run is active"):
            sender.add({}, (b"late",), 4)
        assert sender.sequence == sequence  # nothing was queued
    finally:
        pull.close()


def test_reserved_frames_go_out_in_order_between_batched_records(
    sender: DataSender, context: zmq.Context[Any]
) -> None:
    """add_frame seals the open batch first, numbers the frame and sends it as it was written."""
    sender.configure(payload_threshold_kib=64, queue_size=QUEUE * 4, data_timeout=5.0)
    pull = context.socket(zmq.PULL)
    pull.connect(f"tcp://{LOOPBACK}:{sender.port}")
    try:
        sender.begin_run()
        assert sender.add({}, (b"a",), 1) == 1  # an open batch, under the threshold
        frame = ReservedFrame("Tx.t", {"kind": "reserved"}, 100_000)
        frame.block[:] = bytes(range(256)) * 390 + bytes(160)
        assert sender.add_frame(frame) == 2
        assert sender.add({}, (b"c",), 1) == 3
        sender.end_run()
        messages: list[Sequence[DataRecord]] = []
        while len(messages) < 3:
            assert pull.poll(5000), f"only {len(messages)} messages arrived"
            messages.append(decode_data_frame(pull.recv()).records)
    finally:
        pull.close(0)
    assert [[r.sequence for r in records] for records in messages] == [[1], [2], [3]]
    reserved = messages[1][0]
    assert reserved.tags == {"kind": "reserved"}
    assert bytes(reserved.blocks[0]) == bytes(frame.block)
    assert sender.records_sent == 3 and sender.pending_records == 0


def test_add_frame_outside_a_run_is_refused_not_queued(sender: DataSender) -> None:
    with pytest.raises(SendingStoppedError, match="no run is active"):
        sender.add_frame(ReservedFrame("Tx.t", {}, 8))
    assert sender.sequence == 0


def test_add_frame_waits_for_room_like_add(sender: DataSender) -> None:
    sender.configure(payload_threshold_kib=1, queue_size=QUEUE, data_timeout=0.5)
    sender.begin_run()
    for _ in range(QUEUE):  # no receiver: the queue fills up
        sender.add({}, (BLOCK,), len(BLOCK))
    with pytest.raises(DataTimeoutError, match="receiver did not keep up"):
        sender.add_frame(ReservedFrame("Tx.t", {}, 8))
    assert sender.sequence == QUEUE  # the frame was not queued
    sender.abort()
