"""Core layer: framework parameters of a configuration (docs/protocols.md#configuration-payload).

:func:`normalize_framework_keys` moves the old flat spellings (``_role``, ``_bor_timeout``,
``_require_start_after`` ...) into their sections; :class:`FrameworkConfig` and
:class:`DataConfig` read the ``_autonomy``, ``_conditions`` and ``_data`` sections. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from constellation.core.config_values import _canonical, _join, _KeyPath, _wrong_type
from constellation.core.roles import Role
from constellation.core.states import State
from constellation.errors import ConfigError

if TYPE_CHECKING:
    from constellation.core.config import Configuration

__all__ = ["CONDITION_TRANSITIONS", "DataConfig", "FrameworkConfig", "normalize_framework_keys"]


_FLAT_ALIASES: dict[str, _KeyPath] = {
    "_role": ("_autonomy", "role"),
    "_max_heartbeat_interval": ("_autonomy", "max_heartbeat_interval"),
    "_data_transmitters": ("_data", "receive_from"),
    "_bor_timeout": ("_data", "bor_timeout"),
    "_data_timeout": ("_data", "data_timeout"),
    "_eor_timeout": ("_data", "eor_timeout"),
    "_transition_timeout": ("_conditions", "transition_timeout"),
}

CONDITION_TRANSITIONS: Final = (
    State.initializing,
    State.launching,
    State.landing,
    State.starting,
    State.stopping,
)
"""The transitional states that can wait for other satellites (``require_<name>_after``)."""

# spelling in a require_<x>_after key (state or command name) -> transitional state name
_TRANSITION_SPELLINGS: dict[str, str] = {
    **{state.name: state.name for state in CONDITION_TRANSITIONS},
    "initialize": "initializing",
    "launch": "launching",
    "land": "landing",
    "start": "starting",
    "stop": "stopping",
}
_REQUIRE_KEY = re.compile(r"^require_(\w+?)_after$")


def normalize_framework_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical copy of ``mapping`` with old flat framework keys moved into their sections.

    ``_role`` → ``_autonomy.role``, ``_data_transmitters`` → ``_data.receive_from``,
    ``_require_start_after`` / ``_require_starting_after`` →
    ``_conditions.require_starting_after`` and so on. Keys are lower-cased; a key given in both
    spellings is a ConfigError.
    """
    data = _canonical(mapping, ())
    origins: dict[_KeyPath, str] = {}  # moved key -> the spelling it came from
    for key in list(data):
        target = _FLAT_ALIASES.get(key) or _flat_condition_target(key)
        if target is not None:
            _move(data, (key,), target, origins)
    conditions = data.get("_conditions")
    if isinstance(conditions, dict):
        for key in list(conditions):
            canonical = _condition_key(key)
            if canonical is not None and canonical != key:
                _move(data, ("_conditions", key), ("_conditions", canonical), origins)
    return data


def _condition_key(key: str) -> str | None:
    """``require_<state>_after`` for a ``require_<state or command>_after`` key, else None."""
    match = _REQUIRE_KEY.match(key)
    state = _TRANSITION_SPELLINGS.get(match.group(1)) if match else None
    return f"require_{state}_after" if state else None


def _flat_condition_target(key: str) -> _KeyPath | None:
    canonical = _condition_key(key[1:]) if key.startswith("_") else None
    return ("_conditions", canonical) if canonical else None


def _move(
    data: dict[str, Any], source: _KeyPath, target: _KeyPath, origins: dict[_KeyPath, str]
) -> None:
    """Move the value at ``source`` to ``target`` (section, key); ConfigError if taken."""
    parent = data
    for part in source[:-1]:
        parent = parent[part]
    value = parent.pop(source[-1])
    section = data.setdefault(target[0], {})
    if not isinstance(section, dict):
        raise _wrong_type(target[0], "a section (map)", section)
    if target[1] in section:
        other = origins.get(target, _join(target))
        raise ConfigError(_join(target), f"given twice, as '{_join(source)}' and as '{other}'")
    section[target[1]] = value
    origins[target] = _join(source)


