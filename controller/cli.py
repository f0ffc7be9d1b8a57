"""Controller layer: the ``Controller`` command.

``Controller -g GROUP [-c CONFIG] [-i IFACE]`` opens the interactive console;
``Controller -g GROUP status`` prints the status table; ``Controller -g GROUP -c CONFIG run
RUN_ID --duration S`` runs one run from wherever the group is to INIT again;
``Controller -g GROUP -c CONFIG scan SCAN_FILE`` runs a parameter scan. Exit codes: 0 success,
1 a satellite failed or a step timed out, 2 bad arguments or configuration, 130 cancelled with
Ctrl-C (after stopping the run cleanly). An ``--until`` (or scan ``until``) metric no satellite
declares, or a satellite not in the group, is refused with 2 before anything is sent.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from constellation import __version__
from constellation.cli import (
    HelpFormatter,
    add_network_arguments,
    default_name,
    launcher_settings,
    level_type,
    setup_logging,
)
from constellation.errors import ConfigError
from constellation.protocol.common import validate_run_id
from constellation.terminal import colour_wanted
from controller.config import ControllerConfig, config_warnings, load_config
from controller.controller import Controller
from controller.group import GroupView
from controller.progress import (
    RUN_METRICS,
    Progress,
    ReceiverSummary,
    receiver_summaries,
    run_counts,
)
from controller.progress import clock as _clock
from controller.runs import Cancelled, RunControl, RunError, Until
from controller.scan import Scan, ScanError, load_scan
from controller.telemetry import MetricWatcher
from controller.until_check import UntilVerdict, verify_until

__all__ = ["EXIT_CANCELLED", "EXIT_FAILED", "EXIT_USAGE", "Progress", "build_parser", "main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``Controller`` command."""
    parser = argparse.ArgumentParser(
        prog="Controller",
        description="Steer a constellation: interactive console (no command), status, run, scan.",
        formatter_class=HelpFormatter,
    )
    add_network_arguments(parser)
    parser.add_argument("-c", "--config", help="configuration file (TOML or YAML)")
    parser.add_argument(
        "-l", "--level", type=level_type(), default="WARNING", help="console log level"
    )
    parser.add_argument("--name", help="controller name (default: Controller.<host>_<pid>)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds allowed per transition (default 30)"
    )
    parser.add_argument(
        "--discovery-timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the expected satellites (default 5)",
    )
    parser.add_argument("--version", action="version", version=f"Controller {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    console = commands.add_parser("console", help="interactive console (the default)")
    console.add_argument("--simple", action="store_true", help="use the stdlib console, no IPython")
    console.add_argument("--wait", type=int, default=0, metavar="N", help="wait for N satellites")

    status = commands.add_parser("status", help="print the satellites and their states")
    status.add_argument("--wait", type=int, default=0, metavar="N", help="wait for N satellites")

    run = commands.add_parser("run", help="initialize if needed, launch, start, wait, stop, land")
    run.add_argument("run_id", help="run identifier (^[\\w-]+$)")
    run.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    run.add_argument("--until", metavar="METRIC>=VALUE", help="stop when a metric reaches a value")
    run.add_argument("--no-land", action="store_true", help="stay in ORBIT after the run")
    run.add_argument("--wait", type=int, default=0, metavar="N", help="wait for N satellites")

    scan = commands.add_parser("scan", help="run a parameter scan from a TOML/YAML scan file")
    scan.add_argument("scan_file", help="scan file")
    scan.add_argument("--wait", type=int, default=0, metavar="N", help="wait for N satellites")
    return parser


def _parse_until(text: str) -> Until:
    metric, sep, value = text.partition(">=")
    satellite = None
    if "/" in metric:
        satellite, _, metric = metric.rpartition("/")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or not metric.strip() or number != number:
        raise ValueError(f"--until must read [Type.Name/]METRIC>=VALUE, not {text!r}")
    return Until(metric.strip(), number, satellite.strip() if satellite else None)


class _Interrupts:
    """First Ctrl-C sets ``cancel`` (the run is stopped cleanly), the second one aborts."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self._previous: Any = None
        self._count = 0

    def __enter__(self) -> _Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self._count += 1
        if self._count > 1:
            raise KeyboardInterrupt
        self.cancel.set()
        print("\nCtrl-C: stopping cleanly (press Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def _discover(
    view: GroupView, config: ControllerConfig | None, args: argparse.Namespace, quick: bool = False
) -> None:
    """Wait for the configured satellites and ``--wait N`` ones, then for discovery to settle.

    ``quick`` (the console) caps the wait at 3 s when nothing in particular is expected.
    """
    expected = config.satellites() if config is not None else []
    count = getattr(args, "wait", 0)
    if expected or count:
        view.discover(expected, count, timeout=args.discovery_timeout)
    elif quick:
        view.discover(timeout=min(3.0, args.discovery_timeout))
        return
    view.discover(timeout=args.discovery_timeout if not view.names else 1.0)


def _warn(config: ControllerConfig | None, view: GroupView) -> None:
    if config is not None:
        for warning in config_warnings(config, view.names):
            print(f"warning: {warning}", file=sys.stderr)


def _report_failure(exc: RunError, view: GroupView) -> None:
    print(f"FAILED: {exc}", file=sys.stderr)
    for line in failure_lines(exc.failures):
        print(f"  {line}", file=sys.stderr)
    print(view.table(), file=sys.stderr)


def failure_lines(failures: dict[str, str]) -> list[str]:
    """The root causes first, in full; then the satellites that only reacted to them.

    A failure whose text names another failed satellite (an interrupt to SAFE because a peer
    failed, a receiver missing its transmitter) is a reaction: shown as ``STATE (reacted to X)``
    instead of repeating the cause's text.
    """
    causes, reactions = [], []
    for name, what in sorted(failures.items()):
        others = [o for o in sorted(failures) if o != name and o.lower() in what.lower()]
        if others:
            state = what.split(":", 1)[0]
            reactions.append(f"{name}: {state} (reacted to {', '.join(others)})")
        else:
            causes.append(f"{name}: {what}")
    return causes + reactions


def _cmd_status(ctl: Controller, view: GroupView, args: argparse.Namespace) -> int:
    print(view.table(colour=colour_wanted(sys.stdout)))
    if args.wait and len(view.names) < args.wait:
        print(f"only {len(view.names)} of {args.wait} satellites found", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _cmd_run(
    ctl: Controller,
    view: GroupView,
    config: ControllerConfig | None,
    args: argparse.Namespace,
    watcher: MetricWatcher,
) -> int:
    cancel = threading.Event()
    progress = Progress(sys.stdout, args.run_id)

    def say(text: str) -> None:
        progress.say(text)

    control = RunControl(ctl, view, timeout=args.timeout, cancel=cancel, log=say)
    began = time.monotonic()
    with _Interrupts(cancel):
        try:
            reason = control.run(
                args.run_id, config, args.duration, args.until, watcher, progress, not args.no_land
            )
        except RunError as exc:
            progress.done()
            final = control.recover(land=isinstance(exc, Cancelled) and not args.no_land)
            if isinstance(exc, Cancelled):
                print(f"cancelled; final states: {_states(final)}", file=sys.stderr)
                return EXIT_CANCELLED
            _report_failure(exc, view)
            return EXIT_FAILED
    progress.done()
    if reason == "cancelled":  # Ctrl-C while holding: stop (and land) went through
        print(f"run {args.run_id} stopped by Ctrl-C after {_clock(time.monotonic() - began)}")
        return EXIT_CANCELLED
    receivers = _await_conditions(watcher)
    counts = "  ".join(run_counts(watcher).words()) or "no record counters seen"
    elapsed = _clock(time.monotonic() - began)
    print(f"run {args.run_id} done ({reason}, {elapsed}): {counts}")
    for receiver in receivers:
        print(f"  {receiver}")
    print(f"final states: {_states(control.poll_states())}")
    bad = [r for r in receivers if r.condition is not None and not r.good]
    if bad:
        names = ", ".join(f"{r.name} {r.condition}" for r in bad)
        print(f"FAILED: run condition not GOOD: {names}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _await_conditions(watcher: MetricWatcher, timeout: float = 3.0) -> list[ReceiverSummary]:
    """The receivers' summaries once each reported its run condition (at most ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        receivers = receiver_summaries(watcher)
        remaining = deadline - time.monotonic()
        if all(r.condition is not None for r in receivers) or remaining <= 0:
            return receivers
        watcher.wait(min(remaining, 0.2))


def _cmd_scan(
    ctl: Controller,
    view: GroupView,
    config: ControllerConfig | None,
    args: argparse.Namespace,
    watcher: MetricWatcher,
) -> int:
    scan: Scan = args.scan
    cancel = threading.Event()
    progress = Progress(sys.stdout, "")

    def show(elapsed: float, duration: float | None, metrics: MetricWatcher | None) -> None:
        progress.label = view.current_run() or "run"
        progress(elapsed, duration, metrics)

    def say(text: str) -> None:
        progress.say(text)

    with _Interrupts(cancel):
        try:
            results = scan.run(
                ctl,
                config,
                timeout=args.timeout,
                cancel=cancel,
                log=say,
                progress=show,
                view=view,
                watcher=watcher,
            )
        except ScanError as exc:
            progress.done()
            print(f"{len([r for r in exc.results if r.ok])} of {len(scan.steps())} steps done")
            for result in exc.results:
                print(f"  {result}")
            print(f"group left in: {_states(exc.states)}", file=sys.stderr)
            if isinstance(exc.__cause__, Cancelled):
                return EXIT_CANCELLED
            _report_failure(exc, view)
            return EXIT_FAILED
    progress.done()
    print(f"scan done: {len(results)} runs")
    for result in results:
        print(f"  {result}")
    return 0


def _check_inputs(args: argparse.Namespace) -> str | None:
    """Validate the command's own inputs before going on the network; an error text or None."""
    try:
        if args.command == "run":
            validate_run_id(args.run_id)
            args.until = _parse_until(args.until) if args.until else None
            args.metrics = (*RUN_METRICS, *((args.until.metric,) if args.until else ()))
        elif args.command == "scan":
            args.scan = load_scan(args.scan_file)
            until = args.scan.until
            args.metrics = (*RUN_METRICS, *((until.metric,) if until else ()))
    except (ValueError, ConfigError) as exc:
        return str(exc)
    return None


def _states(states: dict[str, str]) -> str:
    return ", ".join(f"{n} {s}" for n, s in sorted(states.items())) or "no satellites"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``Controller`` console script."""
    args = build_parser().parse_args(argv)
    settings = launcher_settings()  # the launcher alone reads the CONSTELLATION_* knobs
    if settings is None:
        return EXIT_USAGE
    setup_logging(args.level)
    config: ControllerConfig | None = None
    try:
        if args.config:
            config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = _check_inputs(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    name = args.name or f"Controller.{default_name()}_{os.getpid()}"
    try:
        ctl = Controller(args.group, args.interface, args.discovery, name=name, settings=settings)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    view = GroupView(ctl)
    try:
        return _dispatch(ctl, view, config, args)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        view.close()
        ctl.close()


def _dispatch(
    ctl: Controller, view: GroupView, config: ControllerConfig | None, args: argparse.Namespace
) -> int:
    command = args.command or "console"
    if command == "console":
        _discover(view, config, args, quick=True)
        _warn(config, view)
        if view.names:
            print(view.table(colour=colour_wanted(sys.stdout)))
        from controller.console import run_console

        run_console(ctl, view, config, use_ipython=not getattr(args, "simple", False))
        return 0
    if command == "status":
        _discover(view, config, args)
        return _cmd_status(ctl, view, args)
    # Subscribe to the metrics first: browsing for monitoring services takes a moment.
    with MetricWatcher(ctl, args.metrics) as watcher:
        _discover(view, config, args)
        _warn(config, view)
        if not view.names:
            print(f"FAILED: no satellites found in group {ctl.group}", file=sys.stderr)
            return EXIT_FAILED
        until = args.until if command == "run" else args.scan.until
        what = "--until" if command == "run" else f"{args.scan_file}: until"
        verdict = verify_until(ctl, view.names, until, what) if until else UntilVerdict()
        if verdict.warning:
            print(f"warning: {verdict.warning}", file=sys.stderr)
        if verdict.error:
            print(f"error: {verdict.error}", file=sys.stderr)
            return EXIT_USAGE
        if command == "run":
            return _cmd_run(ctl, view, config, args, watcher)
        return _cmd_scan(ctl, view, config, args, watcher)


if __name__ == "__main__":
    raise SystemExit(main())
