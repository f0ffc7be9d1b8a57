"""Replay of a run file with a fake clock: the pacing, the order of events, the records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from constellation.live.frame import BOR, EOR
from constellation.live.recorded import Replay
from constellation.protocol.cdtp2 import DataRecord
from satellites.h5datawriter.runfile import RunFile

TX = "Tx.a"


def _file(tmp_path: Path, records: int, seconds: float) -> Path:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    run = RunFile.create(tmp_path, "r1", "W.w")
    run.begin_sender(TX, {"u": 1}, {"rate": 5})
    run.write_records(
        TX, [DataRecord(n, {}, [bytes([n % 256]) * 4]) for n in range(1, records + 1)]
    )
    meta = {
        "run_id": "r1",
        "time_start": start,
        "time_end": start + timedelta(seconds=seconds),
        "data_records": records,
        "condition": "GOOD",
        "condition_code": 0,
    }
    run.end_sender(TX, {}, meta)
    run.close()
    return run.path


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_replay_paces_records_over_the_run_time(tmp_path: Path) -> None:
    path = _file(tmp_path, 100, 10.0)  # one record per 0.1 s; played at 2x: every 0.05 s
    clock = _Clock()
    with Replay(path, speed=2.0, clock=clock, sleep=clock.sleep) as replay:
        first = replay.read()
        assert first is not None and isinstance(first.events[0], BOR)
        assert first.events[0].configuration == {"rate": 5}
        assert [r.sequence for r in first.records[TX]] == [1]
        assert abs(clock.slept[-1] - 0.05) < 1e-9
        clock.now += 0.5  # a slow reader: ten more records are due
        assert [r.sequence for r in replay.read().records[TX]] == list(range(2, 12))
        assert replay.read(timeout=0.01) is None or clock.slept[-1] <= 0.05
        frames = list(replay)
    events = [e for f in frames for e in f.events]
    assert isinstance(events[-1], EOR) and events[-1].run_metadata["data_records"] == 100
    assert replay.finished and replay.stats[TX].received == 100 and replay.stats[TX].dropped == 0


def test_replay_at_speed_zero_does_not_wait(tmp_path: Path) -> None:
    path = _file(tmp_path, 3000, 1000.0)
    clock = _Clock()
    with Replay(path, speed=0, clock=clock, sleep=clock.sleep) as replay:
        frames = list(replay)
    assert clock.slept == []
    sequences = [r.sequence for f in frames for r in f.records.get(TX, [])]
    assert sequences == list(range(1, 3001))
    assert [r.stored_index for f in frames for r in f.records.get(TX, [])][:3] == [0, 1, 2]
