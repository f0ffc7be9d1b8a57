"""Live data end to end: real satellite processes on 127.0.0.1, Streamers in this process."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
import time
from typing import Any

import pytest

from constellation.errors import ConfigError, UnknownSenderError
from constellation.live import BOR, EOR, Frame, Streamer
from constellation.live import streamer as live_streamer
from constellation.live.aio import AsyncStreamer
from controller import Controller
from controller.telemetry import MetricWatcher
from tests.helpers import LOOPBACK, console_script, cycle_to_run, wait_for
from tests.live.conftest import DN, TX, devnull_config, read_until_eor


def _streamer(group: str, **kwargs: Any) -> Streamer:
    streamer = Streamer(group, interface=LOOPBACK, **kwargs)
    wait_for(lambda: streamer.receivers, 15, what="the receiver's live service")
    return streamer


class _Reader(threading.Thread):
    """Reads a streamer in the background until its first EOR (a reader that keeps up)."""

    def __init__(self, streamer: Streamer) -> None:
        super().__init__(daemon=True)
        self.streamer = streamer
        self.frames: list[Frame] = []
        self.eor: EOR | None = None
        self.start()

    def run(self) -> None:
        self.eor = read_until_eor(self.streamer, self.frames, timeout=60)

    def result(self) -> tuple[list[Frame], EOR]:
        self.join(60)
        assert self.eor is not None, "the reader got no EOR"
        return self.frames, self.eor


def _records_of(dn: Any, count: int) -> None:
    wait_for(lambda: dn.command("get_data_rate").payload["records"] >= count, 20, what="data")


def _sequences(frames: list[Frame], sender: str = TX) -> list[int]:
    return [r.sequence for f in frames for r in f.records.get(sender, [])]


def _run(ctl: Controller, rate: float, records: int, run_id: str = "run_1") -> None:
    cycle_to_run(ctl, devnull_config(rate), run_id)
    _records_of(ctl.satellites[DN], records)
    ctl.stop()
    ctl.await_state("ORBIT", 20)


def test_a_reader_that_keeps_up_gets_every_record_once_in_order(
    pair: Controller, group: str
) -> None:
    with _streamer(group) as streamer:
        pipe = streamer.pipe(TX)
        reader = _Reader(streamer)
        _run(pair, 5000, 5000)
        frames, eor = reader.result()
        rows = pipe.read(timeout=0)
    stored = eor.run_metadata["data_records"]
    assert rows["data"].shape == (stored, 1024) and rows["timestamp"].min() > 0
    assert stored >= 5000
    assert _sequences(frames) == list(range(1, stored + 1))
    events = [e for f in frames for e in f.events]
    assert isinstance(events[0], BOR) and events[0].run_id == "run_1"
    assert events[0].configuration["rate"] == 5000
    first = next(r for f in frames for r in f.records.get(TX, []))
    assert first.blocks[0].nbytes == 1024
    stats = streamer.stats[TX]
    assert (stats.received, stats.dropped, stats.last_sequence) == (stored, 0, stored)
    assert pair.satellites[DN].command("get_data_rate").payload["records"] == stored


def test_a_stalled_reader_counts_its_drops_exactly(pair: Controller, group: str) -> None:
    with _streamer(group, buffer=64 * 1024) as streamer:
        # Full speed while nobody reads: 400 MB exceed all that can wait for the reader (~150 MB,
        # see test_the_receiver_counts_its_readers_and_their_drops).
        _run(pair, 0, 400_000)
        frames: list[Frame] = []
        eor = read_until_eor(streamer, frames)
        stats = streamer.stats[TX]
    stored = eor.run_metadata["data_records"]
    assert stats.dropped > 0
    assert stats.received + stats.dropped == stored
    sequences = _sequences(frames)
    assert len(sequences) == stats.received
    assert sequences == sorted(set(sequences))
    assert pair.satellites[DN].command("get_data_rate").payload["records"] == stored


def test_a_late_joiner_gets_the_bor_first(pair: Controller, group: str) -> None:
    cycle_to_run(pair, devnull_config(2000), "late_1")
    _records_of(pair.satellites[DN], 1000)
    with _streamer(group) as streamer:
        frames: list[Frame] = []
        while not any(f.records for f in frames):
            frame = streamer.read(5)
            assert frame is not None, "nothing received by the late joiner"
            frames.append(frame)
        pair.stop()
        pair.await_state("ORBIT", 20)
        eor = read_until_eor(streamer, frames)
        stats = streamer.stats[TX]
    first = frames[0]
    assert isinstance(first.events[0], BOR) and first.events[0].run_id == "late_1"
    sequences = _sequences(frames)
    assert sequences[0] > 1  # joined during the run
    assert sequences == list(range(sequences[0], eor.run_metadata["data_records"] + 1))
    assert stats.dropped == 0


def test_the_constructor_refuses_unknown_senders_and_names_the_known_ones(
    pair: Controller, group: str
) -> None:
    known = rf"unknown sender\(s\) Nope\.x in group '{group}' \(known: {TX}\)$"
    with pytest.raises(UnknownSenderError, match=known):
        Streamer(group, [TX, "Nope.x"], interface=LOOPBACK)  # before any run: discovery knows
    with Streamer(group, (n for n in [TX.lower()]), interface=LOOPBACK) as streamer:
        assert streamer.known_senders() == [TX]  # a generator of names is read once


def test_update_senders_names_the_known_ones(
    pair: Controller, group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _streamer(group, senders=["RandomTransmitter.nobody"], sender_wait=None) as streamer:
        wait_for(lambda: TX in streamer.known_senders(), 15, what="the transmitter discovered")
        # the name that is not there is waited for briefly (0.5 s here, 3 s by default)
        monkeypatch.setattr(live_streamer, "SENDER_WAIT", 0.5)
        known = rf"unknown sender\(s\) RandomTransmitter\.Nobody .*\(known: {TX}\)"
        with pytest.raises(UnknownSenderError, match=known):
            streamer.update_senders(["RandomTransmitter.Nobody", TX])
        cycle_to_run(pair, devnull_config(2000), "run_1")
        _records_of(pair.satellites[DN], 500)
        assert streamer.read(0.3) is None or not streamer.stats  # filtered out so far
        streamer.update_senders([TX.upper()])
        frames: list[Frame] = []
        wait_for(
            lambda: frames.append(streamer.read(0.5) or Frame()) or _sequences(frames),
            15,
            what="records after update_senders",
        )
        pair.stop()
        pair.await_state("ORBIT", 20)
        read_until_eor(streamer, frames)


def test_unknown_compression_is_a_clear_error(group: str) -> None:
    with pytest.raises(ConfigError, match="unknown compression 'brotli'"):
        Streamer(group, interface=LOOPBACK, compression="brotli")


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_compressed_records_equal_the_plain_ones(pair: Controller, group: str, codec: str) -> None:
    with _streamer(group) as plain, _streamer(group, compression=codec) as packed:
        readers = [_Reader(plain), _Reader(packed)]
        _run(pair, 3000, 1500)
        got = [reader.result()[0] for reader in readers]
    plain_records, packed_records = (
        [(r.sequence, r.blocks[0].tobytes()) for f in frames for r in f.records.get(TX, [])]
        for frames in got
    )
    assert len(plain_records) >= 1500
    assert packed_records == plain_records


def test_the_async_api(pair: Controller, group: str) -> None:
    async def main() -> tuple[list[int], EOR | None]:
        sequences: list[int] = []
        async with AsyncStreamer(group, interface=LOOPBACK) as streamer:
            await asyncio.to_thread(
                wait_for, lambda: streamer._streamer.receivers, 15, 0.02, "receiver"
            )
            await asyncio.to_thread(_run, pair, 3000, 1500)
            async for frame in streamer:
                sequences += [r.sequence for r in frame.records.get(TX, [])]
                eors = [e for e in frame.events if isinstance(e, EOR)]
                if eors:
                    return sequences, eors[0]
        return sequences, None

    sequences, eor = asyncio.run(asyncio.wait_for(main(), 60))
    assert eor is not None
    assert sequences == list(range(1, eor.run_metadata["data_records"] + 1))


def test_the_console_script_dumps_shows_the_table_and_a_histogram(
    pair: Controller, group: str
) -> None:
    base = [console_script("constellation-live"), "-g", group, "-i", LOOPBACK]
    cycle_to_run(pair, devnull_config(1000), "cli_1")
    _records_of(pair.satellites[DN], 200)
    runs = {
        "dump": [*base, "--dump", "--seconds", "2"],
        "table": [*base, "--seconds", "2"],
        "histogram": [*base, "--histogram", TX, "--seconds", "2"],
    }
    env = {**os.environ, "COLUMNS": "200"}  # wide enough for the whole table
    procs = {
        k: subprocess.Popen(v, stdout=subprocess.PIPE, text=True, env=env) for k, v in runs.items()
    }
    out = {k: p.communicate(timeout=60)[0] for k, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values())
    assert f"BOR {TX} run cli_1" in out["dump"]  # a late joiner: the BOR first
    assert re.search(rf"{re.escape(TX)} #\d+ .*uint8\[1024\]", out["dump"])
    assert TX in out["table"] and "cli_1" in out["table"]
    assert f"{TX}:" in out["histogram"] and "#" in out["histogram"]
    pair.stop()
    pair.await_state("ORBIT", 20)


def test_the_console_script_reports_bad_options(group: str) -> None:
    result = subprocess.run(
        [console_script("constellation-live"), "-g", group, "--policy", "newest"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "invalid choice: 'newest'" in result.stderr


def _stalled(read: Any, polls: int = 4) -> bool:
    """True when ``read()`` gave the same value ``polls`` times in a row (0.2 s apart)."""
    values = []
    for _ in range(polls):
        values.append(read())
        time.sleep(0.2)  # spacing of the samples, not a synchronisation
    return len(set(values)) == 1


def test_the_block_policy_loses_nothing_and_holds_the_run_back(
    pair: Controller, group: str
) -> None:
    dn = pair.satellites[DN]
    with _streamer(group, policy="block", buffer=256 * 1024) as streamer:
        cycle_to_run(pair, devnull_config(0), "block_1")
        _records_of(dn, 1000)
        wait_for(
            lambda: _stalled(lambda: dn.command("get_data_rate").payload["records"]),
            20,
            what="the receiver held back by the blocked reader",
        )
        reader = _Reader(streamer)
        _records_of(dn, dn.command("get_data_rate").payload["records"] + 10_000)
        pair.stop()
        pair.await_state("ORBIT", 30)
        frames, eor = reader.result()
        stats = streamer.stats[TX]
    stored = eor.run_metadata["data_records"]
    assert (stats.received, stats.dropped) == (stored, 0)
    assert _sequences(frames) == list(range(1, stored + 1))
    assert dn.command("get_data_rate").payload["records"] == stored


def test_the_latest_policy_keeps_the_newest_message(pair: Controller, group: str) -> None:
    with _streamer(group, policy="latest") as streamer:
        cycle_to_run(pair, devnull_config(20_000), "latest_1")
        _records_of(pair.satellites[DN], 20_000)  # nothing read meanwhile
        frame = streamer.read(5)
        assert frame is not None
        sequences = [r.sequence for r in frame.records[TX]]
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
        assert len(sequences) < 20_000  # one message, not the backlog
        pair.stop()
        pair.await_state("ORBIT", 20)
        frames: list[Frame] = []
        eor = read_until_eor(streamer, frames)
        stats = streamer.stats[TX]
    assert stats.received + stats.dropped == eor.run_metadata["data_records"]
    assert stats.dropped > 0


def test_the_receiver_counts_its_readers_and_their_drops(pair: Controller, group: str) -> None:
    dn = pair.satellites[DN]
    with (
        MetricWatcher(pair, ["LIVE_DROPPED", "LIVE_SUBSCRIBERS"]) as watcher,
        _streamer(group, buffer=64 * 1024) as streamer,
    ):

        def metric(name: str) -> Any:
            sample = watcher.latest(name, DN).get(DN)
            return None if sample is None else sample.value

        # Nothing is read until the run is over, and 400 MB exceed everything that can wait for
        # the reader (its buffer, 1000 messages in its socket's queue, the TCP buffers, 128
        # messages at the receiver: ~150 MB with 128 KiB messages): records are dropped.
        _run(pair, 0, 400_000)  # metrics are sent from INIT on
        read_until_eor(streamer, [])
        dropped = streamer.stats[TX].dropped
        assert dropped > 0
        endpoint = dn.command("get_live_endpoint")
        assert endpoint.ok and endpoint.payload["port"] > 0
        wait_for(lambda: metric("LIVE_DROPPED") == dropped, 20, what="LIVE_DROPPED metric")
        wait_for(lambda: metric("LIVE_SUBSCRIBERS") == 1, 20, what="LIVE_SUBSCRIBERS = 1")
        streamer.close()
        wait_for(lambda: metric("LIVE_SUBSCRIBERS") == 0, 20, what="LIVE_SUBSCRIBERS = 0")
