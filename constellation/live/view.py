"""Pure helpers of ``constellation-live``: sender rates, a text histogram (time passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from constellation.live.accounting import SenderStats

__all__ = ["RateTracker", "SenderRow", "histogram_lines"]


@dataclass(frozen=True)
class SenderRow:
    """One line of the live table."""

    sender: str
    records_per_s: float
    mb_per_s: float
    received: int
    dropped: int
    last_sequence: int
    run_id: str


class RateTracker:
    """Rates between two snapshots of :attr:`Streamer.stats`."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int, int]] = {}

    def rows(self, stats: dict[str, SenderStats], now: float) -> list[SenderRow]:
        rows = []
        for sender in sorted(stats):
            s = stats[sender]
            then, records, nbytes = self._last.get(sender, (now, s.received, s.bytes))
            elapsed = now - then
            rate = (s.received - records) / elapsed if elapsed > 0 else 0.0
            mbps = (s.bytes - nbytes) / elapsed / 1e6 if elapsed > 0 else 0.0
            self._last[sender] = (now, s.received, s.bytes)
            rows.append(
                SenderRow(sender, rate, mbps, s.received, s.dropped, s.last_sequence, s.run_id)
            )
        return rows


def histogram_lines(values: Any, bins: int = 16, width: int = 50) -> list[str]:
    """A horizontal text histogram of ``values`` (one line per bin)."""
    data = np.asarray(values).ravel()
    if data.size == 0:
        return ["(no values yet)"]
    counts, edges = np.histogram(data.astype(np.float64), bins=bins)
    top = max(int(counts.max()), 1)
    lines = []
    for count, low, high in zip(counts, edges[:-1], edges[1:], strict=True):
        bar = "#" * round(width * int(count) / top)
        lines.append(f"{low:>12.4g} .. {high:<12.4g} {int(count):>9d} {bar}")
    return lines
