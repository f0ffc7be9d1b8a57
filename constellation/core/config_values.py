"""Core layer: the pieces :class:`~constellation.core.config.Configuration` is built from.

Key paths (case-insensitive, dotted keys expanded into sections), merging of partial updates and
the typed value checks that raise :class:`~constellation.errors.ConfigError` naming the key.
Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, Final

from constellation.errors import ConfigError

__all__ = ["MISSING"]


class _Missing(Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Default of the getters: the key is required."""

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
