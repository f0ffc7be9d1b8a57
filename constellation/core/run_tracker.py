"""Run bookkeeping for CDTP v2: BOR → DATA(sequence) → EOR per sender, and EOR run metadata.

Layer: ``core`` (pure logic). A receiver keeps one :class:`RunTracker` per run and feeds it every
decoded BOR, DATA and EOR message; it checks the order of the messages, counts records, missed
sequence numbers and duplicates, and produces the run metadata to store, with the condition flags
the receiver adds (docs/protocols.md#one-run, docs/data.md). A transmitter builds its EOR run
metadata with :func:`make_run_metadata` and collects its condition flags in a
:class:`RunConditionTracker` (both in ``core.run_condition``, re-exported here).

Time arguments named ``now`` are seconds of a monotonic clock and only feed statistics; wall-clock
timestamps that end up in run metadata are aware ``datetime`` objects passed in by the caller.

Sequence numbers count from 1. A record whose number is beyond the next expected one opens a gap
(the numbers skipped are *missed*); a late record that fills a gap is *out of order* and no longer
missed; a number already received (or one of a filled gap) is a *duplicate*. Every record is
returned to the caller with its :class:`SequenceStatus`. A sequence number below 1 is a protocol
violation.

Substitute EORs made by the receiver carry the key ``SUBSTITUTE_KEY`` (``"substitute"``) set to
``True``; real EORs pass through without it.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from operator import attrgetter
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from constellation.core.run_condition import (
    DEFAULT_LICENSE,
    SUBSTITUTE_KEY,
    RunCondition,
    RunConditionTracker,
    describe_condition,
    make_run_metadata,
)
from constellation.errors import DataProtocolError

__all__ = [
    "DEFAULT_LICENSE",
    "MAX_GAP_RANGES",
    "SUBSTITUTE_KEY",
    "CheckedRecord",
    "RunCondition",
    "RunConditionTracker",
    "RunTracker",
    "SenderSummary",
    "SequenceStatus",
    "SequencedRecord",
    "describe_condition",
    "make_run_metadata",
]


class SequencedRecord(Protocol):
    """Anything with a sequence number, e.g. ``constellation.protocol.cdtp2.DataRecord``."""

    @property
    def sequence(self) -> int: ...


R = TypeVar("R", bound=SequencedRecord)


class SequenceStatus(Enum):
    """How a record's sequence number relates to those received before."""

    IN_ORDER = "in_order"  # the next expected number
    AFTER_GAP = "after_gap"  # beyond the next expected number; the numbers between are missed
    OUT_OF_ORDER = "out_of_order"  # late, fills a gap
    DUPLICATE = "duplicate"  # received before


@dataclass(frozen=True, slots=True)
class CheckedRecord(Generic[R]):
    """A received record with the verdict of the sequence check."""

    record: R
    status: SequenceStatus

    @property
    def sequence(self) -> int:
        """The record's sequence number."""
        return self.record.sequence


@dataclass(frozen=True, slots=True)
class SenderSummary:
    """Statistics of one sender in the current run."""

    name: str
    records: int
    last_sequence: int
    missed: int
    out_of_order: int
    duplicates: int
    bytes: int
    ended: bool
    substituted: bool
    bor_time: float
    last_activity: float


#: Most gap ranges remembered per sender. Beyond it the lowest range is forgotten: its numbers
#: stay counted as missed, and a record that later arrives in it counts as a duplicate. Memory
#: and the cost of one check stay bounded however a hostile sender jumps around.
MAX_GAP_RANGES = 4096


class _Gaps:
    """Sorted, disjoint half-open ranges of missed sequence numbers (at most ``limit``)."""

    def __init__(self, limit: int = MAX_GAP_RANGES) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._limit = limit
        self.missed = 0
        #: Ranges forgotten because of the limit.
        self.forgotten = 0

    def __len__(self) -> int:
        return len(self._starts)

    def add(self, start: int, end: int) -> None:
        """Record ``[start, end)`` as missed; must lie beyond every range added before."""
        self._starts.append(start)
        self._ends.append(end)
        self.missed += end - start
        self._bound()

    def fill(self, sequence: int) -> bool:
        """Remove ``sequence`` from the gaps; ``False`` if it was not missing."""
        index = bisect.bisect_right(self._starts, sequence) - 1
        if index < 0 or sequence >= self._ends[index]:
            return False
        start, end = self._starts[index], self._ends[index]
        self.missed -= 1
        if start == sequence:
            if end == sequence + 1:
                del self._starts[index], self._ends[index]
            else:
                self._starts[index] = sequence + 1
        elif end == sequence + 1:
            self._ends[index] = sequence
        else:  # split in two
            self._ends[index] = sequence
            self._starts.insert(index + 1, sequence + 1)
            self._ends.insert(index + 1, end)
            self._bound()
        return True

    def _bound(self) -> None:
        while len(self._starts) > self._limit:
            del self._starts[0], self._ends[0]
            self.forgotten += 1


