"""H5DataWriter publishes each record after storing it, with its index in the file; CHIRP
discovery; faults on the live socket. Real satellite processes on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from constellation.live import EOR, Frame, Streamer
from constellation.reader import h5reader
from controller import Controller
from tests.helpers import LOOPBACK, TX, WRITER, cycle_to_run, wait_for, writer_run_config
from tests.live.conftest import DN, devnull_config, read_until_eor


def _background(streamer: Streamer) -> tuple[threading.Thread, list[Frame], list[EOR]]:
    frames: list[Frame] = []
    eors: list[EOR] = []
    thread = threading.Thread(
        target=lambda: eors.append(read_until_eor(streamer, frames, timeout=60)), daemon=True
    )
    thread.start()
    return thread, frames, eors


def test_writer_publishes_stored_records_with_their_file_index(
    processes: Any, group: str, tmp_path: Path
) -> None:
    processes("SatelliteH5DataWriter", "w")
    processes("SatelliteRandomTransmitter", "tx")
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites([TX, WRITER], timeout=20)
        with Streamer(group, interface=LOOPBACK) as streamer:
            wait_for(lambda: streamer.receivers, 15, what="the writer's live service")
            thread, frames, eors = _background(streamer)
            config = writer_run_config(tmp_path, True, rate=3000, block_size=256, seed=5)
            cycle_to_run(ctl, config, "stored_1")
            wait_for(lambda: sum(f.count() for f in frames) >= 2000, 20, what="live records")
            ctl.stop()
            ctl.await_state("ORBIT", 20)
            thread.join(60)
        assert eors, "no EOR from the writer"
    live = [r for f in frames for r in f.records.get(TX, [])]
    stored = eors[0].run_metadata["data_records"]
    assert [r.sequence for r in live] == list(range(1, stored + 1))
    assert [r.stored_index for r in live] == list(range(stored))
    with h5reader.open_run(tmp_path / "data_stored_1.h5") as run:
        on_file = list(run.records(TX))
    assert len(on_file) == stored
    for record, written in zip(live, on_file, strict=True):
        assert record.sequence == written.sequence
        assert record.blocks[0].tobytes() == written.blocks[0].tobytes()


def test_chirp_discovery_finds_the_live_service(processes: Any, group: str) -> None:
    for script, name in (("SatelliteRandomTransmitter", "tx"), ("SatelliteDevNullReceiver", "dn")):
        processes(script, name, "--discovery", "chirp")
    with Controller(group, interface=LOOPBACK, discovery="chirp") as ctl:
        ctl.await_satellites([TX, DN], timeout=20)
        with Streamer(group, interface=LOOPBACK, discovery="chirp") as streamer:
            wait_for(lambda: streamer.receivers == [DN], 20, what="live service over CHIRP")
            thread, frames, eors = _background(streamer)
            cycle_to_run(ctl, devnull_config(2000), "chirp_1")
            wait_for(lambda: sum(f.count() for f in frames) >= 500, 20, what="live records")
            ctl.stop()
            ctl.await_state("ORBIT", 20)
            thread.join(60)
        assert eors and streamer.stats[TX].dropped == 0
        assert streamer.stats[TX].received == eors[0].run_metadata["data_records"]


def test_garbage_and_vanishing_subscribers_leave_the_receiver_intact(
    processes: Any, group: str
) -> None:
    processes("SatelliteRandomTransmitter", "tx")
    processes("SatelliteDevNullReceiver", "dn")
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites([TX, DN], timeout=20)
        dn = ctl.satellites[DN]
        endpoint = dn.command("get_live_endpoint").payload
        address = f"tcp://{LOOPBACK}:{endpoint['port']}"
        with Streamer(group, interface=LOOPBACK) as streamer:
            wait_for(lambda: streamer.receivers, 15, what="the live service")
            thread, _frames, eors = _background(streamer)
            cycle_to_run(ctl, devnull_config(3000), "faults_1")
            context = zmq.Context.instance()
            for round_ in range(30):  # connect, subscribe, send junk, vanish
                sock = context.socket(zmq.XSUB)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(address)
                sock.send(b"\x01r")
                sock.send(b"\x02" + msgpack.packb({"id": 5}))
                sock.send_multipart([b"junk", b"\xc1" * round_])
                sock.send(b"\x01" + b"x" * 70_000)  # larger than the receiver accepts
                sock.close(linger=0)
            wait_for(lambda: dn.command("get_data_rate").payload["records"] >= 2000, 20)
            ctl.stop()
            ctl.await_state("ORBIT", 20)
            thread.join(60)
        assert eors
        stored = eors[0].run_metadata["data_records"]
        rate = dn.command("get_data_rate").payload
        assert rate["records"] == rate["eor_records"] == stored
        assert streamer.stats[TX].received + streamer.stats[TX].dropped == stored
        assert dn.command("get_state").verb == "ORBIT"


def test_replay_equals_the_file_and_follow_joins_file_and_stream(
    processes: Any, group: str, tmp_path: Path
) -> None:
    processes("SatelliteH5DataWriter", "w")
    processes("SatelliteRandomTransmitter", "tx")
    path = tmp_path / "data_follow_1.h5"
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites([TX, WRITER], timeout=20)
        config = writer_run_config(tmp_path, True, rate=2000, block_size=128, seed=9)
        cycle_to_run(ctl, config, "follow_1")
        writer = ctl.satellites[WRITER]
        wait_for(lambda: writer.command("get_concurrent_reading_status").payload["swmr_active"])

        def on_file() -> int:
            with h5reader.open_run(path) as run:
                return run.record_count(TX)

        wait_for(lambda: on_file() >= 1000, 20, what="records in the file")
        with Streamer.follow(path, group, interface=LOOPBACK) as streamer:
            first = streamer.read(5)
            assert first is not None and first.events[0].run_id == "follow_1"
            frames = [first]
            time.sleep(0.3)  # let some records arrive live only (spacing, not synchronisation)
            ctl.stop()
            ctl.await_state("ORBIT", 20)
            eor = read_until_eor(streamer, frames, timeout=60)
            stats = streamer.stats[TX]
    records = [r for f in frames for r in f.records.get(TX, [])]
    stored = eor.run_metadata["data_records"]
    assert [r.sequence for r in records] == list(range(1, stored + 1))
    from_file = [r for r in records if r.published == 0.0]
    assert len(from_file) >= 1000 and len(from_file) < stored  # both parts are there
    assert (stats.received, stats.dropped) == (stored, 0)
    with h5reader.open_run(path) as run:
        on_disk = [(r.sequence, r.blocks[0].tobytes()) for r in run.records(TX)]
    assert [(r.sequence, r.blocks[0].tobytes()) for r in records] == on_disk
    with Streamer.replay(path, speed=0) as replay:
        played = list(replay)
        assert replay.stats[TX].received == stored and replay.stats[TX].dropped == 0
    events = [e for f in played for e in f.events]
    assert [type(e).__name__ for e in events] == ["BOR", "EOR"]
    assert events[1].run_metadata["data_records"] == stored
    replayed = [(r.sequence, r.blocks[0].tobytes()) for f in played for r in f.records.get(TX, [])]
    assert replayed == on_disk
