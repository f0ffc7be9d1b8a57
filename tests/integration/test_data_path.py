"""The data path end to end: BOR / DATA / EOR between transmitters and receivers on 127.0.0.1.

Transmitters and receivers defined here run in this process (``satellites`` fixture), where
what they sent and received can be read directly; RandomTransmitter and DevNullReceiver also run
as console-script processes (``processes`` fixture) where a test kills one or needs its CLI.
Every satellite is steered by a Controller, as a user would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from constellation.core.config import Configuration
from constellation.core.environment import ProcessSettings
from constellation.core.run_tracker import SUBSTITUTE_KEY
from constellation.core.states import State
from constellation.errors import UsageError
from constellation.net.discovery import DiscoveredService, ServiceId
from constellation.protocol.cdtp2 import CDTPType, DataRecord, encode_data_frame
from constellation.receiver import ReceiverSatellite
from constellation.roles import receiving
from constellation.transmitter import TransmitterSatellite
from controller import Controller
from tests.helpers import LOOPBACK, cycle_to_run, wait_for

__all__: list[str] = []

TX, RX = "Source.tx", "Collector.rx"


class Source(TransmitterSatellite):
    """Sends ``records`` records in the way ``mode`` says, then waits for ``stop``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blocked = threading.Event()  # can_send_record() was False at least once
        self.results: list[int] = []

    def do_initializing(self, config: Configuration) -> str:
        self.records = config.get_int("records", 10, min=0)
        self.mode = config.get_str("mode", "tagged", choices=["tagged", "small", "numpy", "flood"])
        self.taint = config.get_bool("taint", False)
        return "ready"

    def do_starting(self, run_id: str) -> None:
        self.bor_tags = {"run": run_id, "origin": "test", "gain": 2.5}
        self.results = []

    def do_run(self, run_id: str) -> None:
        getattr(self, f"_send_{self.mode}")()
        self.wait_for_stop(None)

    def _send_tagged(self) -> None:
        for i in range(1, self.records + 1):
            blocks = [bytes([i % 256]) * i, b"", bytearray(b"second")]
            self.results.append(self.send_record(blocks, {"index": i, "name": f"r{i}"}))

    def _send_small(self) -> None:
        send, block = self.send_record, b"0123456789abcdef"
        for _ in range(self.records):
            send(block)

    def _send_numpy(self) -> None:
        arrays = [
            np.arange(10, dtype=np.float32),
            np.arange(6, dtype=">u2"),  # big-endian: the tag keeps the byte order
            np.arange(20, dtype=np.int64)[::2],  # not contiguous: sent as a copy
            np.zeros((2, 3), dtype=np.uint8),
        ]
        for array in arrays:
            self.results.append(self.send_record(array))
        self.results.append(self.send_record([np.ones(3, np.int16)], {"dtype": "custom"}))

    def _send_flood(self) -> None:
        block = bytes(64 * 1024)
        while not self.stop_requested():
            if not self.can_send_record():
                self.blocked.set()
            self.send_record(block)

    def do_stopping(self) -> None:
        self.eor_tags = {"closing": True, "count": len(self.results)}
        if self.taint:
            self.mark_run_tainted("test asked for it")