@dataclass(slots=True)
class _SenderRun:
    name: str
    user_tags: dict[str, Any]
    config: dict[str, Any]
    bor_time: float
    last_activity: float
    records: int = 0
    last_sequence: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    bytes: int = 0
    gaps: _Gaps = field(default_factory=_Gaps)
    eor_tags: dict[str, Any] | None = None
    run_metadata: dict[str, Any] | None = None
    substituted: bool = False

    @property
    def ended(self) -> bool:
        return self.run_metadata is not None

    def check(self, sequence: int) -> SequenceStatus:
        """Classify ``sequence`` and update the counters."""
        if sequence == self.last_sequence + 1:
            status = SequenceStatus.IN_ORDER
        elif sequence > self.last_sequence:
            self.gaps.add(self.last_sequence + 1, sequence)
            status = SequenceStatus.AFTER_GAP
        elif self.gaps.fill(sequence):
            self.out_of_order += 1
            return SequenceStatus.OUT_OF_ORDER
        else:
            self.duplicates += 1
            return SequenceStatus.DUPLICATE
        self.last_sequence = sequence
        return status


_sequence_of = attrgetter("sequence")


def _block_bytes(record: object) -> int:
    """Total size of ``record.blocks`` if the record has any (0 otherwise)."""
    blocks = getattr(record, "blocks", None) or ()
    return sum(memoryview(block).nbytes for block in blocks)


