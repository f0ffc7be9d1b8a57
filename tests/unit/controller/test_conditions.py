"""Unit tests for controller.conditions.check_conditions: the controller's pre-flight check of
conditional transitions (unknown peers and circular waits), a pure function of the configs."""

from __future__ import annotations

from typing import Any

import pytest

from constellation.errors import ConfigError
from controller.conditions import check_conditions

__all__: list[str] = []

PRESENT = ["Sat.a", "Sat.b", "Sat.c", "Other.d"]


def cond(**lists: Any) -> dict[str, Any]:
    """A merged satellite config with ``_conditions.require_<name>_after`` lists."""
    return {"_conditions": {f"require_{k}_after": v for k, v in lists.items()}}


def test_no_conditions_pass() -> None:
    check_conditions({"Sat.a": {}, "Sat.b": {"x": 1}}, PRESENT)
    check_conditions({}, [])


def test_a_chain_per_transition_passes() -> None:
    configs = {
        "Sat.a": cond(stopping=["Sat.b"]),
        "Sat.b": cond(starting=["Sat.a"], stopping=["Sat.c"]),
        "Sat.c": cond(starting=["Sat.a", "Sat.b"], landing=["Other.d"]),
    }
    check_conditions(configs, PRESENT)


def test_opposite_orders_in_different_transitions_are_no_cycle() -> None:
    configs = {"Sat.a": cond(stopping=["Sat.b"]), "Sat.b": cond(starting=["Sat.a"])}
    check_conditions(configs, PRESENT)


def test_a_present_peer_that_is_not_a_target_counts_as_present() -> None:
    check_conditions({"Sat.a": cond(launching=["Other.d"])}, PRESENT)


def test_names_compare_case_insensitively() -> None:
    check_conditions({"Sat.a": cond(starting=["sat.B", "OTHER.D"])}, PRESENT)


def test_unknown_peer_names_the_key_and_the_satellites() -> None:
    with pytest.raises(ConfigError) as info:
        check_conditions({"Sat.b": cond(launching=["Sat.a", "Sat.zz"])}, PRESENT)
    assert info.value.key == "Sat.b._conditions.require_launching_after"
    message = str(info.value)
    assert "Sat.b waits for Sat.zz" in message
    assert "not a satellite of this group" in message
    assert "Sat.a" in message  # the present ones are listed


def test_unknown_peer_when_only_the_targets_are_known() -> None:
    with pytest.raises(ConfigError, match=r"\(present: Sat\.a\)"):
        check_conditions({"Sat.a": cond(starting=["Sat.b"])}, [])


def test_self_reference_is_a_cycle() -> None:
    with pytest.raises(ConfigError) as info:
        check_conditions({"Sat.a": cond(initializing=["Sat.a"])}, PRESENT)
    assert info.value.key == "Sat.a._conditions.require_initializing_after"
    assert "Sat.a -> Sat.a" in str(info.value)


def test_two_cycle() -> None:
    configs = {"Sat.a": cond(landing=["Sat.b"]), "Sat.b": cond(landing=["Sat.a"])}
    with pytest.raises(ConfigError, match=r"circular condition: Sat\.a -> Sat\.b -> Sat\.a"):
        check_conditions(configs, PRESENT)


def test_long_cycle_behind_a_tail() -> None:
    configs = {
        "Sat.a": cond(starting=["Sat.b"]),
        "Sat.b": cond(starting=["Sat.c"]),
        "Sat.c": cond(starting=["Other.d"]),
        "Other.d": cond(starting=["Sat.b"]),
    }
    with pytest.raises(ConfigError) as info:
        check_conditions(configs, PRESENT)
    # the cycle alone, without Sat.a that merely waits for a member of it
    assert info.value.key == "Other.d._conditions.require_starting_after"
    assert "Other.d -> Sat.b -> Sat.c -> Other.d" in str(info.value)
    assert "Sat.a" not in str(info.value)


def test_diamond_is_no_cycle() -> None:
    configs = {
        "Sat.a": cond(starting=["Sat.b", "Sat.c"]),
        "Sat.b": cond(starting=["Other.d"]),
        "Sat.c": cond(starting=["Other.d"]),
    }
    check_conditions(configs, PRESENT)


def test_old_flat_spellings_are_checked_too() -> None:
    configs = {
        "Sat.a": {"_require_stop_after": ["Sat.b"]},
        "Sat.b": {"_require_stop_after": "Sat.a"},
    }
    with pytest.raises(ConfigError, match=r"require_stopping_after"):
        check_conditions(configs, PRESENT)


def test_a_value_that_is_no_list_of_names_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        check_conditions({"Sat.a": cond(starting=[1, 2])}, PRESENT)
    assert info.value.key == "Sat.a._conditions.require_starting_after"
    assert "expected a list of canonical names" in str(info.value)


def test_long_chain_needs_no_recursion() -> None:
    names = [f"Sat.n{i}" for i in range(3000)]
    configs = {names[i]: cond(starting=[names[i + 1]]) for i in range(len(names) - 1)}
    check_conditions(configs, names)
    configs[names[-1]] = cond(starting=[names[0]])
    with pytest.raises(ConfigError, match="circular condition"):
        check_conditions(configs, names)
