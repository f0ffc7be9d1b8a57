"""Core layer: satellite configuration (docs/protocols.md#configuration-payload).

:class:`Configuration` wraps the nested map received with ``initialize``. Keys are
case-insensitive (stored lower-cased) and addressed by dotted paths such as
``"_data.bor_timeout"``. Typed getters check type and range and raise
:class:`~constellation.errors.ConfigError` naming the full key path. Every key read and every
default used is recorded: :meth:`Configuration.effective` is what ``get_config`` and the BOR
show, :meth:`Configuration.unused_keys` what the satellite warns about.

:func:`resolve_env` and :func:`normalize_framework_keys` prepare a received map;
:class:`FrameworkConfig` reads the framework parameters (the ``_autonomy``, ``_conditions`` and
``_data`` sections). Pure: no I/O; the environment is passed in.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final, TypeVar

from constellation.core.roles import Role
from constellation.core.states import State
from constellation.errors import ConfigError

__all__ = [
    "CONDITION_TRANSITIONS",
    "MISSING",
    "Configuration",
    "DataConfig",
    "FrameworkConfig",
    "normalize_framework_keys",
    "resolve_env",
]


class _Missing(Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Default of the getters: the key is required."""

_D = TypeVar("_D")
_KeyPath = tuple[str, ...]
_Converter = Callable[[str, Any], Any]


# --- key paths and canonical maps -----------------------------------------------------------------
def _join(path: _KeyPath) -> str:
    return ".".join(path)


def _split_key(key: object, parent: _KeyPath) -> _KeyPath:
    """Lower-cased parts of a (possibly dotted) key; ConfigError for non-str or empty parts."""
    if not isinstance(key, str):
        raise ConfigError(_join(parent) or "<root>", f"keys must be str, got {_type_name(key)}")
    parts = tuple(key.lower().split("."))
    if not all(parts):
        raise ConfigError(_join((*parent, key.lower())), "empty key or empty part of a dotted key")
    return parts


def _canonical(mapping: Mapping[Any, Any], path: _KeyPath) -> dict[str, Any]:
    """Deep copy with lower-cased keys and dotted keys expanded into sections."""
    result: dict[str, Any] = {}
    for key, value in mapping.items():
        parts = _split_key(key, path)
        full = (*path, *parts)
        nested = _canonical(value, full) if isinstance(value, Mapping) else _copy_value(value)
        _insert_new(result, parts, nested, path)
    return result


def _copy_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [copy.deepcopy(item) for item in value]
    return copy.deepcopy(value)


def _insert_new(target: dict[str, Any], parts: _KeyPath, value: Any, path: _KeyPath) -> None:
    """Insert ``value`` at ``parts``; sections merge, any other repetition is a duplicate."""
    head, rest = parts[0], parts[1:]
    here = (*path, head)
    if rest:
        section = target.setdefault(head, {})
        if not isinstance(section, dict):
            raise ConfigError(_join(here), "key given both as a value and as a section")
        _insert_new(section, rest, value, here)
    elif head not in target:
        target[head] = value
    elif isinstance(target[head], dict) and isinstance(value, dict):
        for key, item in value.items():
            _insert_new(target[head], (key,), item, here)
    else:
        raise ConfigError(_join(here), "duplicate key (keys are case-insensitive)")


def _merge(target: dict[str, Any], update: Mapping[str, Any], path: _KeyPath) -> list[str]:
    """Merge ``update`` into ``target`` section by section; return the changed leaf paths."""
    changed: list[str] = []
    for key, value in update.items():
        here = (*path, key)
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            changed += _merge(target[key], value, here)
        else:
            target[key] = value
            changed.append(_join(here))
    return changed


def _check_known(target: Mapping[str, Any], update: Mapping[str, Any], path: _KeyPath) -> None:
    """ConfigError for the first key of ``update`` that ``target`` does not hold alike."""
    for key, value in update.items():
        here = (*path, key)
        if key not in target:
            raise ConfigError(_join(here), "unknown key: only existing keys can be changed")
        current = target[key]
        if isinstance(value, dict) != isinstance(current, dict):
            kind = "a section" if isinstance(current, dict) else "a value"
            raise ConfigError(_join(here), f"is {kind}, got {_type_name(value)}")
        if isinstance(value, dict):
            _check_known(current, value, here)