class Collector(ReceiverSatellite):
    """Keeps everything it receives (or, with ``count_only``, a count per sequence number)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bors: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.eors: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.records: list[DataRecord] = []
        self.count_only = False
        self.seen = bytearray()
        self.received = 0
        self.slow = 0.0
        self.per_record = False

    def do_starting(self, run_id: str) -> None:
        self.bors, self.eors, self.records, self.received = {}, {}, [], 0

    def receive_bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        self.bors[sender] = (user_tags, config)

    def receive_data(self, sender: str, record: DataRecord) -> None:
        self.records.append(record)
        self.received += 1

    def receive_data_batch(self, sender: str, records: Sequence[DataRecord]) -> None:
        if self.per_record:
            super().receive_data_batch(sender, records)  # one receive_data call per record
            return
        if self.slow:
            self.wait_for_stop(self.slow)
        self.received += len(records)
        if not self.count_only:
            self.records.extend(records)
            return
        seen = self.seen
        for sequence in map(attrgetter("sequence"), records):
            seen[sequence] += 1

    def receive_eor(self, sender: str, user_tags: dict[str, Any], meta: dict[str, Any]) -> None:
        self.eors[sender] = (user_tags, meta)


@pytest.fixture
def ctl(group: str, process_settings: ProcessSettings) -> Iterator[Controller]:
    controller = Controller(group, interface=LOOPBACK, settings=process_settings)
    yield controller
    controller.close()


def _config(
    tx: dict[str, Any] | None = None, rx: dict[str, Any] | None = None, tx_name: str = TX
) -> dict[str, Any]:
    tx_type, _, tx_sat = tx_name.partition(".")
    tx_section = {"_conditions": {"require_starting_after": [RX]}, **(tx or {})}
    return {tx_type: {tx_sat: tx_section}, "Collector": {"rx": rx or {}}}


def _to_run(ctl: Controller, config: dict[str, Any], run_id: str = "run_1") -> None:
    cycle_to_run(ctl, config, run_id)


def _stop(ctl: Controller, targets: list[str] | None = None) -> None:
    ctl.stop(targets)
    ctl.await_state("ORBIT", 20, targets)


# --- the normal run ------------------------------------------------------------------------------
def test_round_trip_carries_tags_config_and_run_metadata(satellites: Any, ctl: Controller) -> None:
    tx = satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    ctl.await_satellites([TX, RX])
    _to_run(ctl, _config({"records": 5}))
    # They arrive before any stop: a partial batch goes out 50 ms after its first record.
    wait_for(lambda: len(rx.records) == 5, what="5 records")
    _stop(ctl)

    user_tags, config = rx.bors[TX]
    assert user_tags == {"run": "run_1", "origin": "test", "gain": 2.5}
    assert config["records"] == 5 and config["mode"] == "tagged"
    assert config["_data"]["queue_size"] == 32768  # defaults used are part of the BOR
    assert [r.sequence for r in rx.records] == tx.results == [1, 2, 3, 4, 5]
    assert [r.tags for r in rx.records] == [{"index": i, "name": f"r{i}"} for i in range(1, 6)]
    assert [[bytes(b) for b in r.blocks] for r in rx.records] == [
        [bytes([i]) * i, b"", b"second"] for i in range(1, 6)
    ]
    eor_tags, meta = rx.eors[TX]
    assert eor_tags == {"closing": True, "count": 5}
    assert meta["run_id"] == "run_1" and meta["data_records"] == 5
    assert meta["condition"] == "GOOD" and meta["condition_code"] == 0
    assert meta["version"] == tx.version and SUBSTITUTE_KEY not in meta
    assert meta["time_start"] <= meta["time_end"]
    assert rx.tracker.summary(TX).missed == 0
    assert {"TX_RECORDS", "TX_BYTES"} <= set(tx.metrics.topics())
    assert {"RX_RECORDS", "RX_BYTES"} <= set(rx.metrics.topics())
    # rates are computed by listeners, never put on the wire
    assert not any(name.endswith("RATE") for name in [*tx.metrics.topics(), *rx.metrics.topics()])
    assert tx.data is not None and tx.data.records_sent == rx.rx_records == 5
    assert tx.data.bytes_sent == rx.rx_bytes > 0

    # Next run: sequence numbers restart at 1; a tainted run says so in its EOR.
    ctl.land()
    ctl.await_state("INIT", 10)
    _to_run(ctl, _config({"records": 3, "taint": True}), "run_2")
    wait_for(lambda: len(rx.records) == 3, what="3 records")
    _stop(ctl)
    assert [r.sequence for r in rx.records] == [1, 2, 3]
    assert rx.eors[TX][1]["condition"] == "TAINTED"
    assert rx.eors[TX][1]["run_id"] == "run_2"
    assert tx.state is State.ORBIT and rx.state is State.ORBIT


def test_a_million_records_arrive_exactly_once(satellites: Any, ctl: Controller) -> None:
    n = 1_000_000
    satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    rx.count_only, rx.seen = True, bytearray(n + 2)
    ctl.await_satellites([TX, RX])
    started = time.monotonic()
    _to_run(ctl, _config({"records": n, "mode": "small"}))
    # Stop at once: do_run sends all records, the queue is drained, then the EOR goes out.
    ctl.stop()
    ctl.await_state("ORBIT", 60)
    elapsed = time.monotonic() - started
    assert rx.received == n
    assert rx.seen[0] == 0 and rx.seen[n + 1] == 0
    assert rx.seen[1 : n + 1] == b"\x01" * n, "every sequence number exactly once"
    meta = rx.eors[TX][1]
    assert meta["data_records"] == n and meta["condition"] == "GOOD"
    summary = rx.tracker.summary(TX)
    assert (summary.missed, summary.duplicates, summary.out_of_order) == (0, 0, 0)
    print(f"{n} records in {elapsed:.1f} s including the transitions")


def test_numpy_blocks_travel_with_their_dtype(satellites: Any, ctl: Controller) -> None:
    satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    rx.per_record = True
    ctl.await_satellites([TX, RX])
    _to_run(ctl, _config({"mode": "numpy"}))
    wait_for(lambda: len(rx.records) == 5, what="5 records")
    _stop(ctl)
    dtypes = [r.tags["dtype"] for r in rx.records]
    assert dtypes == ["float32", ">u2", "int64", "uint8", "custom"]
    values = [
        np.frombuffer(r.blocks[0], dtype=np.dtype(d))
        for r, d in zip(rx.records[:4], dtypes[:4], strict=True)
    ]
    np.testing.assert_array_equal(values[0], np.arange(10, dtype=np.float32))
    np.testing.assert_array_equal(values[1], np.arange(6))
    np.testing.assert_array_equal(values[2], np.arange(0, 20, 2))
    np.testing.assert_array_equal(values[3], np.zeros(6))
    assert bytes(rx.records[4].blocks[0]) == np.ones(3, np.int16).tobytes()


def test_large_blocks_arrive_intact(satellites: Any, ctl: Controller) -> None:
    class Big(TransmitterSatellite):
        def do_run(self, run_id: str) -> None:
            rng = np.random.default_rng(1)
            self.sent = [rng.integers(0, 256, size, dtype=np.uint8) for size in (70_000, 1 << 20)]
            for array in self.sent:
                self.send_record([array, b"tail"])
            self.wait_for_stop(None)

    tx = satellites(Big, "tx")
    rx = satellites(Collector, "rx")
    ctl.await_satellites(["Big.tx", RX])
    _to_run(ctl, _config(tx_name="Big.tx"))
    wait_for(lambda: len(rx.records) == 2, what="2 large records")
    _stop(ctl)
    for record, array in zip(rx.records, tx.sent, strict=True):
        assert bytes(record.blocks[0]) == array.tobytes() and bytes(record.blocks[1]) == b"tail"
    assert rx.eors["Big.tx"][1]["condition"] == "GOOD"


def test_reserved_records_arrive_in_order_among_sent_ones(satellites: Any, ctl: Controller) -> None:
    class Reserving(TransmitterSatellite):
        def do_run(self, run_id: str) -> None:
            rng = np.random.default_rng(2)
            self.sent = [rng.integers(0, 256, size, dtype=np.uint8) for size in (300_000, 5)]
            self.results = [self.send_record(b"before", {"i": 0})]
            with self.reserve_record(self.sent[0].nbytes, {"i": 1}) as buffer:
                np.frombuffer(buffer, np.uint8)[:] = self.sent[0]
            self.results.append(self.send_record(b"between", {"i": 2}))
            record = self.reserve_record(5, {"i": 3, "dtype": "uint8"})
            record.buffer[:] = self.sent[1].tobytes()
            self.results.append(record.send())
            with pytest.raises(UsageError, match="sent already"):
                record.send()
            with pytest.raises(RuntimeError, match="discarded"), self.reserve_record(4) as b:
                b[:] = b"lost"
                raise RuntimeError("discarded: never sent")
            self.results.append(self.send_record(b"after", {"i": 4}))
            self.wait_for_stop(None)

    tx = satellites(Reserving, "tx")
    rx = satellites(Collector, "rx")
    rx.per_record = True
    ctl.await_satellites(["Reserving.tx", RX])
    _to_run(ctl, _config(tx_name="Reserving.tx"))
    wait_for(lambda: len(rx.records) == 5, what="5 records")
    _stop(ctl)
    assert tx.results == [1, 3, 4, 5]  # the with-block sent record 2 itself
    assert [(r.sequence, r.tags["i"]) for r in rx.records] == [(i + 1, i) for i in range(5)]
    blocks = [bytes(r.blocks[0]) for r in rx.records]
    assert blocks[0::2] == [b"before", b"between", b"after"]
    assert blocks[1] == tx.sent[0].tobytes() and blocks[3] == tx.sent[1].tobytes()
    assert rx.eors["Reserving.tx"][1]["data_records"] == 5


def test_interrupted_transmitter_sends_an_interrupted_eor(satellites: Any, ctl: Controller) -> None:
    tx = satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    ctl.await_satellites([TX, RX])
    _to_run(ctl, _config({"records": 4, "_autonomy": {"role": "NONE"}}))
    wait_for(lambda: len(rx.records) == 4, what="4 records")
    assert ctl.satellites[TX].command("_interrupt").ok
    wait_for(lambda: TX in rx.eors, what="EOR after the interrupt")
    # the EOR goes out while the transmitter is still interrupting; SAFE follows
    wait_for(lambda: tx.state is not State.interrupting, what="the interrupt to end")
    assert tx.state is State.SAFE and rx.state is State.RUN
    assert rx.eors[TX][1]["condition"] == "INTERRUPTED"
    assert rx.eors[TX][1]["data_records"] == 4
    _stop(ctl, [RX])


# --- back-pressure -------------------------------------------------------------------------------
def test_slow_receiver_blocks_then_fails_the_transmitter(satellites: Any, ctl: Controller) -> None:
    tx = satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    rx.slow = 0.5
    ctl.await_satellites([TX, RX])
    tx_data = {"data_timeout": 1, "queue_size": 20, "payload_threshold": 64}
    _to_run(ctl, _config({"mode": "flood", "_data": tx_data}))
    wait_for(lambda: tx.state is State.ERROR, timeout=20, what="transmitter in ERROR")
    assert tx.blocked.is_set(), "send_record had to wait for room first"
    assert "receiver did not keep up" in tx.status
    assert tx.data is not None and tx.data.pending_records > 0  # failed, not dropped silently


def _stalled(history: list[int], value: int, polls: int = 5) -> bool:
    """Record ``value``; True once it has not changed over the last ``polls`` polls."""
    history.append(value)
    return len(history) > polls and len(set(history[-polls - 1 :])) == 1


def test_interrupt_unblocks_a_transmitter_waiting_for_room(
    satellites: Any, ctl: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    tx = satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    # the receiver sits in its first batch until it is stopped: the queue can never drain, so
    # there is always a backlog when the interrupt comes
    rx.slow = 60
    ctl.await_satellites([TX, RX])
    tx_data = {"data_timeout": 30, "queue_size": 20, "payload_threshold": 64}
    tx_conf = {"mode": "flood", "_autonomy": {"role": "NONE"}, "_data": tx_data}
    # the interrupted transmitter's EOR never reaches the stuck receiver: it gives up after 1 s
    _to_run(ctl, _config(tx_conf, {"_data": {"eor_timeout": 1}}))
    wait_for(lambda: tx.blocked.is_set(), what="send_record waiting for room")
    assert tx.data is not None
    # the socket buffers fill up behind the stuck receiver; then nothing more leaves the queue
    sent: list[int] = []
    wait_for(lambda: _stalled(sent, tx.data.records_sent), 20, 0.1, "the queue stuck full")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert ctl.satellites[TX].command("_interrupt").ok
        wait_for(lambda: tx.state in (State.SAFE, State.ERROR), timeout=15, what="SAFE")
    took = time.monotonic() - started
    assert tx.state is State.SAFE, tx.status
    assert tx.status.startswith("Interrupted in RUN"), tx.status
    assert took < 10, f"the interrupt waited {took:.1f} s (data_timeout is 30 s)"
    assert tx.data is not None
    unsent = tx.data.sequence - tx.data.records_sent
    assert unsent > 0, "no backlog: the receiver took everything"
    # what the stuck receiver could not take is reported, not dropped silently
    assert f"{unsent} queued records not sent" in caplog.text
    _stop(ctl, [RX])
    assert rx.records[-1].sequence == len(rx.records) == tx.data.records_sent


# --- transmitters that vanish --------------------------------------------------------------------
def test_killed_transmitter_gets_a_substitute_eor(
    processes: Any, satellites: Any, ctl: Controller
) -> None:
    proc = processes("SatelliteRandomTransmitter", "rt")
    rx = satellites(Collector, "rx")
    name = "RandomTransmitter.rt"
    ctl.await_satellites([name, RX], timeout=20)
    tx_conf = {"rate": 2000, "block_size": 32, "_autonomy": {"role": "NONE"}}
    _to_run(ctl, _config(tx_conf, {"_data": {"eor_timeout": 1}}, tx_name=name))
    wait_for(lambda: len(rx.records) > 100, what="some records")
    proc.kill()
    _stop(ctl, [RX])
    eor_tags, meta = rx.eors[name]
    assert eor_tags == {} and meta[SUBSTITUTE_KEY] is True
    assert meta["condition"] == "ABORTED"
    assert meta["data_records"] == rx.records[-1].sequence == len(rx.records)
    assert rx.state is State.ORBIT


def test_dynamic_transmitter_death_interrupts_the_receiver(
    fast_timing: dict[str, str], processes: Any, satellites: Any, ctl: Controller
) -> None:
    proc = processes("SatelliteRandomTransmitter", "rt")
    rx = satellites(Collector, "rx")
    name = "RandomTransmitter.rt"
    ctl.await_satellites([name, RX], timeout=20)
    _to_run(ctl, _config({"rate": 1000}, {"_data": {"eor_timeout": 1}}, tx_name=name))
    wait_for(lambda: len(rx.records) > 50, what="some records")
    proc.kill()
    wait_for(lambda: rx.state is State.SAFE, timeout=15, what="receiver interrupted to SAFE")
    meta = rx.eors[name][1]
    assert meta[SUBSTITUTE_KEY] is True
    # The heartbeat failure also marked the run DEGRADED.
    assert {"INTERRUPTED", "ABORTED"} <= set(meta["condition"].split("|"))
    assert meta["data_records"] == len(rx.records)


# --- configuration and robustness ----------------------------------------------------------------
def test_receive_from_an_absent_transmitter_fails_launch(
    satellites: Any, ctl: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # launch looks for the transmitter 0.5 s here (3 s by default) before it gives up
    monkeypatch.setattr(receiving, "LAUNCH_DISCOVERY_TIMEOUT", 0.5)
    rx = satellites(Collector, "rx")
    ctl.await_satellites([RX])
    ctl.initialize({"Collector": {"rx": {"_data_transmitters": ["Nobody.there"]}}})
    ctl.await_state("INIT", 10)
    ctl.launch()
    wait_for(lambda: rx.state is State.ERROR, timeout=10, what="launch failed")
    assert "Nobody.there" in rx.status and "receive_from" in rx.status


def test_receive_from_selects_transmitters(satellites: Any, ctl: Controller) -> None:
    satellites(Source, "tx")
    other = satellites(Source, "other")
    rx = satellites(Collector, "rx")
    ctl.await_satellites([TX, "Source.other", RX])
    config = _config({"records": 3}, {"_data": {"receive_from": [TX]}})
    config["Source"]["other"] = {
        "records": 3,
        "_data": {"bor_timeout": 1},
        "_autonomy": {"role": "NONE"},  # its failure must not interrupt the others
    }
    ctl.initialize(config)
    ctl.await_state("INIT", 10)
    ctl.launch()
    ctl.await_state("ORBIT", 10)
    ctl.start("run_1")
    ctl.await_state("RUN", 15, [TX, RX])
    wait_for(lambda: len(rx.records) == 3, what="3 records")
    wait_for(lambda: other.state is State.ERROR, what="other: nobody takes its BOR")
    assert "BOR" in other.status
    _stop(ctl, [TX, RX])
    assert set(rx.bors) == {TX}


def test_garbage_on_the_data_socket_is_dropped(
    satellites: Any, ctl: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    tx = satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    ctl.await_satellites([TX, RX])
    _to_run(ctl, _config({"records": 0}))
    fake: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PUSH)
    fake.setsockopt(zmq.LINGER, 0)
    try:
        port = fake.bind_to_random_port(f"tcp://{LOOPBACK}")
        receiver = rx._role.receiver
        assert receiver is not None
        receiver.connect(DiscoveredService(rx.group, "Fake.junk", ServiceId.DATA, LOOPBACK, port))
        junk = [
            [b"\x00\xff garbage"],
            [b""],
            [msgpack.packb("CDTP\x01"), b"two frames"],
            [msgpack.packb("CSCP\x01") + b"\x00"],
            [encode_data_frame("Fake.junk", [DataRecord(1, {}, [b"x"])])],  # DATA before BOR
            [b"\x93" * 1000],
        ]
        with caplog.at_level(logging.WARNING):
            for frames in junk:
                fake.send_multipart(frames)
            wait_for(lambda: receiver.bad_input.total >= 5, what="junk seen")
            wait_for(
                lambda: "records of Fake.junk arrive without its BOR" in caplog.text,
                what="orphan records logged",
            )
        assert "malformed data message dropped" in caplog.text
        for i in range(3):
            tx.send_record(b"after junk %d" % i)
        wait_for(lambda: len(rx.records) == 3, what="real data after the junk")
        _stop(ctl)
    finally:
        fake.close(0)
    assert [r.sequence for r in rx.records] == [1, 2, 3]
    assert rx.eors[TX][1]["condition"] == "GOOD"
    assert "Fake.junk" not in rx.eors


def test_protocol_errors_of_one_sender_do_not_affect_another(
    satellites: Any, ctl: Controller
) -> None:
    satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    ctl.await_satellites([TX, RX])
    _to_run(ctl, _config({"records": 2}, {"_data": {"eor_timeout": 1}}))
    wait_for(lambda: len(rx.records) == 2, what="2 records")
    fake: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PUSH)
    fake.setsockopt(zmq.LINGER, 0)
    try:
        port = fake.bind_to_random_port(f"tcp://{LOOPBACK}")
        assert rx._role.receiver is not None
        rx._role.receiver.connect(
            DiscoveredService(rx.group, "Fake.f", ServiceId.DATA, LOOPBACK, port)
        )
        bor_records = [DataRecord(0, {}, []), DataRecord(1, {}, [])]
        bor = encode_data_frame("Fake.f", bor_records, CDTPType.BOR)
        data = encode_data_frame("Fake.f", [DataRecord(2, {}, [b"a"]), DataRecord(4, {}, [b"b"])])
        for frame in (bor, bor, data):  # the second BOR is an error of Fake.f only
            fake.send(frame)
        wait_for(lambda: len(rx.records) == 4, what="Fake.f data")
        _stop(ctl, [TX, RX])
    finally:
        fake.close(0)
    assert rx.eors[TX][1]["condition"] == "GOOD"
    fake_meta = rx.eors["Fake.f"][1]
    assert fake_meta[SUBSTITUTE_KEY] is True
    assert fake_meta["condition"] == "INCOMPLETE|ABORTED"  # 1 and 3 never came
    assert rx.tracker.summary("Fake.f").missed == 2


def test_disable_transmission_drops_records_and_sends_nothing(
    satellites: Any, ctl: Controller
) -> None:
    tx = satellites(Source, "tx")
    rx = satellites(Collector, "rx")
    ctl.await_satellites([TX, RX])
    assert tx.discovery is not None
    withdrawn: list[ServiceId] = []
    withdraw = tx.discovery.withdraw

    def spy(service: ServiceId) -> None:
        withdrawn.append(service)
        withdraw(service)

    tx.discovery.withdraw = spy
    _to_run(ctl, _config({"records": 5, "_data": {"disable_transmission": True}}))
    wait_for(lambda: len(tx.results) == 5, what="records made")
    _stop(ctl)
    assert withdrawn == [ServiceId.DATA]
    assert tx.results == [0] * 5
    assert rx.bors == {} and rx.eors == {} and rx.records == []


# --- the ready-made satellites as processes ------------------------------------------------------
def test_random_transmitter_to_devnull_receiver_processes(processes: Any, ctl: Controller) -> None:
    processes("SatelliteRandomTransmitter", "rt", "--data-port", "0")
    processes("SatelliteDevNullReceiver", "dn")
    names = ["RandomTransmitter.rt", "DevNullReceiver.dn"]
    ctl.await_satellites(names, timeout=20)
    config = {
        "RandomTransmitter": {
            "rt": {
                "block_size": 512,
                "number_of_blocks": 2,
                "seed": 7,
                "_conditions": {"require_starting_after": [names[1]]},
            }
        },
        "DevNullReceiver": {"dn": {"_data": {"receive_from": [names[0]]}}},
    }
    _to_run(ctl, config)
    dn = ctl.satellites[names[1]]
    wait_for(
        lambda: dn.command("get_data_rate").payload["records"] > 10_000,
        timeout=20,
        what="data flowing",
    )
    _stop(ctl)
    rate = dn.command("get_data_rate").payload
    assert rate["records"] == rate["eor_records"] > 10_000
    assert rate["bytes"] == rate["records"] * 1024
    assert rate["records_per_s"] > 0
