"""Run conditions and EOR run metadata: the flags a run ends with, and the metadata map sent.

Layer: ``core`` (pure logic). :class:`RunCondition` holds the condition bits of CDTP v2 run
metadata (docs/protocols.md#one-run); a transmitter collects its flags in a
:class:`RunConditionTracker` and builds its EOR metadata with :func:`make_run_metadata`.
Wall-clock timestamps are aware ``datetime`` objects passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import IntFlag
from typing import Any

import constellation

__all__ = [
    "DEFAULT_LICENSE",
    "SUBSTITUTE_KEY",
    "RunCondition",
    "RunConditionTracker",
    "describe_condition",
    "make_run_metadata",
]

#: License string put into EOR run metadata unless the caller chooses another.
DEFAULT_LICENSE = "ODC-By-1.0"
#: Key marking run metadata the receiver made up for a sender that sent no EOR.
SUBSTITUTE_KEY = "substitute"


class RunCondition(IntFlag):
    """Run condition flags, OR-ed together (docs/protocols.md#one-run)."""

    GOOD = 0x00
    TAINTED = 0x01
    INCOMPLETE = 0x02
    INTERRUPTED = 0x04
    ABORTED = 0x08
    DEGRADED = 0x10

    def describe(self) -> str:
        """Flag names joined by ``|`` in bit order, ``"GOOD"`` for 0, unknown bits as hex."""
        return describe_condition(int(self))


def describe_condition(code: int) -> str:
    """Name string of a condition code, e.g. ``"INCOMPLETE|ABORTED"``; ``"GOOD"`` for 0."""
    names = [flag.name for flag in _CONDITION_BITS if code & flag and flag.name]
    unknown = code & ~_KNOWN_CONDITION_BITS
    if unknown:
        names.append(f"0x{unknown:X}")
    return "|".join(names) if names else "GOOD"


_CONDITION_BITS = [flag for flag in RunCondition if flag.value]
_KNOWN_CONDITION_BITS = sum(int(flag) for flag in _CONDITION_BITS)


class RunConditionTracker:
    """Condition flags a transmitter collects during one run (normal stop: GOOD)."""

    def __init__(self) -> None:
        self._condition = RunCondition.GOOD

    @property
    def condition(self) -> RunCondition:
        """All flags added since the last :meth:`reset`."""
        return self._condition

    def add(self, flags: RunCondition) -> None:
        """OR ``flags`` into the condition."""
        self._condition |= flags

    def mark_interrupted(self) -> None:
        """The run ended by an autonomous interrupt."""
        self.add(RunCondition.INTERRUPTED)

    def mark_failed(self) -> None:
        """The run ended by a failure (the transmitter went to ERROR)."""
        self.add(RunCondition.ABORTED | RunCondition.TAINTED)

    def mark_degraded(self) -> None:
        """A heartbeat issue of a peer marked the run degraded."""
        self.add(RunCondition.DEGRADED)

    def reset(self) -> None:
        """Start a new run: back to GOOD."""
        self._condition = RunCondition.GOOD


def make_run_metadata(
    run_id: str,
    time_start: datetime,
    time_end: datetime,
    condition: RunCondition | int,
    data_records: int,
    version: str,
    extra: Mapping[str, Any] | None = None,
    license: str = DEFAULT_LICENSE,
) -> dict[str, Any]:
    """EOR run metadata of a transmitter (docs/protocols.md#one-run).

    ``version`` is the satellite's own version; timestamps must be timezone-aware. ``extra`` adds
    keys but may not replace the standard ones (``ValueError``).
    """
    for key, stamp in (("time_start", time_start), ("time_end", time_end)):
        if stamp.tzinfo is None or stamp.utcoffset() is None:
            raise ValueError(f"{key} must be a timezone-aware datetime")
    if data_records < 0:
        raise ValueError(f"data_records must not be negative, got {data_records}")
    metadata: dict[str, Any] = {
        "version": version,
        "cnstln_version": constellation.__version__,
        "cnstln_codename": constellation.CODENAME,
        "run_id": run_id,
        "time_start": time_start,
        "license": license,
        "time_end": time_end,
        "condition_code": int(condition),
        "condition": describe_condition(int(condition)),
        "data_records": data_records,
    }
    clashes = sorted(set(metadata) & set(extra or {}))
    if clashes:
        raise ValueError(f"extra run metadata may not replace {', '.join(clashes)}")
    metadata.update(extra or {})
    return metadata
