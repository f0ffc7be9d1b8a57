"""Assembly layer: the shared satellite launcher behind every ``Satellite<Type>`` command.

Parses the standard flags and the ``CONSTELLATION_*`` environment knobs (a malformed one is
refused before anything starts, naming the variable), applies the process-wide tuning (console
log levels, malloc thresholds, garbage-collector relief while data flows: only launched
processes get it, never a library user), starts the satellite with the knobs passed in
explicitly and keeps it alive until ``shutdown`` or SIGINT/SIGTERM. A signal in ORBIT or RUN
first interrupts the satellite (so a running run is stopped and its end-of-run sent), then
withdraws the announcements.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from constellation import CODENAME, __version__
from constellation.core.environment import ProcessSettings
from constellation.errors import BindError, ConfigError, DuplicateNameError
from constellation.net.monitoring import STATUS, TRACE
from constellation.satellite import Satellite
from constellation.terminal import LogLineHandler

__all__ = [
    "LEVELS",
    "add_network_arguments",
    "apply_process_tuning",
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


#: How long a satellite started from the command line asks whether its name is taken.
NAME_CHECK_TIMEOUT = 0.5


def default_name() -> str:
    """The host name made valid as a satellite name (``^\\w+$``)."""
    return re.sub(r"\W", "_", socket.gethostname()) or "satellite"


def setup_logging(level: str) -> None:
    """Console logging at ``level`` (TRACE ... CRITICAL), coloured on a terminal."""
    handler = LogLineHandler(level=LEVELS[level.upper()])
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(TRACE)
    for noisy in ("zeroconf", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def apply_process_tuning(settings: ProcessSettings) -> None:
    """Process-wide tuning of a launched satellite: malloc thresholds (unless
    ``CONSTELLATION_MALLOC_TUNING=0``) and the garbage-collector relief of the data path."""
    from constellation.net.process_tuning import gc_relief, tune_allocator

    if settings.malloc_tuning:
        tune_allocator()
    gc_relief.enable()


def level_type(*extra: str) -> Callable[[str], str]:
    """An argparse type accepting a log level name (TRACE ... CRITICAL, plus ``extra``)."""
    choices = (*LEVELS, *extra)

    def parse(text: str) -> str:
        if text.upper() not in choices:
            raise argparse.ArgumentTypeError(f"level must be one of {', '.join(choices)}")
        return text.upper()

    return parse


class _InterfaceAction(argparse.Action):
    """``-i``: append an interface name or address, checked now (one clean line, exit 2)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from constellation.errors import DiscoveryError
        from constellation.net.interfaces import resolve_interfaces

        try:
            resolve_interfaces([str(values)])
        except DiscoveryError as exc:
            parser.exit(2, f"{parser.prog}: error: {option_string} {values}: {exc}\n")
        current = getattr(namespace, self.dest, None) or []
        setattr(namespace, self.dest, [*current, str(values)])


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every command shares: ``-g/--group``, ``-i/--interface``, ``--discovery``."""
    parser.add_argument("-g", "--group", required=True, help="constellation group")
    parser.add_argument(
        "-i",
        "--interface",
        action=_InterfaceAction,
        default=None,
        help="interface name or IPv4 address to use (repeatable; all interfaces if not given)",
    )
    parser.add_argument(
        "--discovery",
        choices=["mdns", "chirp", "both"],
        default="mdns",
        help="discovery backend",
    )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` showing each option's default (unless it has none) and the epilog as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, argparse.SUPPRESS, False):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            text += " (default: %(default)s)"
        return text


def build_parser(
    type_name: str, data_port: bool = False, epilog: str | None = None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"Satellite{type_name}",
        description=f"Run a {type_name} satellite.",
        epilog=epilog,
        formatter_class=HelpFormatter,
    )
    add_network_arguments(parser)
    parser.add_argument("-n", "--name", default=default_name(), help="satellite name")
    parser.add_argument(
        "-l", "--level", type=level_type(), default="INFO", help="console log level"
    )
    parser.add_argument(
        "--name-check",
        type=float,
        default=NAME_CHECK_TIMEOUT,
        metavar="SECONDS",
        help="how long to ask the group whether the name is taken before starting (0: do not)",
    )
    for flags, what in (
        (("--cmd-port", "--command-port"), "command (CSCP)"),
        (("--hb-port", "--heartbeat-port"), "heartbeat (CHP)"),
        (("--mon-port", "--monitoring-port"), "monitoring (CMDP)"),
        *((("--data-port", "--cdtp-port"), "data (CDTP)"),) * data_port,
    ):
        parser.add_argument(
            *flags, type=int, default=0, metavar="PORT", help=f"{what} port; 0 = any free port"
        )
    parser.add_argument(
        "--version",
        action="version",
        version=f"Satellite{type_name} {__version__} (constellation-py {__version__} {CODENAME})",
    )
    return parser


def launcher_settings(prefix: str = "") -> ProcessSettings | None:
    """The ``CONSTELLATION_*`` knobs of this process, read by a launcher (library code never
    reads them); None after printing ``<prefix>error: <reason>`` for a malformed one."""
    try:
        return ProcessSettings.from_environ(os.environ)
    except ConfigError as exc:
        print(f"{prefix}error: {exc.reason}", file=sys.stderr)
        return None


def _start_error(exc: DuplicateNameError | BindError, args: argparse.Namespace) -> str:
    """One line: ``--cmd-port 8765: address already in use`` for a port that cannot be bound."""
    if isinstance(exc, BindError):
        dest = f"{exc.service}_port"  # the launcher option of that service's port
        return f"--{dest.replace('_', '-')} {getattr(args, dest, exc.port)}: {exc.reason}"
    return str(exc)


def run_satellite(cls: type[Satellite], argv: Sequence[str] | None = None) -> int:
    """Entry point used by every ``Satellite<Type>`` console script."""
    from constellation.transmitter import TransmitterSatellite

    settings = launcher_settings(f"Satellite{cls.__name__}: ")  # first: --help builds it
    if settings is None:
        return 2
    is_transmitter = issubclass(cls, TransmitterSatellite)
    words = sys.argv[1:] if argv is None else list(argv)
    epilog = None
    if "-h" in words or "--help" in words:  # describing builds the object: only when asked
        from constellation.describe import describe, help_text

        epilog = help_text(describe(cls))
    args = build_parser(cls.__name__, is_transmitter, epilog).parse_args(argv)
    setup_logging(args.level)
    apply_process_tuning(settings)
    kwargs: dict[str, Any] = {
        "settings": settings,
        "interfaces": args.interface,
        "cmd_port": args.cmd_port,
        "hb_port": args.hb_port,
        "mon_port": args.mon_port,
        "discovery": args.discovery,
        "name_check": args.name_check,
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

    previous = signal.signal(signal.SIGINT, on_signal), signal.signal(signal.SIGTERM, on_signal)
    try:
        satellite.start()
    except (DuplicateNameError, BindError) as exc:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        print(f"Satellite{cls.__name__}: error: {_start_error(exc, args)}", file=sys.stderr)
        return 2
    # Route framework logs of this process to the network as well.
    if satellite._log_handler is not None:
        logging.getLogger("constellation").addHandler(satellite._log_handler)
    while not satellite.wait_for_shutdown(0.5):
        pass
    if stop.is_set():  # interrupt to SAFE and close within TERMINATE_TIMEOUT s
        satellite.terminate("process received a termination signal", TERMINATE_TIMEOUT)
    satellite.close()
    # The process is on its way out. Python resets its own handlers to the default while it
    # finalizes, so a SIGTERM arriving now (e.g. a supervisor's, just after `shutdown`) would
    # kill it with -15; ignored instead, the exit code stays 0.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return 0
