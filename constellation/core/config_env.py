"""Core layer: ``${VAR}`` and ``${VAR:-default}`` references in a received configuration.

Pure: the environment is passed in as a mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from constellation.core.config_values import _join, _KeyPath
from constellation.errors import ConfigError

__all__ = ["resolve_env"]


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
