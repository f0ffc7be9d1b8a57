"""Unit tests for constellation.core.heartbeat_tracker (time is always passed explicitly)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from constellation.core.heartbeat_tracker import (
    DEAD_STATE,
    HeartbeatTracker,
    PeerEvent,
    PeerEventKind,
)
from constellation.core.roles import CHPFlags, Role
from constellation.core.states import State

ORBIT, RUN, SAFE, ERROR = int(State.ORBIT), int(State.RUN), int(State.SAFE), int(State.ERROR)
DYNAMIC = int(Role.DYNAMIC.flags)
K = PeerEventKind


def kinds(events: list[PeerEvent]) -> list[PeerEventKind]:
    return [event.kind for event in events]


def beat(
    tracker: HeartbeatTracker,
    now: float,
    name: str = "Sat.a",
    state: int = ORBIT,
    flags: int = DYNAMIC,
    interval_ms: int = 1000,
    status: str | None = None,
) -> list[PeerEvent]:
    return tracker.on_heartbeat(name, state, flags, interval_ms, status, now)


# --- joining and state changes -----------------------------------------------------------------
def test_first_beat_joins() -> None:
    tracker = HeartbeatTracker()
    events = beat(tracker, 10.0, status="ready")
    assert events == [PeerEvent(K.JOINED, "Sat.a", DYNAMIC, None, ORBIT)]
    info = tracker.peers["Sat.a"]
    assert (info.state, info.flags, info.role) == (ORBIT, DYNAMIC, Role.DYNAMIC)
    assert (info.lives, info.alive, info.last_seen, info.status) == (3, True, 10.0, "ready")
    assert info.interval_s == 1.0


def test_same_state_again_gives_no_event() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0)
    assert beat(tracker, 1.0) == []
    assert tracker.peers["Sat.a"].last_seen == 1.0


def test_state_change_reports_old_and_new() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, state=ORBIT)
    (event,) = beat(tracker, 1.0, state=RUN)
    assert (event.kind, event.old_state, event.new_state) == (K.STATE_CHANGED, ORBIT, RUN)
    assert "ORBIT" in event.detail and "RUN" in event.detail


@pytest.mark.parametrize("failed", [ERROR, SAFE])
def test_reaching_error_or_safe_fails_once(failed: int) -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, state=RUN)
    events = beat(tracker, 1.0, state=failed, status="boom")
    assert kinds(events) == [K.STATE_CHANGED, K.FAILED]
    assert (events[1].old_state, events[1].new_state) == (RUN, failed)
    assert "boom" in events[1].detail
    assert beat(tracker, 2.0, state=failed) == []  # staying there is not news


def test_safe_to_error_is_a_new_failure() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, state=SAFE)
    assert kinds(beat(tracker, 1.0, state=ERROR)) == [K.STATE_CHANGED, K.FAILED]


def test_joining_in_error_is_a_failure() -> None:
    tracker = HeartbeatTracker()
    assert kinds(beat(tracker, 0.0, state=ERROR)) == [K.JOINED, K.FAILED]


def test_status_kept_when_beat_has_none() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, status="first")
    beat(tracker, 1.0, status=None)
    assert tracker.peers["Sat.a"].status == "first"
    beat(tracker, 2.0, status="second")
    assert tracker.peers["Sat.a"].status == "second"


def test_extrasystole_bit_is_not_stored() -> None:
    tracker = HeartbeatTracker()
    (event,) = beat(tracker, 0.0, flags=DYNAMIC | CHPFlags.IS_EXTRASYSTOLE)
    assert event.flags == DYNAMIC
    assert tracker.peers["Sat.a"].flags == DYNAMIC


def test_role_follows_flags() -> None:
    tracker = HeartbeatTracker()
    roles = []
    for now, role in enumerate([Role.ESSENTIAL, Role.NONE, Role.TRANSIENT]):
        beat(tracker, float(now), flags=int(role.flags))
        roles.append(tracker.peers["Sat.a"].role)
    assert roles == [Role.ESSENTIAL, Role.NONE, Role.TRANSIENT]


# --- names -------------------------------------------------------------------------------------
def test_lookup_is_case_insensitive_and_keeps_first_spelling() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, name="Sat.Alpha")
    assert beat(tracker, 1.0, name="SAT.ALPHA", state=RUN)[0].name == "Sat.Alpha"
    assert list(tracker.peers) == ["Sat.Alpha"]
    assert tracker.peers["sat.alpha"].state == RUN
    assert "sAt.aLpHa" in tracker.peers
    assert tracker.get("SAT.alpha") is not None
    assert tracker.get("Sat.Beta") is None
    assert tracker.on_departure("sat.ALPHA", 2.0)[0].name == "Sat.Alpha"
    assert len(tracker.peers) == 0


def test_peers_is_a_snapshot() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0)
    view = tracker.peers
    beat(tracker, 1.0, state=RUN)
    beat(tracker, 1.0, name="Sat.b")
    assert view["Sat.a"].state == ORBIT
    assert len(view) == 1
    assert len(tracker.peers) == 2
    with pytest.raises(AttributeError):
        view["Sat.a"].lives = 0  # type: ignore[misc]


# --- lives -------------------------------------------------------------------------------------
def test_one_life_per_grace_period() -> None:
    tracker = HeartbeatTracker()  # 3 lives, 1.5 x interval
    beat(tracker, 100.0, interval_ms=1000)
    assert tracker.next_deadline() == pytest.approx(101.5)
    assert tracker.check(101.49) == []
    (lost,) = tracker.check(101.5)
    assert (lost.kind, lost.name, lost.flags) == (K.LIFE_LOST, "Sat.a", DYNAMIC)
    assert tracker.peers["Sat.a"].lives == 2
    assert tracker.check(102.9) == []  # the next period runs from the lost life, not the beat
    assert tracker.next_deadline() == pytest.approx(103.0)
    assert kinds(tracker.check(103.0)) == [K.LIFE_LOST]
    assert tracker.peers["Sat.a"].lives == 1


def test_beat_restores_all_lives() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0)
    tracker.check(1.5)
    tracker.check(3.0)
    assert tracker.peers["Sat.a"].lives == 1
    assert beat(tracker, 3.1) == []
    assert tracker.peers["Sat.a"].lives == 3
    assert tracker.next_deadline() == pytest.approx(4.6)


def test_death_after_three_misses_exactly_once() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, state=RUN)
    events = [event for now in (1.5, 3.0, 4.5) for event in tracker.check(now)]
    assert kinds(events) == [K.LIFE_LOST, K.LIFE_LOST, K.LIFE_LOST, K.DIED]
    died = events[-1]
    assert (died.old_state, died.new_state) == (RUN, DEAD_STATE)
    info = tracker.peers["Sat.a"]
    assert (info.alive, info.lives, info.state) == (False, 0, DEAD_STATE)
    assert tracker.check(100.0) == []
    assert tracker.check(1e9) == []
    assert tracker.next_deadline() is None


def test_late_check_charges_every_missed_period() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0)
    assert kinds(tracker.check(3.2)) == [K.LIFE_LOST, K.LIFE_LOST]
    assert tracker.peers["Sat.a"].lives == 1
    assert tracker.next_deadline() == pytest.approx(4.5)
    assert kinds(tracker.check(50.0)) == [K.LIFE_LOST, K.DIED]


def test_check_frequency_does_not_change_outcome() -> None:
    fine, coarse = HeartbeatTracker(), HeartbeatTracker()
    beat(fine, 0.0)
    beat(coarse, 0.0)
    fine_events = [e for step in range(1, 61) for e in fine.check(step * 0.1)]
    coarse_events = coarse.check(6.0)
    assert kinds(fine_events) == kinds(coarse_events) == [K.LIFE_LOST] * 3 + [K.DIED]


def test_dead_peer_revives() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, state=RUN)
    tracker.check(10.0)
    events = beat(tracker, 11.0, state=ORBIT, status="back")
    assert kinds(events) == [K.REVIVED, K.STATE_CHANGED]
    assert (events[1].old_state, events[1].new_state) == (DEAD_STATE, ORBIT)
    info = tracker.peers["Sat.a"]
    assert (info.alive, info.lives, info.state, info.status) == (True, 3, ORBIT, "back")
    assert kinds(tracker.check(20.0)) == [K.LIFE_LOST] * 3 + [K.DIED]  # can die again


def test_revival_in_error_is_a_failure() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, state=ERROR)
    tracker.check(10.0)
    assert kinds(beat(tracker, 11.0, state=ERROR)) == [K.REVIVED, K.STATE_CHANGED, K.FAILED]


def test_peers_are_independent() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, name="Sat.a", interval_ms=1000)
    beat(tracker, 0.0, name="Sat.b", interval_ms=4000)
    assert tracker.next_deadline() == pytest.approx(1.5)
    events = tracker.check(4.5)
    assert {e.name for e in events} == {"Sat.a"}
    assert kinds(events) == [K.LIFE_LOST] * 3 + [K.DIED]
    assert tracker.peers["Sat.b"].lives == 3
    assert tracker.next_deadline() == pytest.approx(6.0)  # only Sat.b is still watched


def test_custom_lives_and_grace() -> None:
    tracker = HeartbeatTracker(lives=1, grace_factor=2.0)
    beat(tracker, 0.0, interval_ms=500)
    assert tracker.check(0.99) == []
    assert kinds(tracker.check(1.0)) == [K.LIFE_LOST, K.DIED]


@pytest.mark.parametrize(
    "kwargs",
    [{"lives": 0}, {"grace_factor": 0.0}, {"initial_interval_s": -1.0}],
)
def test_bad_parameters_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HeartbeatTracker(**kwargs)  # type: ignore[arg-type]


# --- intervals ---------------------------------------------------------------------------------
def test_interval_change_moves_the_deadline() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, interval_ms=1000)
    beat(tracker, 1.0, interval_ms=10_000)
    assert tracker.peers["Sat.a"].interval_s == 10.0
    assert tracker.next_deadline() == pytest.approx(16.0)
    assert tracker.check(15.9) == []
    beat(tracker, 2.0, interval_ms=500)
    assert tracker.next_deadline() == pytest.approx(2.75)
    assert kinds(tracker.check(2.75)) == [K.LIFE_LOST]


def test_zero_interval_falls_back_to_initial_then_keeps_last() -> None:
    tracker = HeartbeatTracker(initial_interval_s=2.0)
    beat(tracker, 0.0, interval_ms=0)
    assert tracker.peers["Sat.a"].interval_s == 2.0
    assert tracker.next_deadline() == pytest.approx(3.0)
    beat(tracker, 1.0, interval_ms=400)
    beat(tracker, 2.0, interval_ms=0)
    assert tracker.peers["Sat.a"].interval_s == pytest.approx(0.4)


def test_no_peers_no_deadline() -> None:
    tracker = HeartbeatTracker()
    assert tracker.next_deadline() is None
    assert tracker.check(1e6) == []


# --- departure ---------------------------------------------------------------------------------
def test_departure_forgets_peer() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0, state=RUN, flags=int(Role.ESSENTIAL.flags))
    (event,) = tracker.on_departure("Sat.a", 1.0)
    assert (event.kind, event.flags, event.old_state, event.new_state) == (
        K.DEPARTED,
        int(Role.ESSENTIAL.flags),
        RUN,
        None,
    )
    assert "Sat.a" not in tracker.peers
    assert tracker.next_deadline() is None
    assert tracker.check(100.0) == []
    assert tracker.on_departure("Sat.a", 2.0) == []  # already forgotten
    assert kinds(beat(tracker, 3.0)) == [K.JOINED]  # a returning peer is new


def test_departure_of_unknown_peer_is_silent() -> None:
    assert HeartbeatTracker().on_departure("Nobody.here", 0.0) == []


def test_departure_of_dead_peer_is_reported() -> None:
    tracker = HeartbeatTracker()
    beat(tracker, 0.0)
    tracker.check(10.0)
    (event,) = tracker.on_departure("Sat.a", 11.0)
    assert (event.kind, event.old_state) == (K.DEPARTED, DEAD_STATE)


# --- property-based ----------------------------------------------------------------------------
NAMES = st.sampled_from(["Sat.a", "SAT.A", "Sat.b", "Other.c"])
STATES = st.sampled_from([0x10, 0x12, 0x20, 0x30, 0x40, 0xE0, 0xF0, 0x0E, 0x77, 0x00])


class TrackerMachine(RuleBasedStateMachine):
    """Random beats, checks and departures with a clock that only moves forward."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = HeartbeatTracker()
        self.now = 0.0
        self.died: dict[str, int] = {}  # name → DIED events since its last beat or departure

    @rule(
        dt=st.floats(min_value=0, max_value=20),
        name=NAMES,
        state=STATES,
        flags=st.integers(min_value=0, max_value=0xFF),
        interval_ms=st.integers(min_value=0, max_value=65535),
        status=st.none() | st.text(max_size=5),
    )
    def heartbeat(
        self, dt: float, name: str, state: int, flags: int, interval_ms: int, status: str | None
    ) -> None:
        self.now += dt
        known = self.tracker.get(name)
        events = self.tracker.on_heartbeat(name, state, flags, interval_ms, status, self.now)
        arrival = [e.kind for e in events if e.kind in (K.JOINED, K.REVIVED)]
        if known is None:
            assert arrival == [K.JOINED]
        else:
            assert arrival == ([] if known.alive else [K.REVIVED])
        info = self.tracker.peers[name]
        assert (info.lives, info.alive, info.state, info.last_seen) == (3, True, state, self.now)
        self.died[name.lower()] = 0

    @rule(dt=st.floats(min_value=0, max_value=20))
    def check(self, dt: float) -> None:
        self.now += dt
        deadline = self.tracker.next_deadline()
        events = self.tracker.check(self.now)
        assert bool(events) == (deadline is not None and self.now >= deadline)
        for event in events:
            assert event.kind in (K.LIFE_LOST, K.DIED)
            if event.kind is K.DIED:
                self.died[event.name.lower()] += 1

    @rule(dt=st.floats(min_value=0, max_value=5), name=NAMES)
    def depart(self, dt: float, name: str) -> None:
        self.now += dt
        known = name in self.tracker.peers
        assert bool(self.tracker.on_departure(name, self.now)) == known
        assert name not in self.tracker.peers
        self.died.pop(name.lower(), None)

    @precondition(lambda self: self.tracker.next_deadline() is not None)
    @rule()
    def check_exactly_at_deadline(self) -> None:
        deadline = self.tracker.next_deadline()
        assert deadline is not None
        self.now = max(self.now, deadline)
        assert kinds(self.tracker.check(self.now))[0] is K.LIFE_LOST

    @invariant()
    def lives_in_range_and_consistent(self) -> None:
        for info in self.tracker.peers.values():
            assert 0 <= info.lives <= 3
            assert info.alive == (info.lives > 0)
            assert (info.state == DEAD_STATE) or info.alive
        for count in self.died.values():
            assert count <= 1
        deadline = self.tracker.next_deadline()
        assert deadline is None or deadline >= 0


TestTrackerMachine = TrackerMachine.TestCase
TestTrackerMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@pytest.mark.parametrize("seed_now", [-5.0, 0.0, 1e12])
def test_clock_going_backwards_never_raises(seed_now: float) -> None:
    tracker = HeartbeatTracker()
    beat(tracker, seed_now)
    assert tracker.check(seed_now - 100.0) == []
    assert tracker.peers["Sat.a"].lives == 3
