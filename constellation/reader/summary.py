"""``constellation-h5 summary``: full summary of one run file, one line per run for many."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from constellation.reader.h5reader import RunReader, open_run
from constellation.terminal import make_console, plain_table

__all__ = ["condition", "missing_records", "print_full", "print_runs", "run_files"]

_CONDITIONS = {1: "TAINTED", 2: "INCOMPLETE", 4: "INTERRUPTED", 8: "ABORTED", 0x10: "DEGRADED"}


def run_files(paths: list[Path]) -> list[Path]:
    """``paths`` with directories replaced by the ``*.h5`` files they hold (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.h5")))
        else:
            files.append(path)
    return files


def missing_records(run: RunReader, sender: str) -> int:
    """Records lost: EOR's record count minus stored, or else gaps in the sequence numbers."""
    stats = run.stats(sender)
    eor = run.eor(sender) or {}
    announced = eor.get("run_metadata", {}).get("data_records")
    if isinstance(announced, int):
        return max(0, announced - stats.records)
    if stats.first_sequence is None:
        return 0
    return max(0, stats.last_sequence - stats.first_sequence + 1 - stats.records)


def condition(run: RunReader, sender: str | None = None) -> str:
    """Run condition from the EOR of ``sender`` (or the first sender that has one)."""
    for name in [sender] if sender else run.senders:
        eor = run.eor(name)
        if eor is not None:
            return _condition(eor.get("run_metadata", {}))
    return "no EOR"


def _condition(metadata: dict[str, Any]) -> str:
    code = metadata.get("condition_code")
    name = metadata.get("condition")
    if isinstance(code, int):
        flags = [text for bit, text in _CONDITIONS.items() if code & bit] or ["GOOD"]
        return f"{name or '|'.join(flags)} (code {code})"
    return str(name) if name is not None else "unknown"


def print_runs(files: list[Path], out: TextIO) -> None:
    """One line per run file: run id, file, senders, records, condition, missing records."""
    rows = []
    for path in files:
        with open_run(path) as run:
            records = sum(run.record_count(s) for s in run.senders)
            missing = sum(missing_records(run, s) for s in run.senders)
            rows.append([run.run_id, path.name, len(run.senders), records, condition(run), missing])
    headers = ["run", "file", "senders", "records", "condition", "missing"]
    make_console(out).print(plain_table(headers, rows))


def print_full(run: RunReader, out: TextIO) -> None:
    """Writers, then a table of senders, then each sender's BOR configuration."""
    console = make_console(out)
    console.print(f"file:    {run.path}")
    console.print(f"run:     {run.run_id}")
    console.print(f"mode:    {run.mode}")
    for writer in run.writers:
        details = ", ".join(f"{k}={v}" for k, v in run.writer_info(writer).items())
        console.print(f"writer:  {writer} ({details})")
    rows = []
    total_records = total_bytes = 0
    for sender in run.senders:
        stats = run.stats(sender)
        total_records += stats.records
        total_bytes += stats.data_bytes
        span = (
            "-"
            if stats.first_sequence is None
            else (f"{stats.first_sequence}..{stats.last_sequence}")
        )
        eor = run.eor(sender)
        cond = "not written (yet)" if eor is None else condition(run, sender)
        rows.append(
            [
                sender,
                run.layout(sender),
                stats.records,
                span,
                _size(stats.data_bytes),
                missing_records(run, sender),
                cond,
            ]
        )
    headers = ["sender", "layout", "records", "sequence", "data", "missing", "EOR"]
    console.print(plain_table(headers, rows))
    console.print(f"total:   {total_records} records, {_size(total_bytes)}")
    for sender in run.senders:
        config = run.bor(sender).get("configuration") or {}
        items = ", ".join(f"{k}={v}" for k, v in sorted(config.items())) or "(empty)"
        console.print(f"BOR {sender}: {items}")


def _size(nbytes: int) -> str:
    if nbytes < 1024:
        return f"{nbytes} B"
    value = float(nbytes)
    unit = "KiB"
    for unit in ("KiB", "MiB", "GiB"):  # noqa: B007 (used after the loop)
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"
