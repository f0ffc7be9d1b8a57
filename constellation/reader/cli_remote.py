"""``constellation-h5 remote``: browse, show, download and follow runs of a data service.

::

    constellation-h5 remote [--server URL | --profile NAME] runs
    constellation-h5 remote ls RUN | info RUN[/SENDER] | show RUN/SENDER[a:b]
    constellation-h5 remote download RUN [-o DIR] | follow RUN/SENDER

Profiles (URL and token) come from ``~/.config/constellation/data.toml`` (or the file named by
``CONSTELLATION_DATA_CONFIG``); see docs/data-service.md. Downloads go to ``<file>.part``,
resume from its length (``Range`` with ``If-Range``), and are verified against the catalog's
sha256 before being renamed (a growing run has none: its prefix stays the ``.part``); the body
is written in large reads (:mod:`constellation.reader.fetch`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx

from constellation.cli import HelpFormatter
from constellation.errors import InputFileError, UsageError
from constellation.reader.export import to_json

__all__ = ["INCOMPLETE", "add_commands", "load_profile"]

#: Exit status of ``download`` for a growing run: the prefix stays in ``<file>.part``.
INCOMPLETE = 3

_CONFIG = Path("~/.config/constellation/data.toml")
_SHOW = re.compile(r"^(?P<run>[^/\[]+)/(?P<sender>[^\[]+)(\[(?P<a>\d*):(?P<b>\d*)\])?$")


def load_profile(name: str | None, path: Path | None = None) -> dict[str, Any]:
    """``{"url": ..., "token": ...}`` of profile ``name`` (or the file's ``default``)."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    path = path or Path(os.environ.get("CONSTELLATION_DATA_CONFIG", _CONFIG)).expanduser()
    try:
        config = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"no --server given and no profile file {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"profile file {path}: {exc}") from exc
    name = name or config.get("default")
    profiles = config.get("profiles", {})
    if not name or name not in profiles:
        raise UsageError(f"no profile {name!r} in {path} (profiles: {', '.join(profiles)})")
    profile = dict(profiles[name])
    if "url" not in profile:
        raise UsageError(f"profile {name!r} in {path} has no url")
    return profile


def add_commands(commands: Any) -> None:
    remote = commands.add_parser(
        "remote",
        help="runs of a data service (constellation-h5 serve)",
        formatter_class=HelpFormatter,
    )
    remote.add_argument("--server", help="service URL, e.g. http://127.0.0.1:8000")
    remote.add_argument("--profile", help="profile in ~/.config/constellation/data.toml")
    remote.add_argument("--token", help="token (overrides the profile's)")
    sub = remote.add_subparsers(dest="action", required=True)
    sub.add_parser("runs", help="list the runs")
    sub.add_parser("ls", help="senders of a run").add_argument("run")
    sub.add_parser("info", help="details of RUN or RUN/SENDER").add_argument("target")
    sub.add_parser("show", help="records of RUN/SENDER[a:b]").add_argument("target")
    download = sub.add_parser("download", help="download a run file (resumable)")
    download.add_argument("run")
    download.add_argument("-o", "--output", type=Path, default=Path("."), help="directory")
    download.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub.add_parser("follow", help="print records as written").add_argument("target")
    remote.set_defaults(entry=_remote)


def _remote(args: argparse.Namespace) -> int:
    if args.server:
        profile: dict[str, Any] = {"url": args.server}
    else:
        profile = load_profile(args.profile)
    token = args.token or profile.get("token")
    url = str(profile["url"]).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        handler = globals()[f"_do_{args.action}"]
        try:
            return int(handler(client, url, token, args))
        except httpx.HTTPError as exc:
            raise InputFileError(url, f"cannot reach the data service: {exc}") from exc


def _get(client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    reply = client.get(path, **kwargs)
    if reply.status_code >= 400:
        try:
            message = reply.json().get("error", reply.text)
        except ValueError:
            message = reply.text[:200]
        raise InputFileError(str(reply.url), f"HTTP {reply.status_code}: {message}")
    return reply


def _do_runs(client: httpx.Client, url: str, token: str | None, args: argparse.Namespace) -> int:
    from constellation.terminal import make_console, plain_table

    rows = _get(client, "/api/runs").json()
    table = [
        [
            r["run_id"],
            r["records"],
            r["condition"] or ("growing" if r["growing"] else "-"),
            r["size"],
            r["error"] or "",
        ]
        for r in rows
    ]
    make_console(sys.stdout).print(
        plain_table(["run", "records", "condition", "bytes", "error"], table)
    )
    return 0


def _do_ls(client: httpx.Client, url: str, token: str | None, args: argparse.Namespace) -> int:
    info = _get(client, f"/api/runs/{args.run}").json()
    for sender, detail in info.get("senders_detail", {}).items():
        print(f"{sender}\t{detail['records']} records\t{detail['layout']}")
    return 0


def _do_info(client: httpx.Client, url: str, token: str | None, args: argparse.Namespace) -> int:
    run, _, sender = args.target.partition("/")
    info = _get(client, f"/api/runs/{run}").json()
    if sender:
        details = info.get("senders_detail", {})
        if sender not in details:
            raise KeyError(f"no sender {sender!r} in run {run} (senders: {', '.join(details)})")
        info = details[sender]
    print(json.dumps(info, indent=2))
    return 0


def _split(target: str) -> tuple[str, str, dict[str, str]]:
    match = _SHOW.match(target)
    if not match:
        raise UsageError(f"expected RUN/SENDER or RUN/SENDER[a:b], not {target!r}")
    params = {k: v for k, v in (("start", match["a"]), ("stop", match["b"])) if v}
    return match["run"], match["sender"], params


def _do_show(client: httpx.Client, url: str, token: str | None, args: argparse.Namespace) -> int:
    from constellation.reader.remote import open_remote

    run_id, sender, params = _split(args.target)
    with open_remote(url, run_id, token=token) as run:
        start = int(params.get("start", 0))
        stop = int(params.get("stop", run.record_count(sender)))
        for position, record in enumerate(run.records(sender, start=start), start):
            if position >= stop:
                break
            _print_record(record)
    return 0


def _print_record(record: Any) -> None:
    print(f"#{record.sequence} tags={to_json(record.tags)}", flush=True)
    for index, block in enumerate(record.blocks):
        values = " ".join(str(v) for v in block[:8].tolist())
        more = " ..." if block.shape[0] > 8 else ""
        print(f"  block_{index:02d} {block.dtype}[{block.shape[0]}]: {values}{more}", flush=True)


def _do_follow(client: httpx.Client, url: str, token: str | None, args: argparse.Namespace) -> int:
    from constellation.reader.remote import open_remote

    run_id, sender, params = _split(args.target)
    with open_remote(url, run_id, token=token) as run:
        for record in run.follow(sender, start=int(params.get("start", 0))):
            _print_record(record)
    return 0


def _do_download(
    client: httpx.Client, url: str, token: str | None, args: argparse.Namespace
) -> int:
    row = _get(client, f"/api/runs/{args.run}").json()
    target = args.output / row["file"]
    if target.exists():
        raise UsageError(f"{target} exists; not overwritten")
    args.output.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    _fetch(client, f"/api/runs/{args.run}/file", part, args.quiet)
    if not row.get("sha256"):  # growing: a prefix, no valid HDF5 file yet
        print(
            f"note: run {args.run} is still growing (no checksum yet): kept the prefix as "
            f"{part}; download again once the run has closed",
            file=sys.stderr,
        )
        print(part)
        return INCOMPLETE
    digest = _sha256(part)
    if digest != row["sha256"]:
        part.unlink()
        raise InputFileError(target, f"sha256 {digest} != the catalog's {row['sha256']}")
    part.replace(target)
    print(target)
    return 0


def _fetch(client: httpx.Client, path: str, part: Path, quiet: bool) -> None:
    """Download ``path`` into ``part``, resuming from its length (``Range`` + ``If-Range``)."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from constellation.reader.fetch import copy_body, open_body

    have = part.stat().st_size if part.exists() else 0
    etag_file = part.with_name(part.name + ".etag")
    headers = {
        key: value for key, value in client.headers.items() if key.lower() == "authorization"
    }
    if have and etag_file.exists():
        headers.update({"Range": f"bytes={have}-", "If-Range": etag_file.read_text()})
    url = str(client.base_url).rstrip("/")
    with open_body(url, path, headers) as reply:
        if reply.status == 416:  # already complete
            return
        if reply.status >= 400:
            raise InputFileError(url + path, f"HTTP {reply.status}")
        resumed = reply.status == 206
        etag_file.write_text(reply.getheader("etag", ""))
        total = int(reply.getheader("content-length", 0)) + (have if resumed else 0)
        columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
        with (
            part.open("ab" if resumed else "wb") as out,
            Progress(*columns, disable=quiet, transient=True) as bar,
        ):
            task = bar.add_task(part.name[:-5], total=total, completed=have if resumed else 0)
            copy_body(reply, out, lambda count: bar.advance(task, count), url + path)
    etag_file.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(4 << 20):
            digest.update(chunk)
    return digest.hexdigest()
