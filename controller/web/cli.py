"""``MissionControl``: the group's run control, logs, metrics and data on one web page.

``MissionControl -g GROUP [-c run.toml] [-i IFACE] [--host 127.0.0.1] [--port 8080]
[--operator-token T] [--data-dir DIR]`` serves the page until Ctrl-C; see docs/missioncontrol.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="MissionControl",
        description="Web page to control and watch one Constellation group.",
    )
    parser.add_argument("-g", "--group", required=True, help="group to control")
    parser.add_argument("-c", "--config", type=Path, help="default run configuration file")
    parser.add_argument(
        "--config-dir", type=Path, help="directory of configuration files offered (default: -c's)"
    )
    parser.add_argument("-i", "--interface", help="network interface or address to use")
    parser.add_argument(
        "--discovery", choices=("mdns", "chirp", "both"), default="mdns", help="discovery backend"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the web server binds")
    parser.add_argument("--port", type=int, default=8080, help="port of the web server")
    parser.add_argument(
        "--operator-token",
        default=os.environ.get("MISSIONCONTROL_TOKEN"),
        help="token operators enter to send commands (default: commands from 127.0.0.1 only)",
    )
    parser.add_argument("--data-dir", type=Path, help="run catalog directory (runs panel)")
    parser.add_argument(
        "--no-live", action="store_true", help="do not read the live data tap (Live data panel)"
    )
    parser.add_argument("--log-level", default="INFO", help="lowest log level followed")
    parser.add_argument("--run-prefix", default="run", help="run ids are PREFIX_N")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.config is not None and not args.config.is_file():
        print(f"error: configuration file {args.config} not found", file=sys.stderr)
        return 2
    import uvicorn

    from constellation.cli import launcher_settings
    from constellation.errors import DiscoveryError
    from controller.web.actions import Actions
    from controller.web.app import create_app
    from controller.web.backend import Backend
    from controller.web.live_source import LiveSource
    from controller.web.runs_source import RunsSource

    settings = launcher_settings()  # the launcher alone reads the CONSTELLATION_* knobs
    if settings is None:
        return 2
    try:
        backend = Backend(
            args.group,
            args.interface,
            discovery=args.discovery,
            log_level=args.log_level.upper(),
            run_prefix=args.run_prefix,
            settings=settings,
        )
    except (DiscoveryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    actions = Actions(backend, args.config, args.config_dir)
    live = LiveSource(
        args.group,
        args.interface,
        backend.hub.publish,
        discovery=args.discovery,
        on_eor=backend.on_eor,
    )
    if args.no_live:
        live.disable("live data: off (MissionControl started with --no-live)")
    backend.on_receivers = live.want  # the reader runs while the group has receivers
    live.want(len(backend.receivers))
    runs = RunsSource(args.data_dir)
    app = create_app(backend, actions, token=args.operator_token, runs=runs, live=live)
    print(f"MissionControl for group '{args.group}' on http://{args.host}:{args.port}/", flush=True)
    try:
        # Open event streams never end by themselves: give them 2 s when stopping.
        config = uvicorn.Config(
            app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2
        )
        _server(config).run()
    finally:
        live.close()
        runs.close()
        actions.close()
        backend.close()
    return 0


def _server(config: Any) -> Any:
    """uvicorn's server, stopping on SIGINT/SIGTERM without re-raising the signal afterwards
    (so that MissionControl closes its connections and exits with 0)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {
                sig: signal.signal(sig, lambda s, f: self.handle_exit(s, None))
                for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)


if __name__ == "__main__":
    raise SystemExit(main())
