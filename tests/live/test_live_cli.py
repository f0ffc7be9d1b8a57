"""``constellation-live`` as a user runs it: unknown senders, the table's width, pipes, signals.

The pure parts (views, the snapshot loop) are tested here directly; the console script runs as
a process against real satellite processes on 127.0.0.1.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from constellation.live import cli
from constellation.live.cli import _Stopped, histogram_view, sender_view, watch
from constellation.live.frame import Frame
from constellation.live.view import SenderRow
from controller import Controller
from tests.helpers import LOOPBACK, console_script, cycle_to_run, wait_for
from tests.live.conftest import TX, devnull_config

LONG = "H5DataWriter.a_rather_long_satellite_name_for_a_narrow_terminal"


def _row(sender: str, big: bool = False) -> SenderRow:
    n = 123_456_789 if big else 5_385
    return SenderRow(sender, 1.5e6 if big else 196.0, 12.34, n, n // 7, n, "run_20261204_1")


def _rendered(view: Any, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(view)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [200, 80, 60, 40])
@pytest.mark.parametrize("big", [False, True])
def test_the_table_never_cuts_a_sender_name(width: int, big: bool) -> None:
    names = ["RandomTransmitter.t1", "RandomTransmitter.t2", LONG]
    lines = _rendered(sender_view([_row(n, big) for n in names], "live", width, True), width)
    text = "\n".join(lines)
    assert all(len(line) <= width for line in lines), text
    for name in names if len(LONG) <= width else names[:2]:
        assert name in text, text
    assert "…" not in text
    if width < len(LONG):  # folded over lines, every character still there
        assert LONG in "".join(line.strip() for line in lines)


def test_two_transmitters_fit_an_80_column_table_with_their_full_names() -> None:
    rows = [_row("RandomTransmitter.t1"), _row("RandomTransmitter.t2", big=True)]
    lines = _rendered(sender_view(rows, "live", 80, True), 80)
    table_rows = [line for line in lines if line.startswith("| RandomTransmitter.")]
    assert [r.split("|")[1].strip() for r in table_rows] == [r.sender for r in rows]
    assert "123M" in table_rows[1] and "1.50M" in table_rows[1]  # abbreviated to fit
    wide = "\n".join(_rendered(sender_view(rows, "live", 200, True), 200))
    assert "123,456,789" in wide and "records/s" in wide  # exact where there is room


@pytest.mark.parametrize("width", [80, 60, 200])
def test_histogram_bars_fit_the_console(width: int) -> None:
    values = np.random.default_rng(1).normal(size=10_000)
    lines = _rendered(histogram_view("Tx.a", values, width, "12:00:00"), width)
    assert lines[0] == "Tx.a: 10000 values (12:00:00)"
    bars = [line for line in lines[1:] if "#" in line]
    assert len(lines) == 17 and bars
    assert max(len(line) for line in lines) == width  # the longest bar fills the line


class _Display:
    def __init__(self) -> None:
        self.frames = 0

    def take(self, frame: Frame) -> None:
        self.frames += 1

    def render(self) -> str:
        return f"snapshot after {self.frames} frames"


def test_a_signal_shows_a_last_snapshot_of_what_was_read() -> None:
    calls = iter([Frame(), Frame(), _Stopped(signal.SIGTERM)])

    def read(timeout: float) -> Frame | None:
        item = next(calls)
        if isinstance(item, BaseException):
            raise item  # what the signal handler does in the middle of a read
        return item

    shown: list[object] = []
    display = _Display()
    with pytest.raises(_Stopped):
        watch(read, display, shown.append, 3600.0, None)  # no snapshot due for an hour
    assert shown == ["snapshot after 2 frames"]


class _Clock:
    """A monotonic clock that a read advances by its timeout (no real waiting)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.reads: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def read(self, timeout: float) -> Frame | None:
        self.reads.append(timeout)
        self.now += timeout
        return Frame()


def test_snapshots_come_every_interval_and_the_last_at_the_end(monkeypatch: Any) -> None:
    clock = _Clock()
    monkeypatch.setattr(cli, "time", clock)
    shown: list[object] = []
    watch(clock.read, _Display(), shown.append, 1.0, clock.now + 3.5)
    assert clock.reads == [1.0, 1.0, 1.0, 0.5]
    assert shown == [f"snapshot after {n} frames" for n in (1, 2, 3, 4)]


# --- the console script against real satellites -----------------------------------------------
class _Cli:
    """``constellation-live`` with stdout in a pipe; a thread collects what it prints."""

    def __init__(self, group: str, *args: str) -> None:
        cmd = [console_script("constellation-live"), "-g", group, "-i", LOOPBACK, *args]
        env = {**os.environ, "COLUMNS": "80"}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def out(self) -> str:
        return "\n".join(self.lines)

    def finish(self, sig: int | None = None, timeout: float = 30) -> tuple[int, str, str]:
        try:
            if sig is not None:
                self.proc.send_signal(sig)
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        return self.proc.returncode, self.out, err


def test_unknown_senders_are_refused_with_the_known_ones(pair: Controller, group: str) -> None:
    cycle_to_run(pair, devnull_config(500), "cli_2")
    clis = {
        "sender": _Cli(group, "--sender", "Nope.x", "--seconds", "3"),
        "typo": _Cli(group, "--histogram", "RandomTransmiter.tx", "--seconds", "3"),
        "case": _Cli(group, "--sender", TX.upper(), "--seconds", "2", "--interval", "0.5"),
    }
    results = {k: cli.finish(timeout=40) for k, cli in clis.items()}
    for key, name in (("sender", "Nope.x"), ("typo", "RandomTransmiter.tx")):
        status, out, err = results[key]
        assert status == 2 and out == "", (out, err)
        assert err.count("\n") == 1, err  # one line, no traceback
        assert f"unknown sender(s) {name} in group '{group}' (known: {TX})" in err
    status, out, err = results["case"]  # a known sender, in other case, is followed
    assert status == 0 and TX in out, (out, err)
    pair.stop()
    pair.await_state("ORBIT", 20)


def test_in_a_pipe_snapshots_come_periodically_and_a_signal_ends_cleanly(
    pair: Controller, group: str
) -> None:
    cycle_to_run(pair, devnull_config(1000), "cli_3")
    table = _Cli(group, "--interval", "0.5")
    histogram = _Cli(group, "--histogram", TX, "--interval", "0.5")
    try:
        wait_for(lambda: f"| {TX} " in table.out, 30, what="a table snapshot")
        wait_for(lambda: "#" * 20 in histogram.out, 30, what="a histogram snapshot")
    finally:
        table_result = table.finish(signal.SIGTERM)
        histogram_result = histogram.finish(signal.SIGINT)
    status, out, err = table_result
    assert status == 0, err
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    assert "cli_3" in out and "…" not in out
    assert lines[-1].startswith("+-") and lines[-2].startswith(f"| {TX} ")  # a whole table
    status, out, err = histogram_result
    assert status == 130, err  # SIGINT, as a shell reports it
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    assert max(len(line) for line in lines) == 80  # bars sized to the pipe's 80 columns
    assert lines[-17].startswith(f"{TX}: ") and "#" in lines[-1]  # a whole histogram last
    pair.stop()
    pair.await_state("ORBIT", 20)
