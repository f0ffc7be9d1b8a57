"""Controller layer: configuration files (TOML or YAML) and their routing to satellites.

Level 1 is the satellite type, level 2 the satellite name, then its parameters. ``_default`` at
level 1 applies to every satellite, ``<Type>._default`` to every satellite of that type; the
satellite's own values win over the type default, which wins over the global default, merged
key by key. Types, names and keys are case-insensitive; dotted keys (``"_data.bor_timeout"``)
and the old flat framework spellings (``_role``) are the same keys as their sectioned forms.
``$_{VAR}`` is resolved here, when the file is read; ``${VAR}`` is left for the satellite.

Reading files is :mod:`controller.config_files` (re-exported here). Every problem found while
reading, checking or merging a file raises :class:`ConfigFileError`,
whose message reads ``<file>:<line>:<column>: key '<path>': <reason>`` (line and column where
they are known).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from constellation.core.config import normalize_framework_keys
from constellation.errors import ConfigError
from constellation.protocol.common import validate_name
from controller.config_files import ConfigFileError, _parse_file, _Positions, read_file

__all__ = [
    "DEFAULT",
    "ConfigFileError",
    "ControllerConfig",
    "config_warnings",
    "load_config",
    "merge_sections",
    "read_file",
]

DEFAULT = "_default"
_CONTROLLER_VAR = re.compile(r"\$_\{(\w+)(?::-([^}]*))?\}")


# --- checking and merging --------------------------------------------------------------------
def _resolve_controller_vars(value: Any, path: str, environ: Mapping[str, str], err: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _resolve_controller_vars(v, f"{path}.{k}", environ, err) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_controller_vars(v, path, environ, err) for v in value]
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date | dt.time):
        raise err(path, f"{type(value).__name__} values cannot be sent; use a string")
    if not isinstance(value, str):
        return value
    if value.count("$_{") != len(_CONTROLLER_VAR.findall(value)):
        raise err(path, f"malformed controller variable reference in {value!r}")

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:
            return found
        raise err(
            path, f"environment variable '{name}' ($_{{{name}}}) is not set on the controller"
        )

    return _CONTROLLER_VAR.sub(replace, value)


def merge_sections(*sections: Mapping[str, Any], names: Iterable[str] = ()) -> dict[str, Any]:
    """Merge canonical (lower-cased, nested) sections key by key; later sections win.

    A key that is a section in one and a value in another is a :class:`ConfigError`;
    ``names`` labels the sections in that message.
    """
    labels = list(names)
    result: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for index, section in enumerate(sections):
        label = labels[index] if index < len(labels) else f"section {index + 1}"
        _merge_into(result, section, (), label, origin)
    return result


def _merge_into(
    target: dict[str, Any],
    update: Mapping[str, Any],
    path: tuple[str, ...],
    label: str,
    origin: dict[str, str],
) -> None:
    for key, value in update.items():
        key = key.lower()
        here = (*path, key)
        dotted = ".".join(here)
        current = target.get(key)
        if key in target and isinstance(current, dict) != isinstance(value, Mapping):
            kinds = (
                ("a section", "a value") if isinstance(current, dict) else ("a value", "a section")
            )
            raise ConfigError(
                dotted,
                f"is {kinds[0]} in {origin.get(dotted, 'an earlier section')} "
                f"but {kinds[1]} in {label}",
            )
        origin[dotted] = label
        if isinstance(value, Mapping):
            section = target.setdefault(key, {})
            _merge_into(section, value, here, label, origin)
        else:
            target[key] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


@dataclass
class _Section:
    """One parameter table of the file: where it is and its canonical content."""

    label: str  # as written, e.g. "Example._default"
    params: dict[str, Any]


@dataclass
class ControllerConfig:
    """A loaded configuration.

    ``data`` is ``{"_default": {...}, type: {"_default": {...}, name: {...}}}`` with lower-cased,
    canonical keys; ``names`` maps lower-cased canonical names (and types) to their spelling in
    the file.
    """

    data: dict[str, Any]
    source: str = "<mapping>"
    path: Path | None = None
    names: dict[str, str] = field(default_factory=dict)

    def for_satellite(self, canonical_name: str) -> dict[str, Any]:
        """The merged section one satellite receives in ``initialize``."""
        type_name, _, name = canonical_name.lower().partition(".")
        type_section = self.data.get(type_name, {})
        shown = self.display_name(type_name)
        return merge_sections(
            self.data.get(DEFAULT, {}),
            type_section.get(DEFAULT, {}),
            type_section.get(name, {}),
            names=[
                f"[{DEFAULT}]",
                f"[{shown}.{DEFAULT}]",
                f"[{self.display_name(canonical_name)}]",
            ],
        )

    def __getitem__(self, canonical_name: str) -> dict[str, Any]:
        return self.for_satellite(canonical_name)

    def satellites(self) -> list[str]:
        """Canonical names (lower case) that have their own section in the file."""
        return [
            f"{type_name}.{name}"
            for type_name, section in self.data.items()
            if type_name != DEFAULT
            for name in section
            if name != DEFAULT
        ]

    def has_section(self, canonical_name: str) -> bool:
        """Whether the satellite has its own ``[Type.Name]`` section."""
        return canonical_name.lower() in self.satellites()

    def has_type(self, type_name: str) -> bool:
        """Whether the file has any section for satellites of ``type_name``."""
        return type_name.lower() in self.data and type_name.lower() != DEFAULT

    def types(self) -> list[str]:
        """Satellite types (lower case) named in the file."""
        return [t for t in self.data if t != DEFAULT]

    def display_name(self, name: str) -> str:
        """``name`` spelled as in the file (``Type.Name`` or ``Type``)."""
        return self.names.get(name.lower(), name)

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> ControllerConfig:
        """A copy where ``overrides[canonical_name]`` is merged into that satellite's section."""
        data = _copy(self.data)
        for canonical_name, params in overrides.items():
            type_name, _, name = canonical_name.lower().partition(".")
            section = data.setdefault(type_name, {}).setdefault(name, {})
            data[type_name][name] = merge_sections(
                section,
                normalize_framework_keys(params),
                names=[f"{canonical_name} in {self.source}", "the overrides"],
            )
        return ControllerConfig(data, self.source, self.path, dict(self.names))

    def __repr__(self) -> str:
        return (
            f"<ControllerConfig {self.source}: {len(self.types())} types, "
            f"{len(self.satellites())} satellites>"
        )


