"""Unit tests for constellation.core.run_tracker: condition flags, EOR metadata, run checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import constellation
from constellation.core.run_tracker import (
    DEFAULT_LICENSE,
    SUBSTITUTE_KEY,
    RunCondition,
    RunConditionTracker,
    RunTracker,
    SequenceStatus,
    describe_condition,
    make_run_metadata,
)
from constellation.errors import DataProtocolError, DecodeError

S = SequenceStatus
T0 = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=5)


class Rec(NamedTuple):
    sequence: int
    tags: dict[str, Any]
    blocks: list[Any]


def recs(*seqs: int, size: int = 0) -> list[Rec]:
    return [Rec(seq, {}, [bytes(size)] if size else []) for seq in seqs]


def statuses(tracker: RunTracker, sender: str, *seqs: int) -> list[SequenceStatus]:
    return [checked.status for checked in tracker.on_data(sender, recs(*seqs), 1.0)]


def eor_meta(data_records: int | None, code: int = 0, condition: str = "GOOD") -> dict[str, Any]:
    meta: dict[str, Any] = {"run_id": "r1", "condition_code": code, "condition": condition}
    if data_records is not None:
        meta["data_records"] = data_records
    return meta


def started(*senders: str) -> RunTracker:
    tracker = RunTracker()
    for sender in senders:
        tracker.on_bor(sender, {"tag": 1}, {"param": 2}, 0.0)
    return tracker


# --- RunCondition ------------------------------------------------------------------------------
def test_condition_values() -> None:
    assert int(RunCondition.GOOD) == 0
    assert int(RunCondition.TAINTED) == 1
    assert int(RunCondition.INCOMPLETE) == 2
    assert int(RunCondition.INTERRUPTED) == 4
    assert int(RunCondition.ABORTED) == 8
    assert int(RunCondition.DEGRADED) == 0x10


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0, "GOOD"),
        (RunCondition.TAINTED, "TAINTED"),
        (RunCondition.ABORTED | RunCondition.INCOMPLETE, "INCOMPLETE|ABORTED"),
        (RunCondition.ABORTED | RunCondition.TAINTED, "TAINTED|ABORTED"),
        (0x1F, "TAINTED|INCOMPLETE|INTERRUPTED|ABORTED|DEGRADED"),
        (0x40 | 0x04, "INTERRUPTED|0x40"),
        (0x20, "0x20"),
    ],
)
def test_describe(code: int, text: str) -> None:
    assert describe_condition(int(code)) == text
    assert RunCondition(code).describe() == text


def test_condition_tracker() -> None:
    tracker = RunConditionTracker()
    assert tracker.condition is RunCondition.GOOD
    tracker.mark_interrupted()
    tracker.mark_degraded()
    assert tracker.condition == RunCondition.INTERRUPTED | RunCondition.DEGRADED
    tracker.mark_failed()
    assert tracker.condition.describe() == "TAINTED|INTERRUPTED|ABORTED|DEGRADED"
    tracker.reset()
    assert tracker.condition == RunCondition.GOOD
    tracker.add(RunCondition.TAINTED)
    assert int(tracker.condition) == RunCondition.TAINTED


# --- make_run_metadata -------------------------------------------------------------------------
def test_make_run_metadata_keys_and_values() -> None:
    meta = make_run_metadata(
        "run_7", T0, T1, RunCondition.INTERRUPTED | RunCondition.DEGRADED, 42, "2.1.0", {}
    )
    assert meta == {
        "version": "2.1.0",
        "cnstln_version": constellation.__version__,
        "cnstln_codename": constellation.CODENAME,
        "run_id": "run_7",
        "time_start": T0,
        "license": DEFAULT_LICENSE,
        "time_end": T1,
        "condition_code": 0x14,
        "condition": "INTERRUPTED|DEGRADED",
        "data_records": 42,
    }
    assert type(meta["condition_code"]) is int


def test_make_run_metadata_extra_and_license() -> None:
    meta = make_run_metadata("r", T0, T1, 0, 0, "1", {"host": "daq01"}, license="MIT")
    assert meta["host"] == "daq01"
    assert meta["license"] == "MIT"
    assert meta["condition"] == "GOOD"
    assert make_run_metadata("r", T0, T1, RunCondition.GOOD, 0, "1")["license"] == DEFAULT_LICENSE


@pytest.mark.parametrize("key", ["run_id", "condition_code", "data_records", "license"])
def test_make_run_metadata_extra_may_not_replace_standard_keys(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        make_run_metadata("r", T0, T1, 0, 0, "1", {key: "x"})


def test_make_run_metadata_rejects_naive_times_and_negative_count() -> None:
    with pytest.raises(ValueError, match="time_start"):
        make_run_metadata("r", T0.replace(tzinfo=None), T1, 0, 0, "1")
    with pytest.raises(ValueError, match="time_end"):
        make_run_metadata("r", T0, T1.replace(tzinfo=None), 0, 0, "1")
    with pytest.raises(ValueError, match="data_records"):
        make_run_metadata("r", T0, T1, 0, -1, "1")


# --- a clean run -------------------------------------------------------------------------------
def test_clean_run_passes_metadata_through() -> None:
    tracker = started("Tx.a")
    assert statuses(tracker, "Tx.a", 1, 2, 3) == [S.IN_ORDER] * 3
    assert statuses(tracker, "Tx.a", 4, 5) == [S.IN_ORDER] * 2
    sent = eor_meta(5, code=int(RunCondition.INTERRUPTED), condition="as sent")
    stored = tracker.on_eor("Tx.a", {"user": True}, sent, 2.0)
    assert stored == sent  # nothing to add: the sender's text is kept as it was
    assert stored is not sent
    summary = tracker.summary("Tx.a")
    assert (summary.records, summary.last_sequence, summary.missed) == (5, 5, 0)
    assert (summary.duplicates, summary.out_of_order, summary.ended) == (0, 0, True)
    assert tracker.pending_eor() == []


def test_on_data_returns_records_in_order() -> None:
    tracker = started("Tx.a")
    batch = recs(1, 2, 3)
    checked = tracker.on_data("Tx.a", batch, 1.0)
    assert [c.record for c in checked] == batch
    assert [c.sequence for c in checked] == [1, 2, 3]
    assert tracker.on_data("Tx.a", [], 2.0) == []


def test_eor_metadata_is_not_aliased() -> None:
    tracker = started("Tx.a")
    sent = eor_meta(0)
    stored = tracker.on_eor("Tx.a", {}, sent, 1.0)
    stored["run_id"] = "changed"
    assert sent["run_id"] == "r1"


# --- sequence checks ---------------------------------------------------------------------------
def test_gap_counts_missed_and_flags_incomplete() -> None:
    tracker = started("Tx.a")
    assert statuses(tracker, "Tx.a", 1, 2, 5, 6, 9) == [
        S.IN_ORDER,
        S.IN_ORDER,
        S.AFTER_GAP,
        S.IN_ORDER,
        S.AFTER_GAP,
    ]
    assert tracker.summary("Tx.a").missed == 4  # 3, 4, 7, 8
    stored = tracker.on_eor("Tx.a", {}, eor_meta(9, int(RunCondition.INTERRUPTED)), 2.0)
    assert stored["condition_code"] == RunCondition.INCOMPLETE | RunCondition.INTERRUPTED
    assert stored["condition"] == "INCOMPLETE|INTERRUPTED"


def test_first_expected_sequence_is_one() -> None:
    tracker = started("Tx.a")
    assert statuses(tracker, "Tx.a", 3) == [S.AFTER_GAP]
    assert tracker.summary("Tx.a").missed == 2


def test_tail_loss_detected_from_data_records() -> None:
    tracker = started("Tx.a")
    statuses(tracker, "Tx.a", 1, 2, 3)
    stored = tracker.on_eor("Tx.a", {}, eor_meta(5), 2.0)
    assert stored["condition_code"] == RunCondition.INCOMPLETE
    assert stored["condition"] == "INCOMPLETE"


def test_missing_data_records_counts_as_mismatch() -> None:
    tracker = started("Tx.a")
    statuses(tracker, "Tx.a", 1)
    assert tracker.on_eor("Tx.a", {}, eor_meta(None), 2.0)["condition"] == "INCOMPLETE"


def test_missing_or_invalid_condition_code_is_replaced() -> None:
    tracker = started("Tx.a", "Tx.b")
    stored = tracker.on_eor("Tx.a", {}, {"data_records": 3}, 1.0)
    assert (stored["condition_code"], stored["condition"]) == (2, "INCOMPLETE")
    stored = tracker.on_eor("Tx.b", {}, {"data_records": 0, "condition_code": True}, 1.0)
    assert (stored["condition_code"], stored["condition"]) == (0, "GOOD")


def test_late_record_fills_gap() -> None:
    tracker = started("Tx.a")
    assert statuses(tracker, "Tx.a", 1, 4, 2) == [S.IN_ORDER, S.AFTER_GAP, S.OUT_OF_ORDER]
    summary = tracker.summary("Tx.a")
    assert (summary.missed, summary.out_of_order, summary.last_sequence) == (1, 1, 4)
    assert statuses(tracker, "Tx.a", 3) == [S.OUT_OF_ORDER]
    assert tracker.summary("Tx.a").missed == 0
    assert tracker.on_eor("Tx.a", {}, eor_meta(4), 2.0)["condition"] == "GOOD"


def test_duplicates_counted_separately() -> None:
    tracker = started("Tx.a")
    assert statuses(tracker, "Tx.a", 1, 2, 2, 1, 3) == [
        S.IN_ORDER,
        S.IN_ORDER,
        S.DUPLICATE,
        S.DUPLICATE,
        S.IN_ORDER,
    ]
    summary = tracker.summary("Tx.a")
    assert (summary.records, summary.duplicates, summary.missed) == (5, 2, 0)
    assert summary.last_sequence == 3
    assert tracker.on_eor("Tx.a", {}, eor_meta(3), 2.0)["condition"] == "GOOD"


def test_repeat_of_filled_gap_is_duplicate() -> None:
    tracker = started("Tx.a")
    assert statuses(tracker, "Tx.a", 1, 5, 3, 3) == [
        S.IN_ORDER,
        S.AFTER_GAP,
        S.OUT_OF_ORDER,
        S.DUPLICATE,
    ]
    assert tracker.summary("Tx.a").missed == 2  # 2 and 4


def test_sequence_below_one_rejected_without_side_effects() -> None:
    tracker = started("Tx.a")
    statuses(tracker, "Tx.a", 1)
    before = tracker.summary("Tx.a")
    with pytest.raises(DataProtocolError, match="below 1"):
        tracker.on_data("Tx.a", recs(2, 0, 3), 5.0)
    assert tracker.summary("Tx.a") == before
    assert statuses(tracker, "Tx.a", 2) == [S.IN_ORDER]


def test_bytes_counted_from_blocks() -> None:
    tracker = started("Tx.a")
    array = np.zeros(10, dtype=np.uint32)
    records = [
        Rec(1, {}, [b"abc", memoryview(b"12345")]),
        Rec(2, {}, [array]),
        Rec(3, {}, []),
    ]
    tracker.on_data("Tx.a", records, 1.0)
    assert tracker.summary("Tx.a").bytes == 3 + 5 + 40


def test_records_without_blocks_attribute() -> None:
    class Bare(NamedTuple):
        sequence: int

    tracker = started("Tx.a")
    tracker.on_data("Tx.a", [Bare(1), Bare(2)], 1.0)
    summary = tracker.summary("Tx.a")
    assert (summary.records, summary.bytes) == (2, 0)


def test_summary_times() -> None:
    tracker = RunTracker()
    tracker.on_bor("Tx.a", {}, {}, 10.0)
    tracker.on_data("Tx.a", recs(1), 12.5)
    summary = tracker.summary("Tx.a")
    assert (summary.bor_time, summary.last_activity) == (10.0, 12.5)


# --- protocol violations -----------------------------------------------------------------------
def test_data_before_bor() -> None:
    tracker = RunTracker()
    with pytest.raises(DataProtocolError, match="DATA before BOR") as info:
        tracker.on_data("Tx.a", recs(1), 0.0)
    assert info.value.sender == "Tx.a"
    assert isinstance(info.value, DecodeError)


def test_eor_before_bor() -> None:
    with pytest.raises(DataProtocolError, match="EOR before BOR"):
        RunTracker().on_eor("Tx.a", {}, eor_meta(0), 0.0)


def test_second_bor() -> None:
    tracker = started("Tx.a")
    with pytest.raises(DataProtocolError, match="second BOR"):
        tracker.on_bor("TX.A", {}, {}, 1.0)


@pytest.mark.parametrize("message", ["BOR", "DATA", "EOR"])
def test_anything_after_eor(message: str) -> None:
    tracker = started("Tx.a")
    tracker.on_eor("Tx.a", {}, eor_meta(0), 1.0)
    with pytest.raises(DataProtocolError, match="after EOR"):
        if message == "BOR":
            tracker.on_bor("Tx.a", {}, {}, 2.0)
        elif message == "DATA":
            tracker.on_data("Tx.a", recs(1), 2.0)
        else:
            tracker.on_eor("Tx.a", {}, eor_meta(0), 2.0)


def test_violation_does_not_disturb_other_senders() -> None:
    tracker = started("Tx.a", "Tx.b")
    statuses(tracker, "Tx.a", 1, 2)
    statuses(tracker, "Tx.b", 1)
    tracker.on_eor("Tx.b", {}, eor_meta(1), 1.0)
    before = (tracker.summary("Tx.a"), tracker.summary("Tx.b"), tracker.pending_eor())
    for bad in (
        lambda: tracker.on_bor("Tx.a", {}, {}, 2.0),
        lambda: tracker.on_data("Tx.b", recs(2), 2.0),
        lambda: tracker.on_data("Tx.c", recs(1), 2.0),
        lambda: tracker.on_data("Tx.a", recs(0), 2.0),
    ):
        with pytest.raises(DataProtocolError):
            bad()
    assert (tracker.summary("Tx.a"), tracker.summary("Tx.b"), tracker.pending_eor()) == before
    assert statuses(tracker, "Tx.a", 3) == [S.IN_ORDER]


def test_sender_names_are_case_insensitive() -> None:
    tracker = started("Tx.Alpha")
    statuses(tracker, "TX.ALPHA", 1)
    assert tracker.summary("tx.alpha").name == "Tx.Alpha"
    assert tracker.pending_eor() == ["Tx.Alpha"]
    tracker.on_eor("tx.alpha", {}, eor_meta(1), 1.0)
    assert tracker.pending_eor() == []


def test_summary_and_bor_of_unknown_sender() -> None:
    tracker = started("Tx.a")
    assert tracker.bor("TX.a") == ({"tag": 1}, {"param": 2})
    with pytest.raises(KeyError):
        tracker.summary("Tx.b")


# --- pending and substitute EORs -----------------------------------------------------------------
def test_pending_eor_in_bor_order() -> None:
    tracker = started("Tx.c", "Tx.a", "Tx.b")
    tracker.on_eor("Tx.a", {}, eor_meta(0), 1.0)
    assert tracker.pending_eor() == ["Tx.c", "Tx.b"]
    assert tracker.senders() == ["Tx.c", "Tx.a", "Tx.b"]


def test_substitute_eor_clean_sender() -> None:
    tracker = started("Tx.a")
    statuses(tracker, "Tx.a", 1, 2, 3)
    meta = tracker.substitute_eor("tx.a", "run_9", T1)
    assert meta == {
        "run_id": "run_9",
        "time_end": T1,
        "data_records": 3,
        SUBSTITUTE_KEY: True,
        "condition_code": int(RunCondition.ABORTED),
        "condition": "ABORTED",
    }
    assert tracker.pending_eor() == []
    assert tracker.summary("Tx.a").substituted
    with pytest.raises(DataProtocolError, match="after EOR"):
        tracker.on_data("Tx.a", recs(4), 2.0)


def test_substitute_eor_with_gaps_and_degraded() -> None:
    tracker = started("Tx.a")
    statuses(tracker, "Tx.a", 1, 4)
    tracker.mark_degraded()
    meta = tracker.substitute_eor("Tx.a", "r", T1)
    assert meta["condition_code"] == RunCondition.INCOMPLETE | RunCondition.ABORTED | 0x10
    assert meta["condition"] == "INCOMPLETE|ABORTED|DEGRADED"
    assert meta["data_records"] == 4


def test_substitute_eor_only_for_pending_senders() -> None:
    tracker = started("Tx.a")
    tracker.on_eor("Tx.a", {}, eor_meta(0), 1.0)
    with pytest.raises(ValueError, match="no EOR is pending"):
        tracker.substitute_eor("Tx.a", "r", T1)
    with pytest.raises(ValueError, match="no EOR is pending"):
        tracker.substitute_eor("Tx.unknown", "r", T1)
    assert not tracker.summary("Tx.a").substituted


def test_mark_degraded_only_affects_later_results() -> None:
    tracker = started("Tx.a", "Tx.b")
    early = tracker.on_eor("Tx.a", {}, eor_meta(0), 1.0)
    assert not tracker.degraded
    tracker.mark_degraded()
    assert tracker.degraded
    late = tracker.on_eor("Tx.b", {}, eor_meta(0), 2.0)
    assert early["condition"] == "GOOD"
    assert (late["condition_code"], late["condition"]) == (0x10, "DEGRADED")


# --- property-based ----------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=1, max_value=40), max_size=8), max_size=12))
def test_counts_match_a_model(batches: list[list[int]]) -> None:
    tracker = started("Tx.a")
    seen: set[int] = set()
    total = 0
    for batch in batches:
        for checked in tracker.on_data("Tx.a", recs(*batch), 1.0):
            seq, highest = checked.sequence, max(seen, default=0)
            expected = (
                S.DUPLICATE
                if seq in seen
                else S.IN_ORDER
                if seq == highest + 1
                else S.AFTER_GAP
                if seq > highest
                else S.OUT_OF_ORDER
            )
            assert checked.status is expected
            seen.add(seq)
            total += 1
    highest = max(seen, default=0)
    summary = tracker.summary("Tx.a")
    assert summary.records == total
    assert summary.last_sequence == highest
    assert summary.missed == highest - len(seen)
    assert summary.duplicates + len(seen) == total
    stored = tracker.on_eor("Tx.a", {}, eor_meta(highest), 2.0)
    assert (stored["condition_code"] == RunCondition.INCOMPLETE) == (summary.missed > 0)


SENDERS = st.sampled_from(["Tx.a", "TX.A", "Tx.b", "Rx.c"])


class RunMachine(RuleBasedStateMachine):
    """Random BOR/DATA/EOR/substitute traffic: only DataProtocolError may come out, and only
    for the violations the model predicts."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = RunTracker()
        self.phase: dict[str, str] = {}  # lower-case name → "run" | "ended"
        self.records: dict[str, int] = {}

    @rule(sender=SENDERS)
    def bor(self, sender: str) -> None:
        key = sender.lower()
        if key in self.phase:
            with pytest.raises(DataProtocolError):
                self.tracker.on_bor(sender, {}, {}, 0.0)
        else:
            self.tracker.on_bor(sender, {}, {}, 0.0)
            self.phase[key], self.records[key] = "run", 0

    @rule(sender=SENDERS, seqs=st.lists(st.integers(min_value=0, max_value=30), max_size=5))
    def data(self, sender: str, seqs: list[int]) -> None:
        key = sender.lower()
        if self.phase.get(key) != "run" or any(seq < 1 for seq in seqs):
            with pytest.raises(DataProtocolError):
                self.tracker.on_data(sender, recs(*seqs), 1.0)
        else:
            assert len(self.tracker.on_data(sender, recs(*seqs), 1.0)) == len(seqs)
            self.records[key] += len(seqs)

    @rule(sender=SENDERS, data_records=st.integers(min_value=0, max_value=30))
    def eor(self, sender: str, data_records: int) -> None:
        key = sender.lower()
        if self.phase.get(key) != "run":
            with pytest.raises(DataProtocolError):
                self.tracker.on_eor(sender, {}, eor_meta(data_records), 2.0)
        else:
            meta = self.tracker.on_eor(sender, {}, eor_meta(data_records), 2.0)
            assert meta["condition"] == describe_condition(meta["condition_code"])
            self.phase[key] = "ended"

    @rule(sender=SENDERS)
    def substitute(self, sender: str) -> None:
        key = sender.lower()
        if self.phase.get(key) != "run":
            with pytest.raises(ValueError):
                self.tracker.substitute_eor(sender, "r", T1)
        else:
            meta = self.tracker.substitute_eor(sender, "r", T1)
            assert meta["condition_code"] & RunCondition.ABORTED
            assert meta[SUBSTITUTE_KEY] is True
            self.phase[key] = "ended"

    @rule()
    def degrade(self) -> None:
        self.tracker.mark_degraded()

    @invariant()
    def consistent(self) -> None:
        pending = {name.lower() for name in self.tracker.pending_eor()}
        assert pending == {key for key, phase in self.phase.items() if phase == "run"}
        for key in self.phase:
            summary = self.tracker.summary(key)
            assert summary.records == self.records[key]
            assert 0 <= summary.missed <= summary.last_sequence
            assert summary.ended == (self.phase[key] == "ended")


TestRunMachine = RunMachine.TestCase
TestRunMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
