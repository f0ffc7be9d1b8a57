"""The live API on recorded data: replay a run file as if live, or follow one into the stream.

:class:`Replay` plays the records of an H5DataWriter file with the Streamer's ``read()`` /
iteration / ``stats`` API: each sender's BOR first, its records spread evenly over the run's
duration (``time_start`` .. ``time_end`` of the run metadata) divided by ``speed`` (0: as fast
as read), its EOR last. :func:`follow` returns a :class:`~constellation.live.streamer.Streamer`
whose first reads are a local run file's records and whose next ones continue live, joined on
the sequence numbers: no record twice, none missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from constellation.live.accounting import SenderStats, SequenceAccount
from constellation.live.frame import BOR, EOR, Frame, LiveRecord
from constellation.reader import open_run

__all__ = ["Replay", "file_preface", "live_start"]

_CHUNK = 1024  # records per sender in one frame at most


class Replay:
    """A run file played as if live (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        speed: float = 1.0,
        senders: Iterable[str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._run = open_run(path)
        self._clock, self._sleep = clock, sleep
        wanted = None if senders is None else {s.lower() for s in senders}
        self._senders = [s for s in self._run.senders if wanted is None or s.lower() in wanted]
        self._accounts = {s: SequenceAccount() for s in self._senders}
        self._iters: dict[str, Iterator[Any]] = {s: self._run.records(s) for s in self._senders}
        self._counts = {s: self._run.record_count(s) for s in self._senders}
        self._done: dict[str, int] = dict.fromkeys(self._senders, 0)
        self._pending_events: list[BOR | EOR] = []
        run_id = self._run.run_id
        for sender in self._senders:
            bor = self._run.bor(sender)
            self._pending_events.append(
                BOR(sender, run_id, bor["configuration"], bor["user_tags"], "replay")
            )
            self._accounts[sender].on_bor(run_id, replayed=False)
        self._interval = self._record_interval(speed)
        self._start = clock()
        self._closed = False

    def _record_interval(self, speed: float) -> float:
        """Seconds between two records of a sender when played at ``speed``."""
        if speed <= 0 or not self._senders:
            return 0.0
        meta = (self._run.eor(self._senders[0]) or {}).get("run_metadata", {})
        start, end = _when(meta.get("time_start")), _when(meta.get("time_end"))
        most = max(self._counts.values()) or 1
        if start is None or end is None:
            return 0.0
        return max(0.0, (end - start).total_seconds()) / most / speed

    @property
    def stats(self) -> dict[str, SenderStats]:
        return {s: a.stats for s, a in self._accounts.items()}

    @property
    def finished(self) -> bool:
        """True once every record and event was read."""
        return not self._pending_events and all(it is None for it in self._iters.values())

    def read(self, timeout: float | None = None) -> Frame | None:
        """The records due by now (and the events); None when over, or nothing due in time."""
        if self._closed or self.finished:
            return None
        frame = Frame(events=self._pending_events)
        self._pending_events = []
        due = self._due(timeout)
        for sender in self._senders:
            records = self._take(sender, due - self._done[sender])
            if records:
                frame.records[sender] = records
        self._finish_senders(frame)
        return frame if frame else None

    def _due(self, timeout: float | None) -> int:
        """Records per sender due now, waiting (up to ``timeout``) until at least one is."""
        if self._interval == 0:
            return max(self._done.values(), default=0) + _CHUNK
        nearest = min(self._done.values(), default=0) + 1
        wait = self._start + nearest * self._interval - self._clock()
        if wait > 0:
            if timeout is not None and wait > timeout:
                self._sleep(max(0.0, timeout))
            else:
                self._sleep(wait)
        elapsed = self._clock() - self._start
        return int(elapsed / self._interval + 1e-6)  # the wait above ends on a due time

    def _take(self, sender: str, count: int) -> list[LiveRecord]:
        iterator = self._iters.get(sender)
        out: list[LiveRecord] = []
        if iterator is None:
            return out
        for _ in range(max(0, min(count, _CHUNK))):
            record = next(iterator, None)
            if record is None:
                break
            out.append(LiveRecord(record.sequence, record.tags, record.blocks, self._done[sender]))
            self._done[sender] += 1
        if out:
            first, n = out[0].sequence, len(out)
            self._accounts[sender].on_data(first, n, sum(b.nbytes for r in out for b in r.blocks))
        return out

    def _finish_senders(self, frame: Frame) -> None:
        for sender in self._senders:
            if self._iters.get(sender) is not None and self._done[sender] >= self._counts[sender]:
                self._iters[sender] = None  # type: ignore[assignment]
                eor = self._run.eor(sender)
                if eor is not None:
                    meta = eor["run_metadata"]
                    records = meta.get("data_records")
                    self._accounts[sender].on_eor(records if type(records) is int else None)
                    frame.events.append(
                        EOR(sender, self._run.run_id, meta, eor["user_tags"], "replay")
                    )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._run.close()

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while not self.finished and not self._closed:
            frame = self.read(1.0)
            if frame is not None:
                yield frame


def file_preface(
    path: str | os.PathLike[str],
    wanted: dict[str, int | None],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Frame, dict[str, int], str]:
    """The file's BORs and records for :func:`follow`: (frame, last sequence per sender, run).

    ``wanted`` maps each sender to the sequence number its live stream starts after (the first
    live record minus one), or None when the live stream has none: the file is re-read until
    it holds the records up to there (SWMR readers see records after the writer's flush).
    """
    frame = Frame()
    last: dict[str, int] = {}
    deadline = clock() + timeout
    with open_run(path) as run:
        run_id = run.run_id
        senders = {s.lower(): s for s in run.senders}
        for key, until in wanted.items():
            sender = senders.get(key)
            if sender is None:
                continue
            bor = run.bor(sender)
            frame.events.append(BOR(sender, run_id, bor["configuration"], bor["user_tags"], "file"))
            records: list[LiveRecord] = []
            while True:
                for record in run.records(sender, len(records)):
                    records.append(
                        LiveRecord(record.sequence, record.tags, record.blocks, len(records))
                    )
                seen = records[-1].sequence if records else 0
                if until is None or seen >= until or clock() > deadline:
                    break
                time.sleep(0.05)  # the writer flushes periodically: poll the file
                run.refresh()
            if records:
                frame.records[sender] = records
            last[key] = records[-1].sequence if records else 0
    return frame, last, run_id


def live_start(items: Iterable[Any], sender: str) -> int | None:
    """First live sequence of ``sender`` among buffered items; -1 after its EOR; None if none."""
    for item in items:
        if item.sender == sender and item.kind == "DATA":
            return int(item.payload[0].first)
        if item.sender == sender and item.kind == "EOR":
            return -1
    return None


def _when(value: Any) -> datetime | None:
    """A run-metadata time: a datetime, or the ISO text the file holds; None otherwise."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
