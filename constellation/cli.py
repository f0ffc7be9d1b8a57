"""Assembly layer: the shared satellite launcher behind every ``Satellite<Type>`` command.

Parses the standard flags, sets up console logging, starts the satellite and keeps it alive
until ``shutdown`` or SIGINT/SIGTERM. A signal in ORBIT or RUN first interrupts the satellite
(so a running run is stopped and its end-of-run sent), then withdraws the announcements.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from constellation import CODENAME, __version__
from constellation.net.monitoring import STATUS, TRACE
from constellation.satellite import Satellite

__all__ = [
    "LEVELS",
    "add_network_arguments",
    "build_parser",
    "default_name",
    "level_type",
    "run_satellite",
    "setup_logging",
]

#: After SIGINT/SIGTERM the process exits within this many seconds, even if a hook hangs.
TERMINATE_TIMEOUT = 3.5

LEVELS = {
    "TRACE": TRACE,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "STATUS": STATUS,
    "CRITICAL": logging.CRITICAL,
}

_COLOURS = {
    TRACE: "\033[2m",
    logging.DEBUG: "\033[2m",
    logging.INFO: "",
    logging.WARNING: "\033[33m",
    STATUS: "\033[32m",
    logging.ERROR: "\033[31m",
    logging.CRITICAL: "\033[1;31m",
}


def default_name() -> str:
    """The host name made valid as a satellite name (``^\\w+$``)."""
    return re.sub(r"\W", "_", socket.gethostname()) or "satellite"


class _ConsoleFormatter(logging.Formatter):
    def __init__(self, colour: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%H:%M:%S")
        self._colour = colour

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self._colour:
            return text
        return f"{_COLOURS.get(record.levelno, '')}{text}\033[0m"


def setup_logging(level: str) -> None:
    """Console logging at ``level`` (TRACE ... CRITICAL), coloured on a terminal."""
    handler = logging.StreamHandler()
    handler.setFormatter(_ConsoleFormatter(sys.stderr.isatty()))
    handler.setLevel(LEVELS[level.upper()])
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(TRACE)
    for noisy in ("zeroconf", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def level_type(*extra: str) -> Callable[[str], str]:
    """An argparse type accepting a log level name (TRACE ... CRITICAL, plus ``extra``)."""
    choices = (*LEVELS, *extra)

    def parse(text: str) -> str:
        if text.upper() not in choices:
            raise argparse.ArgumentTypeError(f"level must be one of {', '.join(choices)}")
        return text.upper()

    return parse


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every command shares: ``-g/--group``, ``-i/--interface``, ``--discovery``."""
    parser.add_argument("-g", "--group", required=True, help="constellation group")
    parser.add_argument(
        "-i",
        "--interface",
        action="append",
        default=None,
        help="interface name or IPv4 address to use (repeatable; default: all)",
    )
    parser.add_argument(
        "--discovery",
        choices=["mdns", "chirp", "both"],
        default="mdns",
        help="discovery backend (default: mdns)",
    )


def build_parser(type_name: str, data_port: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"Satellite{type_name}", description=f"Run a {type_name} satellite."
    )
    add_network_arguments(parser)
    parser.add_argument("-n", "--name", default=default_name(), help="satellite name")
    parser.add_argument(
        "-l", "--level", type=level_type(), default="INFO", help="console log level"
    )
    parser.add_argument("--cmd-port", "--command-port", type=int, default=0)
    parser.add_argument("--hb-port", "--heartbeat-port", type=int, default=0)
    parser.add_argument("--mon-port", "--monitoring-port", type=int, default=0)
    if data_port:
        parser.add_argument("--data-port", "--cdtp-port", type=int, default=0)
    parser.add_argument(
        "--version",
        action="version",
        version=f"Satellite{type_name} {__version__} (constellation-py {__version__} {CODENAME})",
    )
    return parser


def run_satellite(cls: type[Satellite], argv: Sequence[str] | None = None) -> int:
    """Entry point used by every ``Satellite<Type>`` console script."""
    from constellation.transmitter import TransmitterSatellite

    is_transmitter = issubclass(cls, TransmitterSatellite)
    args = build_parser(cls.__name__, data_port=is_transmitter).parse_args(argv)
    setup_logging(args.level)
    kwargs: dict[str, Any] = {
        "interfaces": args.interface,
        "cmd_port": args.cmd_port,
        "hb_port": args.hb_port,
        "mon_port": args.mon_port,
        "discovery": args.discovery,
    }
    if is_transmitter:
        kwargs["data_port"] = args.data_port
    try:
        satellite = cls(args.name, args.group, **kwargs)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        satellite.log.log(STATUS, "received %s, shutting down", signal.Signals(signum).name)
        stop.set()
        satellite.request_shutdown()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    satellite.start()
    # Route framework logs of this process to the network as well.
    if satellite._log_handler is not None:
        logging.getLogger("constellation").addHandler(satellite._log_handler)
    while not satellite.wait_for_shutdown(0.5):
        pass
    if stop.is_set():  # interrupt to SAFE and close within TERMINATE_TIMEOUT s
        satellite.terminate("process received a termination signal", TERMINATE_TIMEOUT)
    satellite.close()
    return 0
