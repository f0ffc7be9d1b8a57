"""Controller layer: the ``Monitor`` command — logs and metrics of a whole group, live.

``Monitor -g GROUP [-i IFACE] [-l LEVEL] [-t TOPIC] [--metrics [NAME ...]] [-o DIR]`` listens
with a :class:`~constellation.net.listener.MonitoringListener`, prints every log message
(coloured by level on a terminal) and every metric value with a rate (integer counters) or a
running average (floating-point gauges) worked out here, and with ``-o`` appends them to
``DIR/log.csv`` and ``DIR/metric_<NAME>.csv``, rotated by size. It can be started and stopped
(Ctrl-C, exit code 0) at any time: the satellites only see subscriptions come and go.
"""

from __future__ import annotations

import argparse
import io
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rich.text import Text

from constellation import __version__
from constellation.cli import HelpFormatter, add_network_arguments, launcher_settings, level_type
from constellation.errors import DiscoveryError
from constellation.net.listener import MetricSample, MetricStats, MonitoringListener
from constellation.protocol.cmdp1 import CMDP1Log, CMDP1Metric, CMDP1Notification
from constellation.protocol.common import to_datetime
from constellation.terminal import LEVEL_STYLES, colour_wanted, make_console, state_text
from controller.monitor_csv import LOG_HEADER, METRIC_HEADER, CsvRecorder, RotatingCsv
from controller.monitor_state import FOLLOWED, SenderStates, StateChange

__all__ = [
    "LOG_HEADER",
    "METRIC_HEADER",
    "CsvRecorder",
    "Display",
    "RotatingCsv",
    "build_parser",
    "main",
]

log = logging.getLogger("constellation.monitor")

_METRIC_STYLE = "cyan"


# --- terminal output -----------------------------------------------------------------------------
class Display:
    """Print log lines, metric lines and peer events (Rich styles when ``colour`` is true)."""

    def __init__(self, stream: TextIO, colour: bool) -> None:
        self._out = stream
        self._console = make_console(stream, colour=colour, width=None if colour else 10_000)
        self._width = 16
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[str, ...]] = {}
        self.broken = False

    def _sender(self, name: str) -> Text:
        self._width = max(self._width, len(name))
        return Text(name.ljust(self._width), "bold")

    def _emit(self, text: Text) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                self._console.print(text)
                self._out.flush()
            except (OSError, ValueError):
                self.broken = True  # e.g. the pipe reader went away

    def log(self, message: CMDP1Log) -> None:
        style = LEVEL_STYLES.get(message.level, "")
        line = Text(f"{_clock(to_datetime(message.time))} ")
        line.append(message.level.ljust(8), style)
        line.append(" ").append_text(self._sender(message.sender))
        if message.log_topic:
            line.append(f" [{message.log_topic}]", "dim")
        loud = message.level in ("WARNING", "STATUS", "CRITICAL")
        line.append(f" {message.message}", style if loud else "")
        line.rstrip()
        traceback = message.tags.get("traceback")
        if isinstance(traceback, str) and traceback:
            for text in traceback.splitlines():
                line.append(f"\n    {text}", "dim")
        self._emit(line)

    def metric(self, sample: MetricSample) -> None:
        value = _display_value(sample.value)
        unit = f" {sample.unit}" if sample.unit else ""
        extra = ""
        if sample.rate is not None:
            extra = f"  ({_number(sample.rate, 3)} {sample.rate_unit})"
        elif sample.average is not None:
            extra = f"  (avg {_number(sample.average, 3)}{unit})"
        line = Text(f"{_clock(sample.time)} ")
        line.append("METRIC  ", _METRIC_STYLE)
        line.append(" ").append_text(self._sender(sample.sender))
        line.append(f" {sample.name} = {value}{unit}")
        line.append(extra, "dim")
        self._emit(line)

    def notification(self, message: CMDP1Notification) -> None:
        """Show what a sender offers, once per change (other listeners cause repeats)."""
        key = (message.sender, message.kind)
        topics = tuple(sorted(message.topics))
        with self._lock:
            if self._seen.get(key) == topics:
                return
            self._seen[key] = topics
        what = "log topics" if message.kind == "LOG" else "metrics"
        now = _clock(to_datetime(message.time))
        line = Text(f"{now} {'-' * 8} ", "dim").append_text(self._sender(message.sender))
        line.append(f" {what}: {', '.join(topics)}", "dim")
        self._emit(line)

    def state(self, change: StateChange, when: datetime) -> None:
        """One line per state change; the first one of a sender is its state on connect."""
        line = Text(f"{_clock(when)} ")
        line.append("STATE   ", "bold")
        line.append(" ").append_text(self._sender(change.sender))
        line.append(" ")
        if change.old is None:
            line.append("is ").append_text(state_text(change.new))
        else:
            line.append_text(state_text(change.old)).append(" -> ").append_text(
                state_text(change.new)
            )
        self._emit(line)

    def peer(self, name: str, connected: bool) -> None:
        if not connected:
            with self._lock:
                for kind in ("LOG", "STAT"):
                    self._seen.pop((name, kind), None)
        state = "connected" if connected else "left"
        now = _clock(datetime.now().astimezone())
        line = Text(f"{now} {'-' * 8} ", "dim").append_text(self._sender(name))
        line.append(f" {state}", "dim")
        self._emit(line)

    def info(self, text: str) -> None:
        self._emit(Text(text, "dim"))


