"""Unit tests for controller.state_view: the controller's belief about satellite states."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.state_view import Change, StateView, global_state, state_summary


def joined_view(*names: str) -> StateView:
    view = StateView()
    for name in names:
        view.joined(name, 0.0)
    return view


def test_heartbeat_before_join_is_silent_then_reported_on_join() -> None:
    view = StateView()
    assert view.heartbeat("sat.A", "INIT", 1.0) == []  # not joined yet
    changes = view.joined("Sat.a", 2.0)
    assert changes == [Change("join", "Sat.a"), Change("state", "Sat.a", "?", "INIT")]
    assert view.states() == {"Sat.a": "INIT"}


def test_answer_fills_the_view_only_before_heartbeats() -> None:
    view = joined_view("Sat.a")
    version = view.version("Sat.a")
    assert view.answered("Sat.a", "NEW", version, 1.0) == [Change("state", "Sat.a", "?", "NEW")]
    view.heartbeat("Sat.a", "INIT", 2.0)
    assert view.answered("Sat.a", "NEW", view.version("Sat.a"), 3.0) == []
    assert view.states()["Sat.a"] == "INIT"


def test_stale_answer_never_steps_back() -> None:
    view = joined_view("Sat.a")
    version = view.version("Sat.a")
    view.accepted("Sat.a", "initializing", "?", 1.0)
    assert view.answered("Sat.a", "NEW", version, 2.0) == []
    assert view.states()["Sat.a"] == "initializing"


def test_accepted_transition_only_when_view_unchanged() -> None:
    view = joined_view("Sat.a")
    view.heartbeat("Sat.a", "NEW", 0.5)
    view.heartbeat("Sat.a", "INIT", 1.0)  # the heartbeat overtook the reply
    assert view.accepted("Sat.a", "initializing", "NEW", 1.1) == []
    assert view.states()["Sat.a"] == "INIT"


def test_dead_keeps_last_state_and_status() -> None:
    view = joined_view("Sat.a")
    view.heartbeat("Sat.a", "RUN", 1.0, status="taking data")
    changes = view.left("Sat.a", 2.0)
    assert changes == [Change("state", "Sat.a", "RUN", "DEAD"), Change("leave", "Sat.a")]
    sat = view.get("sat.a")
    assert sat is not None and sat.last_state == "RUN" and sat.status == "taking data"
    assert view.left("Sat.a", 3.0) == []  # only once


def test_beats_read_after_a_departure_do_not_revive() -> None:
    view = joined_view("Sat.a")
    view.heartbeat("Sat.a", "ORBIT", 1.0)
    view.left("Sat.a", 2.0)
    assert view.heartbeat("Sat.a", "SAFE", 2.1) == []  # its last beat, read late
    assert view.states()["Sat.a"] == "DEAD"
    view.joined("Sat.a", 3.0)  # restarted
    assert view.heartbeat("Sat.a", "NEW", 3.1) == [Change("state", "Sat.a", "DEAD", "NEW")]


def test_dead_ignores_answers_unless_rejoined() -> None:
    view = joined_view("Sat.a")
    view.heartbeat("Sat.a", "ORBIT", 1.0)
    view.lost("Sat.a", 2.0)
    assert view.answered("Sat.a", "ORBIT", view.version("Sat.a"), 3.0) == []
    view.left("Sat.a", 3.5)
    view.joined("Sat.a", 4.0)
    changes = view.answered("Sat.a", "NEW", view.version("Sat.a"), 4.5, rejoined=True)
    assert changes == [Change("state", "Sat.a", "DEAD", "NEW")]


def test_global_state_shows_alarms_first() -> None:
    assert global_state([]) == "NONE"
    assert global_state(["ORBIT", "ORBIT"]) == "ORBIT"
    assert global_state(["INIT", "ORBIT"]) == "~INIT"
    assert global_state(["INIT", "ERROR"]) == "~ERROR"
    assert global_state(["SAFE", "INIT", "RUN"]) == "~SAFE"
    assert global_state(["ERROR", "SAFE"]) == "~ERROR"
    assert global_state(["ERROR", "ERROR"]) == "ERROR"


def test_state_summary_counts_alarms() -> None:
    assert state_summary(["INIT", "ERROR"]) == "INIT, 1 ERROR"
    assert state_summary(["INIT", "ORBIT", "DEAD", "DEAD"]) == "~INIT, 2 DEAD"
    assert state_summary(["RUN", "RUN"]) == "RUN"
    assert state_summary(["SAFE", "SAFE"]) == "SAFE"
    assert state_summary(["SAFE", "ERROR"]) == "1 ERROR, 1 SAFE"


STATES = ["NEW", "INIT", "ORBIT", "RUN", "SAFE", "ERROR", "initializing", "launching"]
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["join", "leave", "beat", "lost", "answer", "accept"]),
        st.sampled_from(["Sat.a", "sat.A", "Sat.b"]),
        st.sampled_from(STATES),
        st.integers(min_value=-1, max_value=3),
    ),
    max_size=40,
)


@given(EVENTS)
def test_view_invariants(events: list[tuple[str, str, str, int]]) -> None:
    view = StateView()
    now = 0.0
    for kind, name, state, delta in events:
        now += 0.1
        before = view.version(name)
        if kind == "join":
            changes = view.joined(name, now)
        elif kind == "leave":
            changes = view.left(name, now)
        elif kind == "beat":
            changes = view.heartbeat(name, state, now)
        elif kind == "lost":
            changes = view.lost(name, now)
        elif kind == "answer":
            changes = view.answered(name, state, before + delta, now)
        else:
            current = view.states().get(view.canonical(name), "?")
            changes = view.accepted(name, state, current, now)
        sat = view.get(name)
        for change in changes:
            if change.kind == "state":
                assert change.old != change.new
                assert sat is not None and sat.known
        # A stale answer (asked at another version) never changes anything.
        if kind == "answer" and delta != 0:
            assert changes == []
        if sat is not None:
            assert sat.last_state != "DEAD"
            if sat.state not in ("?", "DEAD"):
                assert sat.last_state == sat.state
            if kind == "leave" and changes:
                assert sat.state == "DEAD" and not sat.present
        # Names are case-insensitive: one entry per satellite.
        assert len({n.lower() for n in view.states()}) == len(view.states())
