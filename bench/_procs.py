"""Satellite processes for the benchmarks: start them, bring them to a state, stop them.

Every bench script uses these helpers (and nothing from tests/). Satellites are started from
the console scripts next to the running python, on loopback, in a group of their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

LOOPBACK = "127.0.0.1"
BIN = Path(sys.executable).parent

__all__ = [
    "BIN",
    "LOOPBACK",
    "SatelliteProc",
    "cpu_seconds",
    "finish",
    "rss",
    "start",
    "to_orbit",
    "unique_group",
    "wait_for",
]


def unique_group(prefix: str = "bench") -> str:
    """A group name no other benchmark (or test) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class SatelliteProc:
    """One satellite process; ``proc`` is its :class:`subprocess.Popen`."""

    def __init__(
        self,
        cmd: Sequence[str],
        name: str,
        group: str,
        log_level: str = "WARNING",
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        full = [*cmd, "-g", group, "-n", name, "-i", LOOPBACK, "-l", log_level]
        self._log = open(log_path, "wb") if log_path else None  # noqa: SIM115
        out = self._log or subprocess.DEVNULL
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            full, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0, exiting: bool = False) -> int | None:
        """SIGTERM, ``timeout`` s to exit, then SIGKILL; returns the exit code.

        With ``exiting`` (it was sent ``shutdown``) it first gets ``timeout`` s to exit alone.
        """
        steps = (
            (None, signal.SIGTERM, signal.SIGKILL) if exiting else (signal.SIGTERM, signal.SIGKILL)
        )
        for action in steps:
            if self.proc.poll() is not None:
                break
            if action is not None:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    self.proc.send_signal(action)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout if action is not signal.SIGKILL else 10)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode


def start(
    script: str | Sequence[str],
    name: str,
    group: str,
    log_level: str = "WARNING",
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> SatelliteProc:
    """Start console script ``script`` (or the command ``script``) as satellite ``name``."""
    cmd = [str(BIN / script)] if isinstance(script, str) else list(script)
    return SatelliteProc(cmd, name, group, log_level, log_path, env)


def to_orbit(
    ctl: Any, config: Mapping[str, Any], names: Iterable[str], timeout: float = 30.0
) -> None:
    """Wait for ``names``, initialize with ``config`` and launch: all in ORBIT on return."""
    ctl.await_satellites(list(names), timeout=timeout)
    ctl.initialize(config)
    ctl.await_state("INIT", timeout)
    ctl.launch()
    ctl.await_state("ORBIT", timeout)


def finish(procs: Iterable[SatelliteProc], timeout: float = 15.0) -> None:
    """After ``shutdown``: each process gets ``timeout`` s to exit, else it is stopped."""
    for proc in procs:
        proc.stop(timeout, exiting=True)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); TimeoutError if not."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)  # polling interval
    return result


def cpu_seconds(proc: SatelliteProc | subprocess.Popen[Any]) -> float:
    """CPU seconds (user + system, all threads) the process has used so far, 0 once gone."""
    try:
        times = psutil.Process(proc.pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def rss(proc: SatelliteProc | subprocess.Popen[Any]) -> int:
    """Resident set size of a process in bytes, 0 once it is gone."""
    try:
        return int(psutil.Process(proc.pid).memory_info().rss)
    except psutil.Error:
        return 0
