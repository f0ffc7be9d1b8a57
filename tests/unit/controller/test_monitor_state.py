"""Unit tests for controller.monitor_state: one line per state change, run ids per sender."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.monitor_state import SenderStates, StateChange


def test_first_state_then_changes_only() -> None:
    states = SenderStates()
    assert states.state("Sat.a", "INIT") == StateChange("Sat.a", None, "INIT")
    assert states.state("sat.A", "INIT") is None  # periodic repeat, any spelling
    assert states.state("Sat.a", "ORBIT") == StateChange("Sat.a", "INIT", "ORBIT")
    states.forget("SAT.a")
    assert states.state("Sat.a", "ORBIT") == StateChange("Sat.a", None, "ORBIT")


def test_run_ids_per_sender() -> None:
    states = SenderStates()
    assert states.run_id("Sat.a") == ""
    assert states.run_id("Sat.a", "run_1") == "run_1"
    assert states.run_id("sat.a") == "run_1" and states.run_id("Sat.b") == ""


@given(st.lists(st.sampled_from(["NEW", "INIT", "ORBIT", "RUN"]), max_size=50))
def test_changes_reconstruct_the_sequence_without_repeats(values: list[str]) -> None:
    states = SenderStates()
    changes = [c for v in values if (c := states.state("S.a", v)) is not None]
    deduped = [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]
    assert [c.new for c in changes] == deduped
    assert all(c.old != c.new for c in changes)
