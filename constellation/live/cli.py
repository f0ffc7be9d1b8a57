"""Console script ``constellation-live``: watch the live data of a group in the terminal.

``constellation-live -g GROUP [-i IFACE] [--sender NAME ...]`` shows a table of the senders
(records/s, MB/s, dropped, last sequence, run); ``--dump`` prints each record instead and
``--histogram SENDER`` a live histogram of that sender's block values. On a terminal the view
is redrawn in place (Rich); otherwise a plain snapshot is printed every ``--interval`` seconds
and one more when SIGINT or SIGTERM stops the command.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from constellation.errors import ConstellationError
from constellation.live.buffer import POLICIES
from constellation.live.frame import Frame
from constellation.live.protocol import CODECS
from constellation.live.streamer import Streamer
from constellation.live.view import RateTracker, SenderRow, histogram_lines

__all__ = ["main"]

_HISTOGRAM_VALUES = 200_000
#: How long to look for a receiver of the group before giving up.
_FIND_TIMEOUT = 30.0
#: Characters of a line of :func:`histogram_lines` before its bar (two edges and the count).
_HISTOGRAM_LABEL = 39
#: Exit status after SIGINT (128 + 2, as a shell reports a process stopped by Ctrl-C).
_SIGINT_STATUS = 130
_HEADERS = ("sender", "records/s", "MB/s", "received", "dropped", "last seq", "run")
_SHORT_HEADERS = ("sender", "rec/s", "MB/s", "recv", "drop", "seq", "run")
#: Columns a run id keeps at least in a table that folds it (longer ids wrap).
_RUN_MIN = 8


class _Stopped(BaseException):
    """SIGINT or SIGTERM, raised in the main thread (where Python runs signal handlers)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="constellation-live", description="Watch the records of a running group live."
    )
    parser.add_argument("-g", "--group", required=True, help="group name")
    parser.add_argument("-i", "--interface", action="append", help="interface or address")
    parser.add_argument("--discovery", default="mdns", choices=("mdns", "chirp", "both"))
    parser.add_argument("--sender", action="append", help="follow only this sender (repeat)")
    parser.add_argument("--policy", default="drop-oldest", choices=POLICIES)
    parser.add_argument("--compression", default=None, choices=tuple(CODECS))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dump", action="store_true", help="print every record")
    mode.add_argument("--histogram", metavar="SENDER", help="live histogram of block values")
    parser.add_argument(
        "--seconds", type=float, default=None, help="stop this long after finding a receiver"
    )
    parser.add_argument(
        "--interval",
        type=_positive,
        default=1.0,
        help="seconds between two updates (snapshots when stdout is not a terminal)",
    )
    return parser


