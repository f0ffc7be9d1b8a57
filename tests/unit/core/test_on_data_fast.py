"""``RunTracker.on_data_fast``: the receiver's hot path must count exactly like ``on_data``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constellation.core.run_tracker import RunTracker
from constellation.errors import DataProtocolError
from constellation.protocol.cdtp2 import DataRecord

__all__: list[str] = []


@dataclass(frozen=True)
class Seq:
    """A record that is not a tuple: only the ``sequence`` attribute matters."""

    sequence: int


def _tracker() -> RunTracker:
    tracker = RunTracker()
    tracker.on_bor("Tx.a", {}, {}, 0.0)
    return tracker


def _records(sequences: list[int]) -> list[DataRecord]:
    return [DataRecord(s, {}, []) for s in sequences]


def test_contiguous_batches_are_counted() -> None:
    tracker = _tracker()
    tracker.on_data_fast("Tx.a", _records([1, 2, 3]), 1.0)
    tracker.on_data_fast("Tx.a", [Seq(4), Seq(5)], 2.0)
    summary = tracker.summary("Tx.a")
    assert (summary.records, summary.last_sequence, summary.missed) == (5, 5, 0)
    assert summary.last_activity == 2.0
    tracker.on_data_fast("Tx.a", [], 3.0)  # an empty message is activity too
    assert tracker.summary("Tx.a").last_activity == 3.0


@pytest.mark.parametrize(
    "sequences",
    [[1, 2, 2, 4], [1, 3, 2, 4], [2, 3, 4], [1, 2, 4], [1, 1, 1, 4]],
    ids=["duplicate", "reordered", "late-start", "gap", "first-and-last-match-only"],
)
def test_anything_unusual_takes_the_full_check(sequences: list[int]) -> None:
    fast, full = _tracker(), _tracker()
    fast.on_data_fast("Tx.a", _records(sequences), 1.0)
    full.on_data("Tx.a", _records(sequences), 1.0)
    assert fast.summary("Tx.a") == full.summary("Tx.a")


def test_order_violations_raise() -> None:
    tracker = RunTracker()
    with pytest.raises(DataProtocolError, match="DATA before BOR"):
        tracker.on_data_fast("Tx.a", _records([1]), 0.0)
    tracker = _tracker()
    with pytest.raises(DataProtocolError, match="below 1"):
        tracker.on_data_fast("Tx.a", _records([0, 1]), 0.0)


@given(st.lists(st.lists(st.integers(1, 40), max_size=12), max_size=6))
def test_same_statistics_as_on_data(batches: list[list[int]]) -> None:
    fast, full = _tracker(), _tracker()
    for batch in batches:
        fast.on_data_fast("Tx.a", _records(batch), 1.0)
        full.on_data("Tx.a", _records(batch), 1.0)
    # on_data also counts block bytes; these records have none.
    assert fast.summary("Tx.a") == full.summary("Tx.a")
