"""Core layer: satellite configuration (docs/protocols.md#configuration-payload).

:class:`Configuration` wraps the nested map received with ``initialize``. Keys are
case-insensitive (stored lower-cased) and addressed by dotted paths such as
``"_data.bor_timeout"``. Typed getters check type and range and raise
:class:`~constellation.errors.ConfigError` naming the full key path. Every key read and every
default used is recorded: :meth:`Configuration.effective` is what ``get_config`` and the BOR
show, :meth:`Configuration.unused_keys` what the satellite warns about.

:func:`resolve_env` (``config_env``) and :func:`normalize_framework_keys` prepare a received map;
:class:`FrameworkConfig` (``framework_config``) reads the framework parameters (the
``_autonomy``, ``_conditions`` and ``_data`` sections). Both are re-exported here. The key-path
and value-check helpers are in ``config_values``. Pure: no I/O; the environment is passed in.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from constellation.core.config_env import resolve_env
from constellation.core.config_values import (
    _ELEMENT_CONVERTERS,
    MISSING,
    _as_bool,
    _as_float,
    _as_int,
    _as_list,
    _as_str,
    _canonical,
    _check_known,
    _check_range,
    _Converter,
    _join,
    _KeyPath,
    _leaves,
    _merge,
    _Missing,
    _pick_choice,
    _put,
    _split_key,
    _wrong_type,
)
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

_D = TypeVar("_D")


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


# The framework parameters live in their own module; re-exported here, where callers import them.
from constellation.core.framework_config import (  # noqa: E402
    CONDITION_TRANSITIONS,
    DataConfig,
    FrameworkConfig,
    normalize_framework_keys,
)
