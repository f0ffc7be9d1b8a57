"""Controller layer: the progress display of ``Controller run`` and ``scan``, through Rich.

:func:`run_counts` (pure) sums the latest record counters of the group: records sent by the
transmitters (``TX_RECORDS``) and received by the receivers (``RX_RECORDS``). The counters are
sampled by different satellites at different moments, so a receiver's value can be newer than a
transmitter's; received is never shown above sent. :class:`Progress` draws a live bar on a
terminal (Rich ``Live``; lines printed through :meth:`Progress.say` appear above it, never glued
to it) and prints a plain line every few seconds otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from constellation.terminal import colour_wanted, make_console

__all__ = [
    "RUN_METRICS",
    "Progress",
    "ReceiverSummary",
    "RunCounts",
    "clock",
    "receiver_summaries",
    "run_counts",
    "si",
]

#: What ``Controller run`` follows: record counters, bytes, and the receivers' run condition.
RUN_METRICS = ("TX_RECORDS", "RX_RECORDS", "RX_BYTES", "RUN_CONDITION")


class _Watcher(Protocol):
    def latest(self, metric: str, satellite: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunCounts:
    """Records sent and received so far, with rates (per second) where known."""

    sent: int | None
    sent_rate: float | None
    received: int | None
    received_rate: float | None

    def words(self) -> list[str]:
        parts = []
        for word, value, rate in (
            ("sent", self.sent, self.sent_rate),
            ("received", self.received, self.received_rate),
        ):
            if value is not None:
                parts.append(f"{word} {value:,}" + (f" ({si(rate)}/s)" if rate else ""))
        return parts


def run_counts(watcher: _Watcher | None) -> RunCounts:
    """The group's totals from the latest ``TX_RECORDS`` / ``RX_RECORDS`` samples."""
    if watcher is None:
        return RunCounts(None, None, None, None)
    totals: list[tuple[int | None, float | None]] = []
    for metric in ("TX_RECORDS", "RX_RECORDS"):
        samples = watcher.latest(metric)
        values = [s.value for s in samples.values() if _is_count(s.value)]
        rates = [s.rate for s in samples.values() if s.rate is not None]
        totals.append((sum(values) if values else None, sum(rates) if rates else None))
    (sent, sent_rate), (received, received_rate) = totals
    if sent is not None and received is not None and received > sent:
        received = sent  # the receivers' counters are newer than the transmitters'
    return RunCounts(sent, sent_rate, received, received_rate)


@dataclass(frozen=True)
class ReceiverSummary:
    """One receiver's account of a run: records, bytes and the condition of its EORs."""

    name: str
    records: int | None
    nbytes: int | None
    condition: str | None

    @property
    def good(self) -> bool:
        return self.condition == "GOOD"

    def __str__(self) -> str:
        records = "?" if self.records is None else f"{self.records:,}"
        size = "" if self.nbytes is None else f", {_size(self.nbytes)}"
        condition = self.condition or "unknown (no RUN_CONDITION metric)"
        return f"{self.name}: {records} records{size}, condition {condition}"


def receiver_summaries(watcher: _Watcher) -> list[ReceiverSummary]:
    """Every receiver seen in this run (it published ``RX_RECORDS``), sorted by name."""
    records = watcher.latest("RX_RECORDS")
    nbytes = watcher.latest("RX_BYTES")
    conditions = watcher.latest("RUN_CONDITION")
    result = []
    for name in sorted(set(records) | set(conditions), key=str.lower):
        count = records.get(name)
        size = nbytes.get(name)
        condition = conditions.get(name)
        result.append(
            ReceiverSummary(
                name,
                count.value if count is not None and _is_count(count.value) else None,
                size.value if size is not None and _is_count(size.value) else None,
                str(condition.value) if condition is not None else None,
            )
        )
    return result


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"


def clock(seconds: float) -> str:
    """``MM:SS`` or ``H:MM:SS``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def si(value: float) -> str:
    """``1.5k``, ``2.0M``: a rate with an SI suffix."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.1f}{suffix}"
    return f"{value:.0f}"


class Progress:
    """Progress of a run on ``stream``: a live bar on a terminal, a line every few s else."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.tty = colour_wanted(stream)  # live redraws; NO_COLOR or a pipe: plain lines
        self.console = make_console(stream)
        self._live: Live | None = None
        self._last_line = -1.0
        self._text = ""
        self._shown = ""

    def __call__(self, elapsed: float, duration: float | None, watcher: _Watcher | None) -> None:
        counts = run_counts(watcher)
        self._text = self._line(elapsed, duration, counts)
        if self.tty:
            if self._live is None:
                self._live = Live(console=self.console, auto_refresh=False, transient=False)
                self._live.start()
            self._live.update(self._bar(elapsed, duration, counts), refresh=True)
            self._shown = self._text
            return
        every = 5.0 if duration is None else max(1.0, min(10.0, duration / 10))
        if self._last_line < 0 or elapsed - self._last_line >= every:
            self._last_line = elapsed
            self._print()

    def say(self, text: str) -> None:
        """Print ``text`` on a line of its own (above the live bar on a terminal)."""
        if self._live is not None:
            self._live.console.print(Text(text))
        else:
            self.done()
            print(text, file=self.stream, flush=True)

    def _print(self) -> None:
        print(self._text, file=self.stream, flush=True)
        self._shown = self._text

    def done(self) -> None:
        """End the progress display; off a terminal, print the latest state if not shown yet."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif self._text and self._text != self._shown:
            self._print()
        self._text = self._shown = ""
        self._last_line = -1.0

    def _line(self, elapsed: float, duration: float | None, counts: RunCounts) -> str:
        if duration:
            filled = int(min(1.0, elapsed / duration) * 20)
            head = f"[{'#' * filled}{'.' * (20 - filled)}] {clock(elapsed)} / {clock(duration)}"
        else:
            head = f"{clock(elapsed)} (Ctrl-C to stop)"
        return "  ".join([f"{self.label} {head}", *counts.words()])

    def _bar(self, elapsed: float, duration: float | None, counts: RunCounts) -> Table:
        grid = Table.grid(padding=(0, 1))
        cells: list[Any] = [Text(self.label, "bold")]
        if duration:
            cells.append(ProgressBar(total=duration, completed=min(elapsed, duration), width=30))
            cells.append(Text(f"{clock(elapsed)} / {clock(duration)}"))
        else:
            cells.append(Text(f"{clock(elapsed)} (Ctrl-C to stop)"))
        cells.append(Text("  ".join(counts.words()), "cyan"))
        for _ in cells:
            grid.add_column(no_wrap=True)
        grid.add_row(*cells)
        return grid


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