# --- the views (pure: rows and values in, renderables out) ---------------------------------------
def _compact(value: float) -> str:
    """A count in at most 6 characters: 12,345, then 123k, 1.50M, 12.3M, 1.23G."""
    if abs(value) < 100_000:
        return f"{value:,.0f}"
    for unit, scale in (("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        scaled = value / scale
        if abs(scaled) < 999.5:
            return f"{scaled:.3g}{unit}" if abs(scaled) >= 10 else f"{scaled:.2f}{unit}"
    return f"{value / 1e12:.0f}T"


def _cells(row: SenderRow, compact: bool) -> tuple[str, ...]:
    count = _compact if compact else "{:,.0f}".format
    mb = f"{row.mb_per_s:.2f}" if row.mb_per_s < 100 else f"{row.mb_per_s:,.0f}"
    sequence = _compact(row.last_sequence) if compact else str(row.last_sequence)
    return (
        row.sender,
        count(row.records_per_s),
        mb,
        count(row.received),
        count(row.dropped),
        sequence,
        row.run_id,
    )


def _column_widths(headers: Sequence[str], body: list[tuple[str, ...]]) -> list[int]:
    return [max(cell_len(c) for c in (h, *(r[i] for r in body))) for i, h in enumerate(headers)]


def sender_view(rows: list[SenderRow], title: str, width: int, ascii: bool) -> RenderableType:
    """The senders as a table ``width`` columns wide at most; sender names are never cut.

    Exact numbers when they fit, else abbreviated numbers and short headers (the run id may
    wrap); when even that is too wide, one block per sender (name, then its values).
    """
    for headers, compact in ((_HEADERS, False), (_SHORT_HEADERS, True)):
        body = [_cells(r, compact) for r in rows]
        widths = _column_widths(headers, body)
        if compact:
            widths[-1] = min(widths[-1], _RUN_MIN)
        if sum(widths) + 3 * len(widths) + 1 <= width:  # padding 2 and a border per column
            return _table(headers, body, title, ascii)
    return _blocks(rows, title, width)


def _table(headers: Sequence[str], body: list[tuple[str, ...]], title: str, ascii: bool) -> Table:
    table = Table(title=title, box=box.ASCII if ascii else box.HEAVY_HEAD)
    for header in headers:
        if header == "run":  # the only column that may wrap (sender_view left room for it)
            table.add_column(header, overflow="fold")
        else:
            justify = "left" if header == "sender" else "right"
            table.add_column(header, justify=justify, no_wrap=True)
    for cells in body:
        table.add_row(*cells)
    return table


def _blocks(rows: list[SenderRow], title: str, width: int) -> Text:
    """One block per sender: its name, then "header value" pairs packed into indented lines."""
    lines = [title]
    for row in rows:
        lines.append(row.sender)  # folded by Rich if longer than the line, never cut
        line = ""
        for pair in (f"{h} {v}" for h, v in zip(_HEADERS[1:], _cells(row, True)[1:], strict=True)):
            if line and cell_len(line) + 2 + cell_len(pair) > width:
                lines.append(line)
                line = ""
            line = f"{line}  {pair}"
        lines.append(line)
    return Text("\n".join(lines), overflow="fold")


def histogram_view(sender: str, values: np.ndarray, width: int, clock: str) -> Text:
    """The histogram of ``values`` with bars that fit in ``width`` columns."""
    lines = histogram_lines(values, width=max(1, width - _HISTOGRAM_LABEL))
    return Text("\n".join([f"{sender}: {values.size} values ({clock})", *lines]))


# --- the loop ----------------------------------------------------------------------------------
class _Display:
    """What the table or the histogram shows, fed with the streamer's frames."""

    def __init__(self, streamer: Streamer, histogram: str | None, console: Console) -> None:
        self.streamer = streamer
        self.histogram = histogram
        self.console = console
        self.rates = RateTracker()
        self.values: deque[np.ndarray] = deque()
        self._held = 0
        self.rates.rows(streamer.stats, time.monotonic())  # the first rates count from now

    def take(self, frame: Frame) -> None:
        if self.histogram is None:
            return  # the table only needs the streamer's stats
        for records in frame.records.values():
            for block in (b for r in records for b in r.blocks):
                self.values.append(block)
                self._held += block.size
        while self._held > _HISTOGRAM_VALUES:
            self._held -= self.values.popleft().size

    def render(self) -> RenderableType:
        clock = datetime.now().strftime("%H:%M:%S")
        width = self.console.width
        if self.histogram is not None:
            data = np.concatenate(list(self.values)) if self.values else np.array([])
            return histogram_view(self.histogram, data, width, clock)
        rows = self.rates.rows(self.streamer.stats, time.monotonic())
        title = f"live data from {', '.join(self.streamer.receivers) or 'no receiver yet'}"
        return sender_view(rows, f"{title} ({clock})", width, not self.console.is_terminal)


def watch(
    read: Callable[[float], Frame | None],
    display: Any,
    show: Callable[[RenderableType], None],
    interval: float,
    end: float | None,
) -> None:
    """Feed ``display`` from ``read`` and ``show`` it every ``interval`` s until ``end``
    (monotonic time; None: until a signal). A signal shows the frames read so far first."""
    try:
        while end is None or time.monotonic() < end:
            deadline = time.monotonic() + interval
            if end is not None:
                deadline = min(deadline, end)
            while (left := deadline - time.monotonic()) > 0:
                frame = read(left)
                if frame is not None:
                    display.take(frame)
            show(display.render())
    except _Stopped:
        show(display.render())
        raise


def _dump(frame: Frame, console: Console) -> None:
    for event in frame.events:
        console.print(f"[bold]{type(event).__name__}[/] {event.sender} run {event.run_id}")
    for sender, records in frame.records.items():
        for record in records:
            shapes = " ".join(f"{b.dtype}[{b.size}]" for b in record.blocks)
            console.print(f"{sender} #{record.sequence} {record.tags} {shapes}", markup=False)


@contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`_Stopped` once; later ones are ignored (clean-up)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    stopping = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise _Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with _signals_stop():
            return _run(args, Console())
    except _Stopped as stopped:
        return _SIGINT_STATUS if stopped.signum == signal.SIGINT else 0


def _error(message: object) -> None:
    print(f"constellation-live: {message}", file=sys.stderr)


def _run(args: argparse.Namespace, console: Console) -> int:
    senders = args.sender or ([args.histogram] if args.histogram else None)
    try:  # the senders are checked once a receiver is found (discovery had time then)
        streamer = Streamer(
            args.group,
            senders,
            interface=args.interface,
            discovery=args.discovery,
            policy=args.policy,
            compression=args.compression,
            sender_wait=None,
        )
    except ConstellationError as exc:
        _error(exc)
        return 2
    with streamer:
        found = time.monotonic() + _FIND_TIMEOUT
        while not streamer.receivers and time.monotonic() < found:
            time.sleep(0.05)  # discovery runs in the streamer's threads
        if not streamer.receivers:
            _error(f"no receiver in group '{args.group}'")
            return 1
        if senders is not None:
            try:
                streamer.update_senders(senders)  # waits briefly for discovery, then checks
            except ConstellationError as exc:
                _error(exc)
                return 2
        end = None if args.seconds is None else time.monotonic() + args.seconds
        if args.dump:
            while end is None or time.monotonic() < end:
                frame = streamer.read(args.interval)
                if frame is not None:
                    _dump(frame, console)
            return 0
        display = _Display(streamer, args.histogram, console)
        if not console.is_terminal:
            watch(streamer.read, display, console.print, args.interval, end)
            return 0
        with Live(console=console, refresh_per_second=4) as live:
            watch(streamer.read, display, lambda view: live.update(view), args.interval, end)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
