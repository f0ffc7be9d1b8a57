"""Unit tests for constellation.core.roles: role flags, heartbeat interval, reactions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constellation.core.roles import (
    DEGRADE,
    IGNORE,
    INTERRUPT,
    LOG_ONLY,
    CHPFlags,
    PeerEventKind,
    Reaction,
    Role,
    heartbeat_interval,
    reaction,
)


# --- flags and roles ---------------------------------------------------------------------------
def test_flag_values_match_protocol() -> None:
    assert int(CHPFlags.DENY_DEPARTURE) == 0x01
    assert int(CHPFlags.TRIGGER_INTERRUPT) == 0x02
    assert int(CHPFlags.MARK_DEGRADED) == 0x04
    assert int(CHPFlags.IS_EXTRASYSTOLE) == 0x80


@pytest.mark.parametrize(
    ("role", "flags"),
    [(Role.NONE, 0x00), (Role.TRANSIENT, 0x04), (Role.DYNAMIC, 0x06), (Role.ESSENTIAL, 0x07)],
)
def test_role_flags_round_trip(role: Role, flags: int) -> None:
    assert role.flags == flags
    assert Role.from_flags(flags) is role
    assert Role.from_flags(flags | CHPFlags.IS_EXTRASYSTOLE) is role


@pytest.mark.parametrize(
    ("flags", "role"),
    [
        (0x01, Role.NONE),  # no MARK_DEGRADED: nothing else matters
        (0x03, Role.NONE),
        (0x05, Role.TRANSIENT),  # no TRIGGER_INTERRUPT
        (0x0E, Role.DYNAMIC),  # reserved bit ignored
        (0xFF, Role.ESSENTIAL),
    ],
)
def test_role_from_unusual_flags(flags: int, role: Role) -> None:
    assert Role.from_flags(flags) is role


@given(st.integers(min_value=0, max_value=0xFF))
def test_from_flags_depends_only_on_role_bits(flags: int) -> None:
    assert Role.from_flags(flags) is Role.from_flags(flags & 0x07)


@pytest.mark.parametrize("text", ["essential", "ESSENTIAL", "Essential", " essential\n"])
def test_parse_is_case_insensitive(text: str) -> None:
    assert Role.parse(text) is Role.ESSENTIAL


@pytest.mark.parametrize("text", ["", "critical", "DYNAMIC_", "0x07", "none role"])
def test_parse_rejects_unknown_names(text: str) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        Role.parse(text)


def test_role_value_is_its_name() -> None:
    assert [role.value for role in Role] == ["NONE", "TRANSIENT", "DYNAMIC", "ESSENTIAL"]


# --- heartbeat interval ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("subscribers", "expected"),
    [
        (-3, 0.5),
        (0, 0.5),
        (1, 0.5),
        (2, 1.5),  # 0.5 * sqrt(1) * 3
        (5, 3.0),  # 0.5 * sqrt(4) * 3
        (10, 4.5),  # 0.5 * sqrt(9) * 3
    ],
)
def test_heartbeat_interval_values(subscribers: int, expected: float) -> None:
    assert heartbeat_interval(subscribers, 30.0) == pytest.approx(expected)


def test_heartbeat_interval_capped_by_maximum() -> None:
    assert heartbeat_interval(1000, 30.0) == 30.0
    assert heartbeat_interval(1000, 2.0) == 2.0
    assert heartbeat_interval(1, 0.2) == 0.2  # the maximum wins over the 0.5 s floor


@pytest.mark.parametrize("maximum", [0.0, -1.0, math.nan])
def test_heartbeat_interval_rejects_bad_maximum(maximum: float) -> None:
    with pytest.raises(ValueError, match="max_interval_s"):
        heartbeat_interval(3, maximum)


@given(st.integers(min_value=-10, max_value=10**6), st.floats(min_value=0.5, max_value=3600))
def test_heartbeat_interval_bounds_and_monotonic(n: int, maximum: float) -> None:
    value = heartbeat_interval(n, maximum)
    assert 0.5 <= value <= maximum
    assert heartbeat_interval(n + 1, maximum) >= value


# --- reactions ---------------------------------------------------------------------------------
FAILURES = [PeerEventKind.FAILED, PeerEventKind.DIED]
NON_ISSUES = [
    PeerEventKind.JOINED,
    PeerEventKind.STATE_CHANGED,
    PeerEventKind.LIFE_LOST,
    PeerEventKind.REVIVED,
]


@pytest.mark.parametrize(
    ("role", "on_failure", "on_departure"),
    [
        (Role.ESSENTIAL, INTERRUPT, INTERRUPT),
        (Role.DYNAMIC, INTERRUPT, DEGRADE),
        (Role.TRANSIENT, DEGRADE, DEGRADE),
        (Role.NONE, LOG_ONLY, LOG_ONLY),
    ],
)
def test_reaction_table_in_orbit_or_run(
    role: Role, on_failure: Reaction, on_departure: Reaction
) -> None:
    for kind in FAILURES:
        assert reaction(role.flags, kind, True) == on_failure
    assert reaction(role.flags, PeerEventKind.DEPARTED, True) == on_departure


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("kind", [*FAILURES, PeerEventKind.DEPARTED])
def test_outside_orbit_and_run_only_logs(role: Role, kind: PeerEventKind) -> None:
    assert reaction(role.flags, kind, False) == LOG_ONLY


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("kind", NON_ISSUES)
@pytest.mark.parametrize("active", [True, False])
def test_non_issues_are_ignored(role: Role, kind: PeerEventKind, active: bool) -> None:
    assert reaction(role.flags, kind, active) == IGNORE


def test_extrasystole_bit_does_not_change_reaction() -> None:
    flags = Role.DYNAMIC.flags | CHPFlags.IS_EXTRASYSTOLE
    assert reaction(flags, PeerEventKind.FAILED, True).interrupt
    assert not reaction(flags, PeerEventKind.DEPARTED, True).interrupt


@given(
    st.integers(min_value=0, max_value=0xFF),
    st.sampled_from(list(PeerEventKind)),
    st.booleans(),
)
def test_reaction_invariants(flags: int, kind: PeerEventKind, active: bool) -> None:
    result = reaction(flags, kind, active)
    assert not result.interrupt or result.degrade  # interrupt implies degraded
    assert not result.degrade or result.log
    if result.interrupt:
        assert active and flags & CHPFlags.TRIGGER_INTERRUPT and flags & CHPFlags.MARK_DEGRADED
    if result.degrade:
        assert active and flags & CHPFlags.MARK_DEGRADED


def test_reaction_rejects_inconsistent_combinations() -> None:
    with pytest.raises(ValueError):
        Reaction(log=True, degrade=False, interrupt=True)
    with pytest.raises(ValueError):
        Reaction(log=False, degrade=True)