def _clock(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S.%f")[:-3]


def _number(value: float, digits: int = 6) -> str:
    """``digits`` significant digits, without switching to exponents for large values."""
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:.0f}"


def _display_value(value: Any) -> str:
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- command line --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``Monitor`` command."""
    parser = argparse.ArgumentParser(
        prog="Monitor",
        description="Show (and record) the logs and metrics of every satellite of a group.",
        formatter_class=HelpFormatter,
    )
    add_network_arguments(parser)
    parser.add_argument(
        "-l",
        "--level",
        type=level_type("OFF"),
        default="INFO",
        help="lowest log level shown: TRACE, DEBUG, INFO (default), WARNING, STATUS, CRITICAL, OFF",
    )
    parser.add_argument(
        "-t",
        "--topic",
        action="append",
        default=None,
        help="only these log topics, e.g. FSM (repeatable; default: all)",
    )
    parser.add_argument(
        "--metrics",
        nargs="*",
        metavar="NAME",
        default=None,
        help="show metrics: all of them, or only the NAMEs given",
    )
    parser.add_argument("-o", "--output", type=Path, help="write log.csv and metric CSVs here")
    parser.add_argument(
        "--max-size",
        type=float,
        default=10.0,
        metavar="MB",
        help="rotate a CSV file at this size (default: 10 MB)",
    )
    parser.add_argument(
        "--backups", type=int, default=3, help="rotated CSV files kept per file (default: 3)"
    )
    parser.add_argument(
        "--colour",
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="coloured output (default: auto, when stdout is a terminal)",
    )
    parser.add_argument("--version", action="version", version=f"Monitor {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``Monitor`` command: 0 when stopped by Ctrl-C, 2 on bad arguments."""
    args = build_parser().parse_args(argv)
    if args.max_size <= 0 or args.backups < 0:
        print("error: --max-size must be positive and --backups not negative", file=sys.stderr)
        return 2
    settings = launcher_settings()  # the launcher alone reads the CONSTELLATION_* knobs
    if settings is None:
        return 2
    args.settings = settings
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _SIGNALS}
    try:
        return _monitor(args, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _monitor(args: argparse.Namespace, stop: threading.Event) -> int:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    colour = args.colour == "always" or (args.colour == "auto" and colour_wanted(sys.stdout))
    display = Display(sys.stdout, colour)
    recorder: CsvRecorder | None = None
    if args.output is not None:
        try:
            recorder = CsvRecorder(args.output, int(args.max_size * 2**20), args.backups)
        except OSError as exc:
            print(f"error: cannot write to {args.output}: {exc}", file=sys.stderr)
            return 2
    stats = MetricStats()
    senders = SenderStates()
    wanted = None if args.metrics is None else {m.upper() for m in args.metrics}

    def on_log(message: CMDP1Log) -> None:
        display.log(message)
        if recorder is not None:
            recorder.log(message, senders.run_id(message.sender))

    def on_metric(message: CMDP1Metric) -> None:
        if message.name == "RUN_ID":
            senders.run_id(message.sender, message.value)
        if message.name == "STATE":
            change = senders.state(message.sender, message.value)
            if change is not None:
                display.state(change, to_datetime(message.time))
        if wanted is None or (wanted and message.name not in wanted):
            return  # followed for ourselves only
        sample = stats.add(message)
        if message.name != "STATE":  # shown as state lines
            display.metric(sample)
        if recorder is not None:
            recorder.metric(sample, senders.run_id(message.sender))

    def on_peer(name: str, connected: bool) -> None:
        display.peer(name, connected)
        if not connected:
            stats.forget(name)
            senders.forget(name)

    try:
        listener = MonitoringListener(
            args.group,
            args.interface,
            discovery=args.discovery,
            level=args.level,
            log_topics=args.topic,
            metrics=_subscribed(args.metrics),
            on_log=on_log,
            on_metric=on_metric,
            on_notification=display.notification,
            on_peer=on_peer,
            max_message_size=args.settings.max_message_size,
        )
    except (DiscoveryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if recorder is not None:
            recorder.close()
        return 2
    logs = "off" if args.level == "OFF" else f">= {args.level}"
    if args.topic:
        logs += f" ({', '.join(args.topic).upper()})"
    metrics = "none" if args.metrics is None else (", ".join(args.metrics).upper() or "all")
    where = f", writing to {args.output}" if args.output is not None else ""
    display.info(
        f"Monitoring group '{args.group}': logs {logs}, metrics: {metrics}{where}. Ctrl-C to stop."
    )
    try:
        while not stop.wait(0.2) and not display.broken:
            pass
    finally:
        listener.close()
        if recorder is not None:
            recorder.close()
    return 0


def _subscribed(metrics: list[str] | None) -> list[str]:
    """What to subscribe: the user's metrics (``[]``: all) plus the ones we follow."""
    if metrics is not None and not metrics:
        return []
    return sorted({*(m.upper() for m in metrics or ()), *FOLLOWED})


if __name__ == "__main__":
    raise SystemExit(main())