def _check_structure(
    raw: Mapping[str, Any], source: str, positions: _Positions
) -> tuple[list[_Section], dict[str, str]]:
    """The parameter tables of a parsed file, each checked; raises ConfigFileError."""

    def error(key: str, message: str, last: bool = False) -> ConfigFileError:
        return ConfigFileError(source, key, message, positions.line(key, last))

    sections: list[_Section] = []
    names: dict[str, str] = {}
    seen: dict[str, str] = {}

    def claim(label: str) -> None:
        if label.lower() in seen:
            raise error(
                label,
                f"given twice ('{seen[label.lower()]}' and '{label}'; names are case-insensitive)",
                last=True,
            )
        seen[label.lower()] = label

    for type_name, type_section in raw.items():
        if not isinstance(type_name, str):
            raise error(str(type_name), "keys must be strings")
        if not isinstance(type_section, Mapping):
            raise error(
                type_name,
                "expected a table: a satellite type (with [Type.Name] sections) or [_default]",
            )
        if type_name.lower() == DEFAULT:
            claim(type_name)
            sections.append(_Section(type_name, dict(type_section)))
            continue
        _check_name(type_name, "satellite type", error)
        names.setdefault(type_name.lower(), type_name)  # a type may be spelled twice: it merges
        for name, params in type_section.items():
            label = f"{type_name}.{name}"
            if not isinstance(params, Mapping):
                raise error(
                    label,
                    f"expected a table of parameters for satellite '{label}'; parameters for "
                    f"every {type_name} go under [{type_name}._default]",
                )
            claim(label)
            if str(name).lower() != DEFAULT:
                _check_name(str(name), "satellite name", error, label)
                names[label.lower()] = label
            sections.append(_Section(label, dict(params)))
    return sections, names


def _check_name(name: str, what: str, error: Any, label: str | None = None) -> None:
    try:
        validate_name(name)
    except ValueError:
        raise error(label or name, f"{what} '{name}' must match ^\\w+$") from None


def _canonical_section(
    section: _Section, source: str, positions: _Positions, environ: Mapping[str, str]
) -> dict[str, Any]:
    def error(key: str, message: str) -> ConfigFileError:
        return ConfigFileError(source, key, message, positions.line(key))

    resolved = _resolve_controller_vars(section.params, section.label, environ, error)
    try:
        return normalize_framework_keys(resolved)
    except ConfigError as exc:
        key = f"{section.label}.{exc.key}"
        raise ConfigFileError(source, key, exc.reason, positions.line(key, last=True)) from None


def _check_merges(config: ControllerConfig, positions: _Positions) -> None:
    """Merge every type default and satellite section once, so conflicts surface at load."""
    names = [f"{t}.{DEFAULT}" for t in config.types()] + config.satellites()
    for name in names:
        try:
            config.for_satellite(name)
        except ConfigError as exc:
            type_name, _, sat = name.partition(".")
            key = f"{config.display_name(name) if sat != DEFAULT else type_name}.{exc.key}"
            line = positions.line(f"{name}.{exc.key}") or positions.line(f"{DEFAULT}.{exc.key}")
            raise ConfigFileError(config.source, key, exc.reason, line) from None


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | ControllerConfig,
    environ: Mapping[str, str] | None = None,
) -> ControllerConfig:
    """Load a TOML/YAML file, or wrap a mapping, resolving ``$_{VAR}`` from ``environ``.

    Raises :class:`ConfigFileError` naming the file, the key and (where known) the line.
    """
    if isinstance(source, ControllerConfig):
        return source
    environ = os.environ if environ is None else environ
    positions = _Positions()
    if isinstance(source, Mapping):
        label, path, raw = "<mapping>", None, dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigFileError(str(path), "", "configuration file not found")
        label = str(path)
        raw, positions = _parse_file(path)
    sections, names = _check_structure(raw, label, positions)
    data: dict[str, Any] = {}
    for section in sections:
        params = _canonical_section(section, label, positions, environ)
        parts = section.label.lower().split(".")
        if len(parts) == 1:
            data[DEFAULT] = params
        else:
            data.setdefault(parts[0], {})[parts[1]] = params
    for type_name in names:
        if "." not in type_name:
            data.setdefault(type_name, {})
    config = ControllerConfig(data, label, path, names)
    _check_merges(config, positions)
    return config


def config_warnings(config: ControllerConfig, present: Iterable[str]) -> list[str]:
    """Warnings about a configuration against the satellites present in the group.

    Satellites with a section that are not present, and present satellites for which the file
    has neither a ``[Type.Name]`` nor a ``[Type._default]`` section.
    """
    present = list(present)
    lowered = {p.lower() for p in present}
    warnings = [
        f"{config.display_name(name)} is configured in {config.source} but not present"
        for name in config.satellites()
        if name not in lowered
    ]
    for name in sorted(present):
        type_name = name.partition(".")[0]
        if not config.has_section(name) and not config.has_type(type_name):
            warnings.append(
                f"{name} is present but {config.source} has no [{name}] or "
                f"[{type_name}._default] section (it gets only the global defaults)"
            )
    return warnings
