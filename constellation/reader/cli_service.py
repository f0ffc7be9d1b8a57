"""``constellation-h5 serve`` and ``constellation-h5 catalog``: the data service and its catalog.

::

    constellation-h5 serve data/ [--host 127.0.0.1] [--port 8000] [--token T] [-g GROUP -i IFACE]
    constellation-h5 catalog data/ [--where condition=GOOD --where text=beam] [--json]
    constellation-h5 catalog data/ --comment RUN TEXT
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any

from constellation.cli import HelpFormatter
from constellation.errors import UsageError
from constellation.terminal import make_console, plain_table

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve run files over HTTP (read-only)", formatter_class=HelpFormatter
    )
    serve.add_argument("directory", type=Path, help="directory of run files")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    serve.add_argument("--token", help="require this token (Authorization: Bearer T)")
    serve.add_argument("-g", "--group", help="announce the service in this group over mDNS")
    serve.add_argument("-i", "--interface", help="interface or address to announce on")
    serve.set_defaults(entry=_serve)
    catalog = commands.add_parser(
        "catalog", help="list and search the run catalog", formatter_class=HelpFormatter
    )
    catalog.add_argument("directory", type=Path, help="directory of run files")
    catalog.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="condition=, since=, until=, text=, growing= (repeatable)",
    )
    catalog.add_argument(
        "--comment",
        nargs=2,
        metavar=("RUN", "TEXT"),
        help="set the operator comment of run RUN (an empty TEXT removes it)",
    )
    catalog.add_argument("--limit", type=int, default=50, help="rows to show (0 = all)")
    catalog.add_argument("--json", action="store_true", help="print JSON rows")
    catalog.set_defaults(entry=_catalog)


def parse_where(items: list[str]) -> dict[str, str]:
    where = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--where {item!r}: expected KEY=VALUE")
        where[key.strip()] = value.strip()
    return where


def _catalog(args: argparse.Namespace) -> int:
    from constellation.service.catalog import RunCatalog

    with RunCatalog(args.directory) as catalog:
        catalog.refresh()
        if args.comment:
            return _set_comment(catalog, *args.comment)
        rows = catalog.runs(limit=args.limit or None, where=parse_where(args.where))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [
        [
            r["run_id"],
            r["file"],
            r["start"] or "-",
            r["condition"] or ("growing" if r["growing"] else "-"),
            ", ".join(f"{s} {n}" for s, n in r["senders"].items()) or "-",
            r["error"] or r["comment"] or "",
        ]
        for r in rows
    ]
    headers = ["run", "file", "start", "condition", "senders", "error / comment"]
    make_console(sys.stdout).print(plain_table(headers, table))
    return 0


def _set_comment(catalog: Any, run_id: str, text: str) -> int:
    """Set or remove one run's comment; UsageError for a run the catalog does not list."""
    if catalog.run(run_id) is None:
        raise UsageError(f"no run {run_id!r} in the catalog")
    catalog.set_comment(run_id, text.strip())
    print(f"{run_id}: comment {'set' if text.strip() else 'removed'}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from constellation.service.app import create_app

    app = create_app(args.directory, token=args.token)
    with socket.socket() as probe:  # bind first: the announced port is the real one
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            ) from exc
        port = probe.getsockname()[1]
    announcement = None
    if args.group:
        from constellation.errors import DiscoveryError
        from constellation.net.interfaces import resolve_interfaces
        from constellation.service.announce import Announcement

        try:
            addresses = resolve_interfaces([args.interface] if args.interface else [args.host])
        except DiscoveryError as exc:
            option = f"-i {args.interface}" if args.interface else f"--host {args.host}"
            raise UsageError(f"{option}: {exc}") from exc
        address = (addresses or [args.host])[0]
        announcement = Announcement(
            args.group, f"DataService.{socket.gethostname()}", address, port
        )
    print(f"serving {args.directory} on http://{args.host}:{port}", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=port, log_level="warning")
    finally:
        if announcement is not None:
            announcement.close()
    return 0
