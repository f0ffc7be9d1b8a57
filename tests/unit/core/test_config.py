"""Configuration: typed getters, key paths, read records, env and framework keys.

Framework keys as in docs/protocols.md#configuration-payload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constellation.core.config import (
    Configuration,
    DataConfig,
    FrameworkConfig,
    normalize_framework_keys,
    resolve_env,
)
from constellation.core.roles import Role
from constellation.core.states import State
from constellation.errors import ConfigError


def config_error(key: str, *fragments: str) -> Any:
    """Context manager asserting a ConfigError for ``key`` whose message has ``fragments``."""

    class _Check:
        def __enter__(self) -> None:
            return None

        def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
            assert isinstance(exc, ConfigError), f"expected ConfigError, got {exc!r}"
            assert exc.key == key
            for fragment in fragments:
                assert fragment in exc.reason, (fragment, exc.reason)
            assert f"'{key}'" in str(exc)
            return True

    return _Check()


# --- keys -----------------------------------------------------------------------------------------
def test_keys_are_case_insensitive_and_stored_lower_case() -> None:
    config = Configuration({"Voltage": 5, "Sec": {"InNer": "x"}})
    assert config.as_dict() == {"voltage": 5, "sec": {"inner": "x"}}
    assert config.get_int("VOLTAGE") == 5
    assert config.get_str("sEc.INNER") == "x"
    assert config.get_section("SEC").get_str("inner") == "x"


def test_dotted_keys_become_sections() -> None:
    config = Configuration({"_data.bor_timeout": 3, "_data": {"eor_timeout": 4}})
    assert config.as_dict() == {"_data": {"bor_timeout": 3, "eor_timeout": 4}}


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"a": 1, "A": 2}, "a"),
        ({"sec": {"Key": 1, "KEY": 2}}, "sec.key"),
        ({"sec.key": 1, "sec": {"key": 2}}, "sec.key"),
        ({"sec": 1, "sec.key": 2}, "sec"),
    ],
)
def test_duplicate_keys_after_lower_casing(mapping: dict[str, Any], key: str) -> None:
    with config_error(key):
        Configuration(mapping)


def test_non_str_key_is_an_error() -> None:
    with config_error("sec", "keys must be str"):
        Configuration({"sec": {1: "x"}})


def test_empty_key_part_is_an_error() -> None:
    with config_error("a..b", "empty"):
        Configuration({"a..b": 1})


def test_input_is_not_shared() -> None:
    source = {"sec": {"values": [1, 2]}}
    config = Configuration(source)
    source["sec"]["values"].append(3)
    assert config.get_list("sec.values") == [1, 2]
    config.get_list("sec.values").append(4)
    assert config.get("sec") == {"values": [1, 2]}


def test_prefix_names_the_full_path() -> None:
    config = Configuration({"x": "a"}, prefix="Outer.Inner")
    assert config.prefix == "outer.inner"
    assert config.key_path("X") == "outer.inner.x"
    assert config.unused_keys() == ["outer.inner.x"]
    with config_error("outer.inner.x", "expected int, got str"):
        config.get_int("x")


# --- typed getters --------------------------------------------------------------------------------
def test_missing_key_names_full_path_and_type() -> None:
    config = Configuration({"_data": {}})
    with config_error("_data.bor_timeout", "missing", "int"):
        config.get_int("_data.bor_timeout")
    with config_error("_data.bor_timeout", "missing", "int"):
        config.get_section("_data").get_int("bor_timeout")


def test_defaults_are_returned() -> None:
    config = Configuration({})
    assert config.get("a", "x") == "x"
    assert config.get_int("a", 3) == 3
    assert config.get_float("a", 1.5) == 1.5
    assert config.get_bool("a", True) is True
    assert config.get_str("a", None) is None
    assert config.get_list("a", [1]) == [1]
    assert config.get_path("a", Path("/tmp")) == Path("/tmp")


def test_get_int_accepts_integral_float() -> None:
    config = Configuration({"a": 7, "b": 8.0})
    assert config.get_int("a") == 7
    value = config.get_int("b")
    assert value == 8
    assert type(value) is int


@pytest.mark.parametrize(
    ("value", "got"), [(True, "bool"), (2.5, "float"), ("3", "str"), ([1], "list")]
)
def test_get_int_rejects(value: Any, got: str) -> None:
    with config_error("sec.n", "expected int", f"got {got}"):
        Configuration({"sec": {"n": value}}).get_int("sec.n")


def test_get_int_range() -> None:
    config = Configuration({"low": 0, "high": 11, "ok": 5})
    assert config.get_int("ok", min=1, max=10) == 5
    with config_error("low", ">= 1", "got 0"):
        config.get_int("low", min=1)
    with config_error("high", "<= 10", "got 11"):
        config.get_int("high", max=10)


def test_get_float_accepts_int_rejects_bool_and_str() -> None:
    config = Configuration({"i": 2, "b": False, "s": "1.0", "f": 0.5})
    value = config.get_float("i")
    assert value == 2.0
    assert type(value) is float
    with config_error("b", "expected float, got bool"):
        config.get_float("b")
    with config_error("s", "expected float, got str"):
        config.get_float("s")
    with config_error("f", ">= 1"):
        config.get_float("f", min=1)
    with config_error("f", "<= 0.1"):
        config.get_float("f", max=0.1)


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_get_bool_is_strict(value: Any) -> None:
    with config_error("flag", "expected bool"):
        Configuration({"flag": value}).get_bool("flag")


def test_get_str_with_choices_returns_canonical_spelling() -> None:
    config = Configuration({"mode": "fast", "bad": "slowest"})
    assert config.get_str("mode", choices=["SLOW", "FAST"]) == "FAST"
    with config_error("bad", "expected one of 'SLOW', 'FAST'", "got 'slowest'"):
        config.get_str("bad", choices=["SLOW", "FAST"])
    with config_error("mode", "expected str, got int"):
        Configuration({"mode": 3}).get_str("mode")


def test_get_list_element_types() -> None:
    config = Configuration({"ints": [1, 2], "floats": [1, 2.5], "mixed": [1, "x"], "tup": (1,)})
    assert config.get_list("ints", element_type=int) == [1, 2]
    assert config.get_list("floats", element_type=float) == [1.0, 2.5]
    assert config.get_list("tup") == [1]
    with config_error("mixed", "element 1", "expected int, got str"):
        config.get_list("mixed", element_type=int)
    with config_error("ints", "element 0", "expected str, got int"):
        config.get_list("ints", element_type=str)
    with pytest.raises(ValueError, match="element_type"):
        config.get_list("ints", element_type=dict)


def test_get_list_rejects_scalar() -> None:
    with config_error("names", "expected list, got str"):
        Configuration({"names": "A.b"}).get_list("names")


def test_get_path() -> None:
    config = Configuration({"out": "/data/run", "bad": 3})
    assert config.get_path("out") == Path("/data/run")
    with config_error("bad", "expected path"):
        config.get_path("bad")


def test_get_section() -> None:
    config = Configuration({"a": {"b": {"c": 1}}, "leaf": 2})
    inner = config.get_section("a").get_section("B")
    assert inner.prefix == "a.b"
    assert inner.get_int("c") == 1
    assert inner.as_dict() == {"c": 1}
    with config_error("a.b.d", "missing"):
        inner.get_int("d")
    with config_error("leaf", "expected a section (map), got int"):
        config.get_section("leaf")
    absent = config.get_section("absent")
    assert absent.as_dict() == {}
    assert absent.get_int("x", 4) == 4


def test_dotted_path_through_a_value() -> None:
    config = Configuration({"leaf": 2})
    with config_error("leaf", "expected a section (map), got int"):
        config.get_int("leaf.x")
    assert not config.has("leaf.x")


def test_has_and_keys() -> None:
    config = Configuration({"a": {"b": 1}, "c": None})
    assert config.has("A.B")
    assert config.has("c")
    assert not config.has("a.x")
    assert config.keys() == ["a", "c"]
    assert config.unused_keys() == ["a.b", "c"]  # has() is not a read


# --- read records ---------------------------------------------------------------------------------
def test_effective_holds_reads_and_defaults_used() -> None:
    config = Configuration({"voltage": 5, "_data": {"bor_timeout": 3, "extra": 1}, "unused": 1})
    config.get_float("voltage")
    data = config.get_section("_data")
    data.get_int("bor_timeout")
    data.get_int("eor_timeout", 10)
    config.get_str("name", None)  # a None default is not a value
    assert config.effective() == {
        "voltage": 5,
        "_data": {"bor_timeout": 3, "eor_timeout": 10},
    }
    assert data.effective() == {"bor_timeout": 3, "eor_timeout": 10}
    assert config.unused_keys() == ["_data.extra", "unused"]
    assert data.unused_keys() == ["_data.extra"]


def test_effective_keeps_read_values_raw() -> None:
    config = Configuration({"mode": "fast", "n": 2})
    config.get_str("mode", choices=["FAST"])
    config.get_float("n")
    assert config.effective() == {"mode": "fast", "n": 2}


def test_reading_a_whole_section_uses_all_its_keys() -> None:
    config = Configuration({"sec": {"a": 1, "b": {"c": 2}}, "other": 1})
    assert config.get("sec") == {"a": 1, "b": {"c": 2}}
    assert config.unused_keys() == ["other"]
    assert config.effective() == {"sec": {"a": 1, "b": {"c": 2}}}


def test_failed_read_counts_as_read() -> None:
    config = Configuration({"n": "x"})
    with pytest.raises(ConfigError):
        config.get_int("n")
    assert config.unused_keys() == []


def test_empty_section_is_reported_unused() -> None:
    assert Configuration({"sec": {}}).unused_keys() == ["sec"]


# --- changing -------------------------------------------------------------------------------------
def test_update_merges_and_adds() -> None:
    config = Configuration({"sec": {"a": 1}, "b": 2})
    changed = config.update({"SEC": {"new": 3}, "b": 4})
    assert changed == ["sec.new", "b"]
    assert config.as_dict() == {"sec": {"a": 1, "new": 3}, "b": 4}


def test_apply_partial_changes_existing_keys() -> None:
    config = Configuration({"sec": {"a": 1, "b": 2}, "c": 3})
    assert config.get_int("sec.a") == 1
    assert config.apply_partial({"Sec.A": 10, "c": 30}) == ["sec.a", "c"]
    assert config.as_dict() == {"sec": {"a": 10, "b": 2}, "c": 30}
    assert config.effective() == {"sec": {"a": 10}}


def test_apply_partial_rejects_unknown_keys_atomically() -> None:
    config = Configuration({"sec": {"a": 1}, "c": 3})
    with config_error("sec.nope", "unknown key"):
        config.apply_partial({"c": 30, "sec": {"nope": 1}})
    assert config.as_dict() == {"sec": {"a": 1}, "c": 3}


def test_apply_partial_rejects_shape_changes() -> None:
    config = Configuration({"sec": {"a": 1}, "c": 3})
    with config_error("sec", "is a section, got int"):
        config.apply_partial({"sec": 1})
    with config_error("c", "is a value, got dict"):
        config.apply_partial({"c": {"x": 1}})


def test_effective_after_a_section_became_a_value() -> None:
    config = Configuration({"sec": {"a": 1}, "n": None})
    config.get_int("sec.a")
    config.get("n")
    assert config.effective() == {"sec": {"a": 1}, "n": None}
    config.update({"sec": 5})
    assert config.effective() == {"n": None}


def test_apply_partial_on_a_section() -> None:
    config = Configuration({"sec": {"a": 1}})
    section = config.get_section("sec")
    assert section.apply_partial({"a": 2}) == ["sec.a"]
    with config_error("sec.b", "unknown key"):
        section.apply_partial({"b": 2})
    assert config.as_dict() == {"sec": {"a": 2}}


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), st.integers(), max_size=8
    ),
    st.randoms(use_true_random=False),
)
def test_any_spelling_finds_the_key(mapping: dict[str, int], rnd: Any) -> None:
    def scramble(key: str) -> str:
        return "".join(ch.upper() if rnd.random() < 0.5 else ch for ch in key)

    config = Configuration({scramble(key): value for key, value in mapping.items()})
    assert config.as_dict() == mapping
    for key, value in mapping.items():
        assert config.get_int(scramble(key)) == value
    assert config.unused_keys() == []


# --- environment ----------------------------------------------------------------------------------
def test_resolve_env() -> None:
    environ = {"HOME": "/home/op", "EMPTY": ""}
    source = {
        "Path": "${HOME}/data",
        "sec": {"list": ["${UNSET:-fallback}", 3, "${EMPTY:-used}"], "n": 5},
        "controller": "$_{HOME}",
        "plain": "no $ {refs}",
    }
    resolved = resolve_env(source, environ)
    assert resolved == {
        "Path": "/home/op/data",
        "sec": {"list": ["fallback", 3, "used"], "n": 5},
        "controller": "$_{HOME}",
        "plain": "no $ {refs}",
    }
    assert source["Path"] == "${HOME}/data"


def test_resolve_env_unset_without_default_names_key() -> None:
    with config_error("sec.out", "'OUT_DIR'", "not set"):
        resolve_env({"Sec": {"Out": "${OUT_DIR}/x"}}, {})


def test_resolve_env_empty_without_default_is_empty() -> None:
    assert resolve_env({"a": "x${EMPTY}y"}, {"EMPTY": ""}) == {"a": "xy"}


def test_resolve_env_malformed_reference() -> None:
    with config_error("a", "malformed"):
        resolve_env({"a": "${HOME"}, {"HOME": "/h"})


# --- framework keys -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "section", "key"),
    [
        ("_role", "_autonomy", "role"),
        ("_ROLE", "_autonomy", "role"),
        ("_max_heartbeat_interval", "_autonomy", "max_heartbeat_interval"),
        ("_data_transmitters", "_data", "receive_from"),
        ("_eor_timeout", "_data", "eor_timeout"),
        ("_bor_timeout", "_data", "bor_timeout"),
        ("_data_timeout", "_data", "data_timeout"),
        ("_transition_timeout", "_conditions", "transition_timeout"),
        ("_require_initializing_after", "_conditions", "require_initializing_after"),
        ("_require_initialize_after", "_conditions", "require_initializing_after"),
        ("_require_launching_after", "_conditions", "require_launching_after"),
        ("_require_launch_after", "_conditions", "require_launching_after"),
        ("_require_landing_after", "_conditions", "require_landing_after"),
        ("_require_land_after", "_conditions", "require_landing_after"),
        ("_require_starting_after", "_conditions", "require_starting_after"),
        ("_require_start_after", "_conditions", "require_starting_after"),
        ("_require_stopping_after", "_conditions", "require_stopping_after"),
        ("_Require_Stop_After", "_conditions", "require_stopping_after"),
    ],
)
def test_normalize_flat_spellings(old: str, section: str, key: str) -> None:
    source = {old: "value", "user_key": 1, section: {"kept": True}}
    assert normalize_framework_keys(source) == {
        "user_key": 1,
        section: {"kept": True, key: "value"},
    }
    assert old in source


def test_normalize_command_spelling_inside_conditions() -> None:
    result = normalize_framework_keys({"_conditions": {"require_start_after": ["A.b"]}})
    assert result == {"_conditions": {"require_starting_after": ["A.b"]}}


def test_normalize_leaves_unknown_underscore_keys() -> None:
    source = {"_require_running_after": 1, "_other": 2, "_autonomy": {"role": "NONE"}}
    assert normalize_framework_keys(source) == source


def test_normalize_conflict_names_both_spellings() -> None:
    with config_error("_autonomy.role", "'_role'", "'_autonomy.role'"):
        normalize_framework_keys({"_role": "NONE", "_autonomy": {"role": "ESSENTIAL"}})
    with config_error(
        "_conditions.require_starting_after",
        "'_require_starting_after'",
        "'_require_start_after'",
    ):
        normalize_framework_keys(
            {"_require_start_after": ["A.b"], "_require_starting_after": ["A.c"]}
        )
    with config_error("_conditions.require_stopping_after", "'_require_stop_after'"):
        normalize_framework_keys(
            {"_require_stop_after": ["A.b"], "_conditions": {"require_stop_after": ["A.c"]}}
        )


def test_normalize_section_that_is_a_value() -> None:
    with config_error("_data", "expected a section"):
        normalize_framework_keys({"_data": 1, "_bor_timeout": 3})


# --- framework parameters -------------------------------------------------------------------------
def test_framework_defaults_are_recorded() -> None:
    config = Configuration({"user": 1})
    framework = FrameworkConfig.from_config(config)
    assert framework == FrameworkConfig()
    assert framework.role is Role.DYNAMIC
    assert framework.data == DataConfig()
    assert framework.data.license == "ODC-By-1.0"
    assert config.effective() == {
        "_autonomy": {"role": "DYNAMIC", "max_heartbeat_interval": 30.0},
        "_conditions": {"transition_timeout": 30.0},
        "_data": {
            "bor_timeout": 10.0,
            "data_timeout": 10.0,
            "eor_timeout": 10.0,
            "payload_threshold": 128,
            "queue_size": 32768,
            "disable_transmission": False,
            "license": "ODC-By-1.0",
        },
    }
    assert config.unused_keys() == ["user"]


def test_framework_values() -> None:
    source = {
        "_role": "essential",
        "_autonomy": {"max_heartbeat_interval": 5},
        "_require_start_after": ["Tx.one", "Tx.two"],
        "_conditions": {"require_stopping_after": ["Rx.w"], "transition_timeout": 7},
        "_data_transmitters": ["Tx.one"],
        "_data": {"payload_threshold": 0, "queue_size": 5, "disable_transmission": True},
        "_bor_timeout": 2,
    }
    config = Configuration(normalize_framework_keys(source))
    framework = FrameworkConfig.from_config(config, own_name="Rx.me")
    assert framework.role is Role.ESSENTIAL
    assert framework.max_heartbeat_interval == 5.0
    assert framework.conditions == {
        State.starting: ("Tx.one", "Tx.two"),
        State.stopping: ("Rx.w",),
    }
    assert framework.transition_timeout == 7.0
    assert framework.data.receive_from == ("Tx.one",)
    assert framework.data.bor_timeout == 2.0
    assert framework.data.payload_threshold == 0
    assert framework.data.queue_size == 5
    assert framework.data.disable_transmission is True
    assert config.unused_keys() == []


def test_framework_without_data_section_reading() -> None:
    config = Configuration({"_data": {"bor_timeout": "bad"}})
    framework = FrameworkConfig.from_config(config, data=False)
    assert framework.data == DataConfig()
    assert "_data" not in config.effective()
    assert config.unused_keys() == ["_data.bor_timeout"]


@pytest.mark.parametrize(
    ("source", "key", "fragment"),
    [
        ({"_autonomy": {"role": "boss"}}, "_autonomy.role", "expected one of"),
        ({"_autonomy": {"max_heartbeat_interval": 0}}, "_autonomy.max_heartbeat_interval", "> 0"),
        ({"_conditions": {"transition_timeout": -1}}, "_conditions.transition_timeout", "> 0"),
        (
            {"_conditions": {"require_starting_after": ["Tx"]}},
            "_conditions.require_starting_after",
            "element 0: expected a canonical name",
        ),
        (
            {"_conditions": {"require_landing_after": "Tx.a"}},
            "_conditions.require_landing_after",
            "expected list",
        ),
        ({"_data": {"bor_timeout": 0}}, "_data.bor_timeout", ">= 1"),
        ({"_data": {"eor_timeout": 0.5}}, "_data.eor_timeout", ">= 1"),
        ({"_data": {"queue_size": 0}}, "_data.queue_size", ">= 1"),
        ({"_data": {"payload_threshold": 1.5}}, "_data.payload_threshold", "expected int"),
        ({"_data": {"receive_from": ["a.b.c"]}}, "_data.receive_from", "canonical name"),
        ({"_data": {"license": 3}}, "_data.license", "expected str"),
    ],
)
def test_framework_errors_name_the_key(source: dict[str, Any], key: str, fragment: str) -> None:
    with config_error(key, fragment):
        FrameworkConfig.from_config(Configuration(source))


def test_framework_rejects_waiting_for_itself() -> None:
    config = Configuration({"_conditions": {"require_launching_after": ["sat.ME"]}})
    with config_error("_conditions.require_launching_after", "itself"):
        FrameworkConfig.from_config(config, own_name="Sat.me")
