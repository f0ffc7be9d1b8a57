"""Pure logic: the ``CONSTELLATION_*`` environment knobs of a process, parsed and checked once.

The launchers (``constellation.cli`` and the controller's console scripts) read them before
anything starts and refuse a malformed value with a message naming the variable; the values
then travel explicitly (as a :class:`ProcessSettings`) into the satellite or controller and its
parts. Library code never reads the environment: built without settings, it uses the defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from constellation.errors import ConfigError

__all__ = [
    "BUILTIN_MAX_MESSAGE_SIZE",
    "HEARTBEAT_SCALE_ENV",
    "MALLOC_TUNING_ENV",
    "MAX_MESSAGE_SIZE_ENV",
    "METRIC_SCALE_ENV",
    "ProcessSettings",
]

#: Multiplies every heartbeat interval and timeout (tests shrink it).
HEARTBEAT_SCALE_ENV = "CONSTELLATION_HEARTBEAT_SCALE"
#: Multiplies every metric interval.
METRIC_SCALE_ENV = "CONSTELLATION_METRIC_SCALE"
#: Largest message on control/heartbeat/monitoring sockets (bytes, a positive integer).
MAX_MESSAGE_SIZE_ENV = "CONSTELLATION_MAX_MESSAGE_SIZE"
#: ``0`` leaves malloc alone (no raised mmap/trim thresholds for the data path).
MALLOC_TUNING_ENV = "CONSTELLATION_MALLOC_TUNING"

#: Built-in limit of :data:`MAX_MESSAGE_SIZE_ENV`: 16 MiB (never "unlimited").
BUILTIN_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class ProcessSettings:
    """The knobs of one process, with their built-in defaults."""

    heartbeat_scale: float = 1.0
    metric_scale: float = 1.0
    max_message_size: int = BUILTIN_MAX_MESSAGE_SIZE
    malloc_tuning: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProcessSettings:
        """Parse the knobs set in ``environ``; raises :class:`ConfigError` naming the variable
        of a malformed value (an unset or empty variable keeps its default)."""
        return cls(
            heartbeat_scale=_scale(environ, HEARTBEAT_SCALE_ENV, cls.heartbeat_scale),
            metric_scale=_scale(environ, METRIC_SCALE_ENV, cls.metric_scale),
            max_message_size=_positive_int(environ, MAX_MESSAGE_SIZE_ENV, cls.max_message_size),
            malloc_tuning=_switch(environ, MALLOC_TUNING_ENV, cls.malloc_tuning),
        )


def _raw(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _error(name: str, raw: str, expected: str) -> ConfigError:
    return ConfigError(name, f"environment variable {name}={raw!r} is not {expected}")


def _scale(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = _raw(environ, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _error(name, raw, "a number") from None
    if not math.isfinite(value) or value <= 0:
        raise _error(name, raw, "a positive finite number")
    return value


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _raw(environ, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _error(name, raw, "an integer") from None
    if value <= 0:
        raise _error(name, raw, "a positive integer")
    return value


def _switch(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(environ, name)
    if not raw:
        return default
    if raw not in ("0", "1"):
        raise _error(name, raw, "0 or 1")
    return raw == "1"
