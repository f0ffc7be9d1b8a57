"""Console script ``constellation-live``: watch the live data of a group in the terminal.

``constellation-live -g GROUP [-i IFACE] [--sender NAME ...]`` shows a table of the senders
(records/s, MB/s, dropped, last sequence, run); ``--dump`` prints each record instead and
``--histogram SENDER`` a live histogram of that sender's block values.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from constellation.errors import ConstellationError
from constellation.live.buffer import POLICIES
from constellation.live.frame import Frame
from constellation.live.protocol import CODECS
from constellation.live.streamer import Streamer
from constellation.live.view import RateTracker, SenderRow, histogram_lines

__all__ = ["main"]

_REFRESH = 0.5
_HISTOGRAM_VALUES = 200_000
#: How long to look for a receiver of the group before giving up.
_FIND_TIMEOUT = 30.0


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
    return parser


def _table(rows: list[SenderRow], receivers: list[str]) -> Table:
    title = f"live data from {', '.join(receivers) or 'no receiver yet'}"
    table = Table(title=title)
    for column in ("sender", "records/s", "MB/s", "received", "dropped", "last seq", "run"):
        table.add_column(column, justify="left" if column in ("sender", "run") else "right")
    for r in rows:
        table.add_row(
            r.sender,
            f"{r.records_per_s:,.0f}",
            f"{r.mb_per_s:.2f}",
            f"{r.received:,}",
            f"{r.dropped:,}",
            str(r.last_sequence),
            r.run_id,
        )
    return table


def _dump(frame: Frame, console: Console) -> None:
    for event in frame.events:
        console.print(f"[bold]{type(event).__name__}[/] {event.sender} run {event.run_id}")
    for sender, records in frame.records.items():
        for record in records:
            shapes = " ".join(f"{b.dtype}[{b.size}]" for b in record.blocks)
            console.print(f"{sender} #{record.sequence} {record.tags} {shapes}", markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    senders = args.sender or ([args.histogram] if args.histogram else None)
    try:
        streamer = Streamer(
            args.group,
            senders,
            interface=args.interface,
            discovery=args.discovery,
            policy=args.policy,
            compression=args.compression,
        )
    except ConstellationError as exc:
        print(f"constellation-live: {exc}", file=sys.stderr)
        return 2
    try:
        with streamer:
            found = time.monotonic() + _FIND_TIMEOUT
            while not streamer.receivers and time.monotonic() < found:
                time.sleep(0.05)  # discovery runs in the streamer's threads
            if not streamer.receivers:
                print(f"constellation-live: no receiver in group '{args.group}'", file=sys.stderr)
                return 1
            end = None if args.seconds is None else time.monotonic() + args.seconds
            if args.dump:
                while end is None or time.monotonic() < end:
                    frame = streamer.read(_REFRESH)
                    if frame is not None:
                        _dump(frame, console)
                return 0
            rates = RateTracker()
            values: deque[np.ndarray] = deque()
            with Live(console=console, refresh_per_second=4) as live:
                while end is None or time.monotonic() < end:
                    deadline = time.monotonic() + _REFRESH
                    while (left := deadline - time.monotonic()) > 0:
                        frame = streamer.read(left)
                        if frame is not None and args.histogram:
                            for records in frame.records.values():
                                values.extend(b for r in records for b in r.blocks)
                            while sum(v.size for v in values) > _HISTOGRAM_VALUES:
                                values.popleft()
                    if args.histogram:
                        data = np.concatenate(list(values)) if values else np.array([])
                        text = "\n".join(histogram_lines(data))
                        live.update(f"{args.histogram}: {data.size} values\n{text}")
                    else:
                        rows = rates.rows(streamer.stats, time.monotonic())
                        live.update(_table(rows, streamer.receivers))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
