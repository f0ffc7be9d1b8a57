"""The ``constellation-h5`` command: summary, export and dump of H5DataWriter files.

Built on :mod:`constellation.reader.h5reader` (h5py and numpy only)::

    constellation-h5 summary data_run1.h5
    constellation-h5 summary data/
    constellation-h5 export data_run1.h5 --sender RandomTransmitter.t1 --format npy -o out/
    constellation-h5 export data_run1.h5 --sender RandomTransmitter.t1 --format csv -o out/
    constellation-h5 dump data_run1.h5 --sender RandomTransmitter.t1 --limit 5
    constellation-h5 serve data/ --port 8000          # the data service (cli_service)
    constellation-h5 catalog data/ --where condition=GOOD
    constellation-h5 remote --server http://127.0.0.1:8000 runs   # its client (cli_remote)

``summary`` takes files or directories: one file gives the full summary (sender table with
missing records, BOR configurations), several give one line per run. ``export`` writes
``run_<id>_<sender>.csv`` (sequence, tags, decoded values; default) or ``.npy`` files into ``-o``
and refuses to overwrite without ``--force``. Exit status: 0 on success, 2 for bad input or
usage, 141 (no message) when the reader of the output goes away (``| head``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from constellation.cli import HelpFormatter
from constellation.errors import DiscoveryError, InputFileError, UsageError
from constellation.reader import cli_remote, cli_service
from constellation.reader.export import export, to_json
from constellation.reader.h5reader import RunReader, open_run
from constellation.reader.summary import print_full, print_runs, run_files

__all__ = ["main"]

_PROG = "constellation-h5"
_EPIPE_STATUS = 141  # what a shell reports for a command ended by SIGPIPE (128 + 13)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``constellation-h5``; returns the exit status."""
    args = _parser().parse_args(argv)
    target = getattr(args, "file", None)
    try:
        if hasattr(args, "entry"):
            return int(args.entry(args))
        if args.command == "summary":
            files = run_files(args.file)
            if not files:
                return _fail(f"no *.h5 files in {', '.join(map(str, args.file))}")
            for target in files:
                if not target.exists():
                    raise FileNotFoundError(target)
            return _summary_many(files)
        with open_run(args.file) as run:
            return int(args.handler(run, args))
    except FileNotFoundError:
        return _fail(f"file not found: {target}")
    except KeyError as exc:
        return _fail(str(exc.args[0]) if exc.args else "unknown key")
    except (InputFileError, UsageError, DiscoveryError) as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except OSError as exc:
        return _fail(f"{target}: {exc}" if target is not None else str(exc))


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (``| head``): stop quietly, as other tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    os.close(devnull)
    return _EPIPE_STATUS


def _fail(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Inspect H5DataWriter files.", formatter_class=HelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser(
        "summary", help="writers, senders, records, BOR/EOR", formatter_class=HelpFormatter
    )
    summary.add_argument("file", type=Path, nargs="+", help="run files or directories")
    export = commands.add_parser(
        "export", help="export one sender's records (csv or npy)", formatter_class=HelpFormatter
    )
    export.add_argument("file", type=Path)
    export.add_argument("--sender", "-s", required=True, help="sender canonical name")
    export.add_argument("--format", "-f", choices=("csv", "npy"), default="csv", help="format")
    export.add_argument("--output", "-o", type=Path, default=Path("."), help="output directory")
    export.add_argument("--force", action="store_true", help="overwrite existing files")
    export.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    export.set_defaults(handler=_export)
    dump = commands.add_parser(
        "dump", help="print records of one sender", formatter_class=HelpFormatter
    )
    dump.add_argument("file", type=Path)
    dump.add_argument("--sender", "-s", required=True, help="sender canonical name")
    dump.add_argument("--limit", "-n", type=int, default=10, help="records to print (0 = all)")
    dump.add_argument("--start", type=int, default=0, help="first record position (0-based)")
    dump.set_defaults(handler=_dump)
    cli_service.add_commands(commands)
    cli_remote.add_commands(commands)
    return parser


# --- summary / export ---------------------------------------------------------------------------
def _summary_many(files: list[Path]) -> int:
    if len(files) == 1:
        with open_run(files[0]) as run:
            print_full(run, sys.stdout)
    else:
        print_runs(files, sys.stdout)
    return 0


def _export(run: RunReader, args: argparse.Namespace) -> int:
    progress = None if args.quiet else sys.stderr
    paths = export(run, args.sender, args.format, args.output, force=args.force, progress=progress)
    for path in paths:
        print(path)
    return 0


# --- dump -----------------------------------------------------------------------------------------
def _dump(run: RunReader, args: argparse.Namespace) -> int:
    total = run.record_count(args.sender)
    print(f"{args.sender}: {total} records")
    for shown, record in enumerate(run.records(args.sender, start=args.start)):
        if args.limit and shown >= args.limit:
            break
        print(f"#{record.sequence} tags={to_json(record.tags)}")
        for index, block in enumerate(record.blocks):
            print(f"  block_{index:02d} {block.dtype}[{block.shape[0]}]: {_preview(block)}")
    return 0


def _preview(block: np.ndarray, count: int = 8) -> str:
    values = " ".join(str(value) for value in block[:count].tolist())
    return values + (" ..." if block.shape[0] > count else "")


if __name__ == "__main__":
    raise SystemExit(main())
