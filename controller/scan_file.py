"""Controller layer: scan files, TOML or YAML, read into a :class:`~controller.scan.Scan`.

Top-level keys ``prefix``, ``duration``, ``until`` (``metric``, ``value``, ``satellite``),
``first``, ``mode``, ``combine``, ``land`` and one or more ``[[parameter]]`` tables
(``target``, ``key`` and ``values`` or ``start``/``stop``/``step``); see docs/controller.md.
Every error names the file, the key and, where known, the line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.config import ConfigFileError, read_file
from controller.runs import Until

if TYPE_CHECKING:
    from controller.scan import Scan

__all__ = ["load_scan"]

_SCAN_KEYS = {"prefix", "duration", "until", "first", "mode", "combine", "land", "parameter"}
_UNTIL_KEYS = {"metric", "value", "satellite"}
_PARAMETER_KEYS = {"target", "key", "values", "start", "stop", "step"}


def load_scan(path: str | Path) -> Scan:
    """Read a scan file (TOML or YAML); errors name the file, the key and the line."""
    from controller.scan import Parameter, Scan  # which re-exports this function

    raw, line_of = read_file(path)
    source = str(path)

    def error(key: str, message: str, nth: int = 0) -> ConfigFileError:
        return ConfigFileError(source, key, message, line_of(key, nth=nth))

    def check_keys(section: Mapping[str, Any], allowed: set[str], prefix: str, nth: int) -> None:
        for key in section:
            if str(key).lower() not in allowed:
                allowed_text = ", ".join(sorted(allowed))
                raise error(f"{prefix}{key}", f"unknown key (allowed: {allowed_text})", nth)

    def get(
        section: Mapping[str, Any],
        key: str,
        kind: type | tuple[type, ...],
        prefix: str = "",
        default: Any = None,
        nth: int = 0,
    ) -> Any:
        value = {str(k).lower(): v for k, v in section.items()}.get(key, default)
        if value is default:
            return value
        kinds = _as_tuple(kind)
        bool_for_number = isinstance(value, bool) and bool not in kinds
        if not isinstance(value, kinds) or bool_for_number:
            names = " or ".join(t.__name__ for t in kinds)
            raise error(f"{prefix}{key}", f"expected {names}, got {type(value).__name__}", nth)
        return value

    check_keys(raw, _SCAN_KEYS, "", 0)
    number = (int, float)
    until = None
    until_raw = get(raw, "until", dict)
    if until_raw is not None:
        check_keys(until_raw, _UNTIL_KEYS, "until.", 0)
        metric = get(until_raw, "metric", str, "until.")
        value = get(until_raw, "value", number, "until.")
        if metric is None or value is None:
            raise error("until", "needs 'metric' and 'value'")
        until = Until(metric, value, get(until_raw, "satellite", str, "until."))
    parameters_raw = get(raw, "parameter", (list, dict))
    if parameters_raw is None:
        raise error("parameter", "a scan needs at least one [[parameter]] table")
    if isinstance(parameters_raw, dict):
        parameters_raw = [parameters_raw]
    parameters = []
    prefix = "parameter."
    for nth, item in enumerate(parameters_raw):
        if not isinstance(item, dict):
            raise error("parameter", f"entry {nth + 1} is not a table", nth)
        check_keys(item, _PARAMETER_KEYS, prefix, nth)
        target = get(item, "target", str, prefix, nth=nth)
        key = get(item, "key", str, prefix, nth=nth)
        if target is None or key is None:
            raise error("parameter", f"entry {nth + 1} needs 'target' and 'key'", nth)
        values = get(item, "values", list, prefix, nth=nth)
        bounds = [get(item, k, number, prefix, nth=nth) for k in ("start", "stop", "step")]
        try:
            if values is not None:
                parameters.append(Parameter(target, key, values))
            elif None not in bounds:
                parameters.append(Parameter.range(target, key, *bounds))
            else:
                raise ValueError(f"{target}.{key} needs 'values', or 'start', 'stop' and 'step'")
        except ValueError as exc:
            raise error("parameter", str(exc), nth) from None
    try:
        return Scan(
            parameters,
            prefix=get(raw, "prefix", str, default="scan"),
            duration=get(raw, "duration", number),
            until=until,
            first=get(raw, "first", int),
            mode=get(raw, "mode", str, default="auto"),
            combine=get(raw, "combine", str, default="zip"),
            land=get(raw, "land", bool, default=True),
        )
    except ValueError as exc:
        raise error("", str(exc)) from None


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
