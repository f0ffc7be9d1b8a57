"""RunTracker.on_data_range counts like on_data for the same sequence numbers."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.core.run_tracker import RunTracker
from constellation.errors import DataProtocolError


class Rec(NamedTuple):
    sequence: int
    tags: dict[str, Any]
    blocks: list[Any]


def _tracker() -> RunTracker:
    tracker = RunTracker()
    tracker.on_bor("Tx.a", {}, {}, 0.0)
    return tracker


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(0, 8)), max_size=10))
def test_ranges_count_like_records(ranges: list[tuple[int, int]]) -> None:
    by_range, by_record = _tracker(), _tracker()
    for first, count in ranges:
        by_range.on_data_range("Tx.a", first, count, 1.0)
        by_record.on_data("Tx.a", [Rec(s, {}, []) for s in range(first, first + count)], 1.0)
    assert by_range.summary("Tx.a") == by_record.summary("Tx.a")


def test_range_in_order_and_after_a_gap() -> None:
    tracker = _tracker()
    tracker.on_data_range("Tx.a", 1, 100, 1.0)
    tracker.on_data_range("Tx.a", 111, 10, 2.0)
    summary = tracker.summary("Tx.a")
    assert summary.records == 110
    assert summary.missed == 10


def test_range_before_bor_and_below_one_are_protocol_errors() -> None:
    with pytest.raises(DataProtocolError):
        RunTracker().on_data_range("Tx.a", 1, 3, 0.0)
    with pytest.raises(DataProtocolError):
        _tracker().on_data_range("Tx.a", 0, 3, 0.0)