# --- framework parameters -------------------------------------------------------------------------
_CANONICAL_NAME = re.compile(r"^\w+\.\w+$")


def _canonical_names(config: Configuration, key: str) -> tuple[str, ...] | None:
    names = config.get_list(key, None, element_type=str)
    if names is None:
        return None
    for index, name in enumerate(names):
        if not _CANONICAL_NAME.match(name):
            raise ConfigError(
                config.key_path(key),
                f"element {index}: expected a canonical name 'Type.Name', got {name!r}",
            )
    return tuple(names)


def _positive(config: Configuration, key: str, default: float) -> float:
    value = config.get_float(key, default)
    if not value > 0:
        raise ConfigError(config.key_path(key), f"expected a value > 0, got {value!r}")
    return value


@dataclass(frozen=True)
class DataConfig:
    """The ``_data`` section: data transmission and reception options."""

    bor_timeout: float = 10.0
    data_timeout: float = 10.0
    eor_timeout: float = 10.0
    payload_threshold: int = 128
    """KiB of block data that make a DATA message."""
    queue_size: int = 32768
    receive_from: tuple[str, ...] | None = None
    """Canonical names to receive from; None means every transmitter of the group."""
    disable_transmission: bool = False
    license: str = "ODC-By-1.0"

    @classmethod
    def from_config(cls, config: Configuration) -> DataConfig:
        """Read (and so mark used) the ``_data`` section of ``config``."""
        data = config.get_section("_data")
        return cls(
            bor_timeout=data.get_float("bor_timeout", cls.bor_timeout, min=1),
            data_timeout=data.get_float("data_timeout", cls.data_timeout, min=1),
            eor_timeout=data.get_float("eor_timeout", cls.eor_timeout, min=1),
            payload_threshold=data.get_int("payload_threshold", cls.payload_threshold, min=0),
            queue_size=data.get_int("queue_size", cls.queue_size, min=1),
            receive_from=_canonical_names(data, "receive_from"),
            disable_transmission=data.get_bool("disable_transmission", cls.disable_transmission),
            license=data.get_str("license", cls.license),
        )


@dataclass(frozen=True)
class FrameworkConfig:
    """The framework parameters of a configuration (docs/protocols.md#configuration-payload)."""

    role: Role = Role.DYNAMIC
    max_heartbeat_interval: float = 30.0
    """Seconds."""
    conditions: Mapping[State, tuple[str, ...]] = field(default_factory=dict)
    """Transitional state → canonical names that must reach its target state first."""
    transition_timeout: float = 30.0
    data: DataConfig = field(default_factory=DataConfig)

    @classmethod
    def from_config(
        cls, config: Configuration, *, own_name: str | None = None, data: bool = True
    ) -> FrameworkConfig:
        """Read the framework sections of ``config`` (``config`` should be normalized).

        ``own_name`` rejects a condition on the satellite itself. With ``data=False`` the
        ``_data`` section is not read (nor reported as defaults) and ``data`` holds defaults.
        """
        autonomy = config.get_section("_autonomy")
        roles = [role.value for role in Role]
        conditions_section = config.get_section("_conditions")
        return cls(
            role=Role(autonomy.get_str("role", Role.DYNAMIC.value, choices=roles)),
            max_heartbeat_interval=_positive(autonomy, "max_heartbeat_interval", 30.0),
            conditions=_read_conditions(conditions_section, own_name),
            transition_timeout=_positive(conditions_section, "transition_timeout", 30.0),
            data=DataConfig.from_config(config) if data else DataConfig(),
        )


def _read_conditions(section: Configuration, own_name: str | None) -> dict[State, tuple[str, ...]]:
    conditions: dict[State, tuple[str, ...]] = {}
    for state in CONDITION_TRANSITIONS:
        key = f"require_{state.name}_after"
        names = _canonical_names(section, key)
        if names is None:
            continue
        if own_name is not None and own_name.lower() in (name.lower() for name in names):
            raise ConfigError(section.key_path(key), "a satellite cannot wait for itself")
        conditions[state] = names
    return conditions