def _leaves(section: Mapping[str, Any], path: _KeyPath) -> list[_KeyPath]:
    """Paths of every value and every empty section under ``section``."""
    result: list[_KeyPath] = []
    for key, value in section.items():
        here = (*path, key)
        result += _leaves(value, here) if isinstance(value, dict) and value else [here]
    return result


def _put(target: dict[str, Any], parts: _KeyPath, value: Any) -> None:
    """Set ``value`` at ``parts`` in a nested dict, merging sections."""
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    last = parts[-1]
    if isinstance(value, dict) and isinstance(target.get(last), dict):
        _merge(target[last], copy.deepcopy(value), ())
    else:
        target[last] = copy.deepcopy(value)


# --- value checks ---------------------------------------------------------------------------------
def _type_name(value: object) -> str:
    if isinstance(value, tuple):
        return "list"
    return "None" if value is None else type(value).__name__


def _wrong_type(path: str, expected: str, value: object) -> ConfigError:
    shown = "" if isinstance(value, dict | list | tuple) else f" ({value!r})"
    return ConfigError(path, f"expected {expected}, got {_type_name(value)}{shown}")


def _as_int(path: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _wrong_type(path, "int", value)


def _as_float(path: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _wrong_type(path, "float", value)


def _as_bool(path: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _wrong_type(path, "bool", value)


def _as_str(path: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _wrong_type(path, "str", value)


_ELEMENT_CONVERTERS: dict[type[Any], _Converter] = {
    bool: _as_bool,
    int: _as_int,
    float: _as_float,
    str: _as_str,
}


def _check_range(path: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise ConfigError(path, f"expected a value >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(path, f"expected a value <= {high}, got {value!r}")


def _as_list(path: str, value: Any, element_type: type[Any] | None) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _wrong_type(path, "list", value)
    if element_type is None:
        return copy.deepcopy(list(value))
    convert = _ELEMENT_CONVERTERS[element_type]
    result = []
    for index, item in enumerate(value):
        try:
            result.append(convert(path, item))
        except ConfigError as exc:
            raise ConfigError(path, f"element {index}: {exc.reason}") from None
    return result


def _pick_choice(path: str, value: str, choices: Iterable[str]) -> str:
    options = list(choices)
    for option in options:
        if option.lower() == value.lower():
            return option
    listed = ", ".join(repr(option) for option in options)
    raise ConfigError(path, f"expected one of {listed}, got {value!r}")


# --- the configuration object ---------------------------------------------------------------------
class _Store:
    """Data and read record shared by a configuration and its sections."""

    def __init__(self, data: dict[str, Any], base: _KeyPath) -> None:
        self.data = data
        self.base = base  # display prefix of the root
        # path read -> default used (MISSING if the key was present when read)
        self.reads: dict[_KeyPath, Any] = {}


class Configuration:
    """Case-insensitive nested configuration with typed, recorded reads.

    ``prefix`` is prepended to every key path in errors and reports (for a configuration that
    is itself a section of a larger one).
    """

    def __init__(self, mapping: Mapping[str, Any] | None = None, prefix: str = "") -> None:
        base = _split_key(prefix, ()) if prefix else ()
        self._store = _Store(_canonical(mapping or {}, base), base)
        self._path: _KeyPath = ()

    def __repr__(self) -> str:
        where = f" {self.prefix!r}" if self.prefix else ""
        return f"<Configuration{where} {self.as_dict()!r}>"

    @property
    def prefix(self) -> str:
        """Full dotted path of this section ("" for the root)."""
        return _join(self._store.base + self._path)

    def key_path(self, key: str) -> str:
        """Full dotted path of ``key`` in this section, as errors name it."""
        return self._display(self._parts(key))

    # -- reading -----------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        """Whether ``key`` is present (not recorded as a read)."""
        try:
            return self._find(self._parts(key)) is not MISSING
        except ConfigError:
            return False

    def keys(self) -> list[str]:
        """Keys of this section."""
        section = self._find(())
        return list(section) if isinstance(section, dict) else []

    def get(self, key: str, default: Any = MISSING) -> Any:
        """The raw value of ``key`` (a copy for lists and sections)."""
        return copy.deepcopy(self._read(key, default, "a value", lambda _, value: value))

    def get_int(
        self,
        key: str,
        default: int | _D | _Missing = MISSING,
        *,
        min: int | None = None,
        max: int | None = None,
    ) -> int | _D:
        """An int (bool rejected; a float only if integral), optionally range-checked."""

        def convert(path: str, value: Any) -> int:
            number = _as_int(path, value)
            _check_range(path, number, min, max)
            return number

        result: int | _D = self._read(key, default, "int", convert)
        return result

    def get_float(
        self,
        key: str,
        default: float | _D | _Missing = MISSING,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> float | _D:
        """A float (an int is accepted and converted), optionally range-checked."""

        def convert(path: str, value: Any) -> float:
            number = _as_float(path, value)
            _check_range(path, number, min, max)
            return number

        result: float | _D = self._read(key, default, "float", convert)
        return result

    def get_bool(self, key: str, default: bool | _D | _Missing = MISSING) -> bool | _D:
        """A bool (no conversion from numbers or strings)."""
        result: bool | _D = self._read(key, default, "bool", _as_bool)
        return result

    def get_str(
        self,
        key: str,
        default: str | _D | _Missing = MISSING,
        *,
        choices: Iterable[str] | None = None,
    ) -> str | _D:
        """A str; with ``choices``, matched case-insensitively and returned as spelled there."""

        def convert(path: str, value: Any) -> str:
            text = _as_str(path, value)
            return text if choices is None else _pick_choice(path, text, choices)

        result: str | _D = self._read(key, default, "str", convert)
        return result

    def get_list(
        self,
        key: str,
        default: list[Any] | _D | _Missing = MISSING,
        *,
        element_type: type[Any] | None = None,
    ) -> list[Any] | _D:
        """A list; with ``element_type`` (bool, int, float or str) every element is checked."""
        if element_type is not None and element_type not in _ELEMENT_CONVERTERS:
            raise ValueError(f"unsupported element_type {element_type!r}")

        def convert(path: str, value: Any) -> list[Any]:
            return _as_list(path, value, element_type)

        result: list[Any] | _D = self._read(key, default, "list", convert)
        return result

    def get_path(self, key: str, default: Path | _D | _Missing = MISSING) -> Path | _D:
        """A filesystem path given as str (not checked for existence)."""

        def convert(path: str, value: Any) -> Path:
            if not isinstance(value, str):
                raise _wrong_type(path, "path (str)", value)
            return Path(value)

        result: Path | _D = self._read(key, default, "path (str)", convert)
        return result

    def get_section(self, key: str) -> Configuration:
        """The section ``key``; empty if absent. Errors and records use the full path."""
        parts = self._parts(key)
        value = self._find(parts)
        if value is not MISSING and not isinstance(value, dict):
            raise _wrong_type(self._display(parts), "a section (map)", value)
        child = object.__new__(Configuration)
        child._store = self._store
        child._path = self._path + parts
        return child

    # -- reports -----------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """A copy of every key of this section, read or not."""
        section = self._find(())
        return copy.deepcopy(section) if isinstance(section, dict) else {}

    def effective(self) -> dict[str, Any]:
        """Nested dict of the keys read (current values) and of the defaults used."""
        result: dict[str, Any] = {}
        depth = len(self._path)
        for path, default in self._store.reads.items():
            if path[:depth] != self._path or len(path) == depth:
                continue
            value = self._current(path)
            if value is MISSING:
                if default is MISSING or default is None:
                    continue
                value = default
            _put(result, path[depth:], value)
        return result

    def unused_keys(self) -> list[str]:
        """Full dotted paths of the keys present in this section but never read."""
        read = {path for path, default in self._store.reads.items() if default is MISSING}
        return [
            self._display(leaf[len(self._path) :])
            for leaf in _leaves(self.as_dict(), self._path)
            if not any(leaf[:end] in read for end in range(1, len(leaf) + 1))
        ]

    # -- changing ----------------------------------------------------------------------------------
    def update(self, partial: Mapping[str, Any]) -> list[str]:
        """Merge ``partial`` into this section (new keys allowed); return the changed paths."""
        update = _canonical(partial, self._store.base + self._path)
        return _merge(self._section_for_update(), update, self._store.base + self._path)

    def apply_partial(self, partial: Mapping[str, Any]) -> list[str]:
        """Like :meth:`update` for ``reconfigure``: every key must already exist.

        Nothing is changed if any key is unknown (ConfigError naming it).
        """
        update = _canonical(partial, self._store.base + self._path)
        section = self._find(())
        _check_known(section if isinstance(section, dict) else {}, update, self._full(()))
        return _merge(self._section_for_update(), update, self._full(()))

    # -- internals ---------------------------------------------------------------------------------
    def _parts(self, key: str) -> _KeyPath:
        return _split_key(key, self._full(()))

    def _full(self, parts: _KeyPath) -> _KeyPath:
        return self._store.base + self._path + parts

    def _display(self, parts: _KeyPath) -> str:
        return _join(self._full(parts))

    def _find(self, parts: _KeyPath) -> Any:
        return self._find_absolute(self._path + parts)

    def _find_absolute(self, path: _KeyPath) -> Any:
        """Value at ``path`` (relative to the store root) or MISSING."""
        node: Any = self._store.data
        for index, part in enumerate(path):
            if not isinstance(node, dict):
                shown = _join(self._store.base + path[:index])
                raise _wrong_type(shown, "a section (map)", node)
            node = node.get(part, MISSING)
            if node is MISSING:
                return MISSING
        return node

    def _current(self, path: _KeyPath) -> Any:
        """Value at ``path`` or MISSING, also if a section on the way became a value."""
        try:
            return self._find_absolute(path)
        except ConfigError:
            return MISSING

    def _read(self, key: str, default: Any, expected: str, convert: _Converter) -> Any:
        """Converted value of ``key``, or ``default`` (recorded) if absent."""
        parts = self._parts(key)
        value = self._find(parts)
        path = self._path + parts
        if value is MISSING:
            if isinstance(default, _Missing):
                raise ConfigError(self._display(parts), f"required key is missing ({expected})")
            self._store.reads.setdefault(path, default)
            return default
        self._store.reads[path] = MISSING
        return convert(self._display(parts), value)

    def _section_for_update(self) -> dict[str, Any]:
        node = self._store.data
        for part in self._path:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _wrong_type(_join(self._store.base + self._path), "a section (map)", child)
            node = child
        return node


# --- preparing a received map ---------------------------------------------------------------------
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve_env(mapping: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Copy of ``mapping`` with ``${VAR}`` / ``${VAR:-default}`` resolved in every string.

    As in the shell, the default applies when VAR is unset or empty. ``$_{VAR}`` (resolved by
    the controller) is left alone. An unset VAR without default is a ConfigError naming the key.
    """
    return {
        key: _resolve_value(value, (str(key).lower(),), environ) for key, value in mapping.items()
    }


def _resolve_value(value: Any, path: _KeyPath, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _resolve_text(value, _join(path), environ)
    if isinstance(value, Mapping):
        return {
            key: _resolve_value(item, (*path, str(key).lower()), environ)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_resolve_value(item, path, environ) for item in value]
    return value


def _resolve_text(text: str, path: str, environ: Mapping[str, str]) -> str:
    if text.count("${") != len(_ENV_REFERENCE.findall(text)):
        raise ConfigError(path, f"malformed environment reference in {text!r}")

    def substitute(match: re.Match[str]) -> str:
        name, fallback = match.group(1), match.group(2)
        found = environ.get(name)
        if found:
            return found
        if fallback is not None:
            return fallback
        if found is not None:
            return found
        raise ConfigError(path, f"environment variable {name!r} is not set and has no default")

    return _ENV_REFERENCE.sub(substitute, text)


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
