"""Controller layer: configuration files (TOML or YAML) and their routing to satellites.

Level 1 is the satellite type, level 2 the satellite name, then its parameters. ``_default`` at
level 1 applies to every satellite, ``<Type>._default`` to every satellite of that type; the
satellite's own values win over the type default, which wins over the global default, merged
key by key. Types, names and keys are case-insensitive. ``$_{VAR}`` is resolved here, when the
file is read; ``${VAR}`` is left for the satellite's host.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from constellation.errors import ConfigError

__all__ = ["ControllerConfig", "load_config", "merge_sections"]

DEFAULT = "_default"
_CONTROLLER_VAR = re.compile(r"\$_\{(\w+)(?::-([^}]*))?\}")


def merge_sections(*sections: Mapping[str, Any]) -> dict[str, Any]:
    """Merge nested maps key by key; later sections win, keys compare case-insensitively."""
    result: dict[str, Any] = {}
    for section in sections:
        for key, value in section.items():
            low = key.lower()
            if isinstance(value, Mapping) and isinstance(result.get(low), dict):
                result[low] = merge_sections(result[low], value)
            elif isinstance(value, Mapping):
                result[low] = merge_sections(value)
            else:
                result[low] = copy.deepcopy(value)
    return result


def _resolve_controller_vars(value: Any, path: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _resolve_controller_vars(v, f"{path}.{k}" if path else str(k), environ)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_controller_vars(v, path, environ) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(path, f"environment variable '{name}' is not set on the controller")

    return _CONTROLLER_VAR.sub(replace, value)


def _lower_keys_checked(data: Mapping[str, Any], source: str, path: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{path}{key}", f"{source}: keys must be strings")
        low = key.lower()
        full = f"{path}{key}"
        if low in result:
            raise ConfigError(full, f"{source}: duplicate key (keys are case-insensitive)")
        result[low] = (
            _lower_keys_checked(value, source, f"{full}.") if isinstance(value, Mapping) else value
        )
    return result


def _parse_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("", f"{path}: invalid TOML: {exc}") from exc
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError("", f"{path}: invalid YAML{where}: {problem}") from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError("", f"{path}: the top level must be a mapping of satellite types")
        return data
    raise ConfigError("", f"{path}: unknown configuration format (use .toml, .yaml or .yml)")


@dataclass
class ControllerConfig:
    """A loaded configuration: ``{type: {name: {...}, "_default": {...}}, "_default": {...}}``."""

    data: dict[str, Any]
    source: str = "<mapping>"
    path: Path | None = field(default=None)

    def __post_init__(self) -> None:
        for type_name, section in self.data.items():
            if not isinstance(section, dict):
                raise ConfigError(
                    type_name, f"{self.source}: expected a table of satellites or parameters"
                )
            if type_name == DEFAULT:
                continue
            for name, params in section.items():
                if not isinstance(params, dict):
                    raise ConfigError(
                        f"{type_name}.{name}",
                        f"{self.source}: expected a table of parameters for the satellite",
                    )

    def for_satellite(self, canonical_name: str) -> dict[str, Any]:
        """The merged section one satellite receives in ``initialize``."""
        type_name, _, name = canonical_name.lower().partition(".")
        type_section = self.data.get(type_name, {})
        return merge_sections(
            self.data.get(DEFAULT, {}),
            type_section.get(DEFAULT, {}),
            type_section.get(name, {}),
        )

    def satellites(self) -> list[str]:
        """Canonical names (lower case) explicitly configured in the file."""
        return [
            f"{type_name}.{name}"
            for type_name, section in self.data.items()
            if type_name != DEFAULT
            for name in section
            if name != DEFAULT
        ]

    def has_section(self, canonical_name: str) -> bool:
        return canonical_name.lower() in self.satellites()

    def types(self) -> list[str]:
        return [t for t in self.data if t != DEFAULT]


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | ControllerConfig,
    environ: Mapping[str, str] | None = None,
) -> ControllerConfig:
    """Load a TOML/YAML file, or wrap a mapping, resolving ``$_{VAR}`` from ``environ``."""
    if isinstance(source, ControllerConfig):
        return source
    environ = os.environ if environ is None else environ
    if isinstance(source, Mapping):
        label, path, raw = "<mapping>", None, dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError("", f"{path}: configuration file not found")
        label, raw = str(path), _parse_file(path)
    data = _lower_keys_checked(raw, label)
    data = _resolve_controller_vars(data, "", environ)
    return ControllerConfig(data, label, path)
