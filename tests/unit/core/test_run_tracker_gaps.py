"""The run tracker's gap list stays bounded for a hostile sender (numbers jumping around)."""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.core import run_tracker
from constellation.core.run_tracker import MAX_GAP_RANGES, RunTracker, SequenceStatus


class Rec(NamedTuple):
    sequence: int
    tags: dict[str, Any]
    blocks: list[Any]


def test_every_other_number_keeps_the_gap_list_bounded() -> None:
    tracker = RunTracker()
    tracker.on_bor("Tx.h", {}, {}, 0.0)
    count = 3 * MAX_GAP_RANGES
    odd = [Rec(2 * i + 1, {}, []) for i in range(count)]
    tracker.on_data("Tx.h", odd, 1.0)
    gaps = tracker._running("Tx.h", "DATA").gaps
    assert len(gaps) <= MAX_GAP_RANGES
    assert tracker.summary("Tx.h").missed == count - 1  # 2, 4, ..., 2 * count - 2
    # Late even numbers in random order: tracked ones are out of order, forgotten ones duplicates.
    evens = [Rec(2 * i, {}, []) for i in range(1, count)]
    random.Random(7).shuffle(evens)
    checked = tracker.on_data("Tx.h", evens, 2.0)
    late = sum(c.status is SequenceStatus.OUT_OF_ORDER for c in checked)
    assert late == MAX_GAP_RANGES
    assert len(gaps) == 0
    assert tracker.summary("Tx.h").missed == count - 1 - MAX_GAP_RANGES


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(min_value=1, max_value=6)),
        st.tuples(st.just("fill"), st.integers(min_value=0, max_value=80)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, limit=st.integers(min_value=1, max_value=5))
def test_gaps_match_a_set_model(ops: list[tuple[str, int]], limit: int) -> None:
    gaps = run_tracker._Gaps(limit)
    missing: set[int] = set()
    forgotten_numbers: set[int] = set()
    top = 1
    for op, value in ops:
        if op == "add":
            start, end = top + 1, top + 1 + value  # skip one received number between ranges
            gaps.add(start, end)
            missing.update(range(start, end))
            top = end
        else:
            filled = gaps.fill(value)
            assert filled == (value in missing and value not in forgotten_numbers)
            if filled:
                missing.discard(value)
        tracked = {n for s, e in zip(gaps._starts, gaps._ends, strict=True) for n in range(s, e)}
        forgotten_numbers = missing - tracked
        assert len(gaps) <= limit
        assert gaps.missed == len(missing)
        assert tracked <= missing
        assert gaps._starts == sorted(gaps._starts)
        if gaps.forgotten == 0:
            assert tracked == missing