class RunTracker:
    """Checks BOR → DATA → EOR per sender for one run of a receiver.

    Senders are keyed case-insensitively. A protocol violation raises
    :class:`~constellation.errors.DataProtocolError` and changes nothing.
    """

    def __init__(self) -> None:
        self._senders: dict[str, _SenderRun] = {}
        self._degraded = False

    # --- incoming messages --------------------------------------------------------------------
    def on_bor(
        self, sender: str, user_tags: Mapping[str, Any], config: Mapping[str, Any], now: float
    ) -> None:
        """Begin-of-run of ``sender``; a second BOR in the same run is a violation."""
        run = self._senders.get(sender.lower())
        if run is not None:
            what = "BOR after EOR" if run.ended else "second BOR"
            raise DataProtocolError(sender, what)
        self._senders[sender.lower()] = _SenderRun(sender, dict(user_tags), dict(config), now, now)

    def on_data(self, sender: str, records: Sequence[R], now: float) -> list[CheckedRecord[R]]:
        """Check and count ``records``; return each with its sequence status, in order."""
        run = self._running(sender, "DATA")
        bad = [record.sequence for record in records if record.sequence < 1]
        if bad:
            raise DataProtocolError(sender, f"sequence number {bad[0]} below 1")
        checked = [CheckedRecord(record, run.check(record.sequence)) for record in records]
        run.records += len(records)
        run.bytes += sum(_block_bytes(record) for record in records)
        run.last_activity = now
        return checked

    def on_data_fast(self, sender: str, records: Sequence[R], now: float) -> None:
        """Count ``records`` like :meth:`on_data`, without per-record results (the hot path).

        A batch that continues the sequence without gaps is accepted with one C-level
        comparison of its sequence numbers; anything else (gaps, duplicates, reordering) falls
        back to the full per-record check. Block bytes are not counted.
        """
        run = self._running(sender, "DATA")
        count = len(records)
        if count == 0:
            run.last_activity = now
            return
        first = run.last_sequence + 1
        if (
            records[0].sequence == first
            and records[-1].sequence == first + count - 1
            and list(map(_sequence_of, records)) == list(range(first, first + count))
        ):
            run.last_sequence += count
            run.records += count
            run.last_activity = now
            return
        self.on_data(sender, records, now)

    def on_eor(
        self,
        sender: str,
        user_tags: Mapping[str, Any],
        run_metadata: Mapping[str, Any],
        now: float,
    ) -> dict[str, Any]:
        """End-of-run of ``sender``: return its run metadata with the receiver's flags added.

        INCOMPLETE is added if records were missed or ``data_records`` (missing counts as
        wrong) differs from the last sequence number seen; DEGRADED after :meth:`mark_degraded`.
        """
        run = self._running(sender, "EOR")
        metadata = dict(run_metadata)
        added = self._own_flags(run)
        if metadata.get("data_records") != run.last_sequence:
            added |= RunCondition.INCOMPLETE
        self._add_condition(metadata, added)
        run.eor_tags = dict(user_tags)
        run.run_metadata = metadata
        run.last_activity = now
        return dict(metadata)

    # --- receiver decisions -------------------------------------------------------------------
    def mark_degraded(self) -> None:
        """OR DEGRADED into every run metadata produced from now on."""
        self._degraded = True

    @property
    def degraded(self) -> bool:
        """Whether :meth:`mark_degraded` was called."""
        return self._degraded

    def pending_eor(self) -> list[str]:
        """Senders that sent their BOR but no EOR yet, in BOR order."""
        return [run.name for run in self._senders.values() if not run.ended]

    def substitute_eor(self, sender: str, run_id: str, now_wallclock: datetime) -> dict[str, Any]:
        """Run metadata for ``sender`` that never sent its EOR: ABORTED (+INCOMPLETE if gaps).

        The result carries ``SUBSTITUTE_KEY: True``; the sender counts as ended afterwards.
        ``ValueError`` if ``sender`` is not one of :meth:`pending_eor`.
        """
        run = self._senders.get(sender.lower())
        if run is None or run.ended:
            raise ValueError(f"no EOR is pending from {sender!r}")
        metadata: dict[str, Any] = {
            "run_id": run_id,
            "time_end": now_wallclock,
            "data_records": run.last_sequence,
            SUBSTITUTE_KEY: True,
        }
        self._add_condition(metadata, self._own_flags(run) | RunCondition.ABORTED)
        run.eor_tags = {}
        run.run_metadata = metadata
        run.substituted = True
        return dict(metadata)

    # --- queries ------------------------------------------------------------------------------
    def senders(self) -> list[str]:
        """Every sender that sent a BOR in this run, in BOR order."""
        return [run.name for run in self._senders.values()]

    def summary(self, sender: str) -> SenderSummary:
        """Statistics of ``sender``; ``KeyError`` if it sent no BOR."""
        run = self._senders[sender.lower()]
        return SenderSummary(
            name=run.name,
            records=run.records,
            last_sequence=run.last_sequence,
            missed=run.gaps.missed,
            out_of_order=run.out_of_order,
            duplicates=run.duplicates,
            bytes=run.bytes,
            ended=run.ended,
            substituted=run.substituted,
            bor_time=run.bor_time,
            last_activity=run.last_activity,
        )

    def bor(self, sender: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Copies of the user tags and configuration ``sender`` sent in its BOR."""
        run = self._senders[sender.lower()]
        return dict(run.user_tags), dict(run.config)

    # --- internals ----------------------------------------------------------------------------
    def _running(self, sender: str, what: str) -> _SenderRun:
        run = self._senders.get(sender.lower())
        if run is None:
            raise DataProtocolError(sender, f"{what} before BOR")
        if run.ended:
            raise DataProtocolError(sender, f"{what} after EOR")
        return run

    def _own_flags(self, run: _SenderRun) -> RunCondition:
        flags = RunCondition.GOOD
        if run.gaps.missed:
            flags |= RunCondition.INCOMPLETE
        if self._degraded:
            flags |= RunCondition.DEGRADED
        return flags

    @staticmethod
    def _add_condition(metadata: dict[str, Any], added: RunCondition) -> None:
        """OR ``added`` into ``condition_code``; rewrite ``condition`` only if the code changed."""
        code = metadata.get("condition_code")
        if isinstance(code, bool) or not isinstance(code, int):
            code = None
        new_code = (code or 0) | int(added)
        if new_code != code:
            metadata["condition_code"] = new_code
            metadata["condition"] = describe_condition(new_code)

    def on_data_range(self, sender: str, first: int, count: int, now: float) -> None:
        """Count ``count`` records numbered ``first`` .. ``first + count - 1`` (uniform batches).

        Like :meth:`on_data_fast` for a batch known only by its sequence range: a range that
        continues the sequence is counted at once, anything else is checked number by number.
        """
        run = self._running(sender, "DATA")
        if count > 0 and first == run.last_sequence + 1:
            run.last_sequence += count
            run.records += count
            run.last_activity = now
            return
        self.on_data(sender, [_Numbered(s) for s in range(first, first + count)], now)


class _Numbered(NamedTuple):
    """A record known only by its sequence number (see :meth:`RunTracker.on_data_range`)."""

    sequence: int
