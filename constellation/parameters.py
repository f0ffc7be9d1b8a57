"""Declared satellite parameters: read from a configuration, listed in ``--help`` and in docs.

A satellite class lists its parameters once::

    class PowerSupply(Satellite):
        parameters = (
            Param("voltage", float, 0.0, "output voltage", unit="V", min=0, max=1000),
            Param("port", str, doc="serial port of the supply"),
        )

        def do_initializing(self, config):
            values = read_parameters(self.parameters, config)   # {"voltage": ..., "port": ...}

Reading goes through :class:`~constellation.core.config.Configuration`, so a wrong type or
range is a :class:`~constellation.errors.ConfigError` naming the key, and every declared key
counts as used. The same declarations produce the ``Satellite<Type> --help`` text and
docs/satellites.md, so the documentation cannot drift from what the satellite reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from constellation.core.config import Configuration

__all__ = ["REQUIRED", "Param", "read_parameters"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a parameter that must be given.
REQUIRED: Any = _Required()

_KINDS: dict[type, str] = {int: "int", float: "float", bool: "bool", str: "str", list: "list"}
_KINDS[Path] = "path"


@dataclass(frozen=True)
class Param:
    """One configuration key of a satellite: type, default, range or choices, description."""

    key: str
    kind: type
    default: Any = REQUIRED
    doc: str = ""
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise TypeError(f"parameter {self.key}: unsupported kind {self.kind!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def read(self, config: Configuration) -> Any:
        """The value of this parameter in ``config`` (its default when absent)."""
        default = self.default if not self.required else _missing()
        if self.kind is int:
            return config.get_int(self.key, default, min=_int(self.min), max=_int(self.max))
        if self.kind is float:
            return config.get_float(self.key, default, min=self.min, max=self.max)
        if self.kind is bool:
            return config.get_bool(self.key, default)
        if self.kind is str:
            return config.get_str(self.key, default, choices=self.choices)
        if self.kind is Path:
            return config.get_path(self.key, default)
        return config.get_list(self.key, default)

    def describe(self) -> str:
        """E.g. ``rate (float, records/s; default 0; >= 0): records per second``."""
        facts = [_KINDS[self.kind] + (f", {self.unit}" if self.unit else "")]
        facts.append("required" if self.required else f"default {_show(self.default)}")
        limits = self.limits()
        if limits:
            facts.append(limits)
        return f"{self.key} ({'; '.join(facts)})" + (f": {self.doc}" if self.doc else "")

    def limits(self) -> str:
        """The accepted range or choices, as text ('' if unrestricted)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.min is not None and self.max is not None:
            return f"{_show(self.min)} .. {_show(self.max)}"
        if self.min is not None:
            return f">= {_show(self.min)}"
        if self.max is not None:
            return f"<= {_show(self.max)}"
        return ""


def read_parameters(params: Iterable[Param], config: Configuration) -> dict[str, Any]:
    """Every declared parameter's value, keyed by its key."""
    return {param.key: param.read(config) for param in params}


def parameter_table(params: Iterable[Param]) -> list[Mapping[str, str]]:
    """Rows (key, type, default, range, description) for documentation tables."""
    return [
        {
            "key": p.key,
            "type": _KINDS[p.kind] + (f" ({p.unit})" if p.unit else ""),
            "default": "required" if p.required else _show(p.default),
            "range": p.limits() or "-",
            "description": p.doc,
        }
        for p in params
    ]


def _missing() -> Any:
    from constellation.core.config import MISSING

    return MISSING


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _show(value: Any) -> str:
    if value is None:
        return "see description"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
