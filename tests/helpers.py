"""Shared test helpers: polling waits, loopback satellite processes, unique groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: Every test talks over loopback only.
LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


#: The transmitter and writer of :func:`writer_run_config`.
TX = "RandomTransmitter.tx"
WRITER = "H5DataWriter.w"


def writer_run_config(
    out: Path,
    swmr: bool,
    *,
    rate: float,
    block_size: int,
    seed: int,
    writer_data: dict[str, Any] | None = None,
    **writer: Any,
) -> dict[str, Any]:
    """RandomTransmitter ``tx`` feeding H5DataWriter ``w`` (which starts first) into ``out``."""
    return {
        "RandomTransmitter": {
            "tx": {
                "block_size": block_size,
                "rate": rate,
                "seed": seed,
                "_conditions": {"require_starting_after": [WRITER]},
            }
        },
        "H5DataWriter": {
            "w": {
                "output_directory": str(out),
                "allow_concurrent_reading": swmr,
                "flush_interval": 0.2,
                "_data": {"receive_from": [TX], **(writer_data or {})},
                **writer,
            }
        },
    }


def cycle_to_run(ctl: Any, config: Any, run_id: str, timeout: float = 15.0) -> None:
    """initialize, launch and start every satellite of ``ctl``, waiting for each state."""
    ctl.initialize(config)
    ctl.await_state("INIT", timeout)
    ctl.launch()
    ctl.await_state("ORBIT", timeout)
    ctl.start(run_id)
    ctl.await_state("RUN", timeout)


def unique_group(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def console_script(name: str) -> str:
    """Path of an installed console script of this project (next to the running python)."""
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"console script {name} not installed in {BIN}")
    return str(path)


class SatelliteProcess:
    """A satellite started from its console script, as a user would, on loopback."""

    def __init__(
        self,
        script: str,
        name: str,
        group: str,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.script = script
        self.name = name
        self.group = group
        self.canonical = f"{script.removeprefix('Satellite')}.{name}"
        cmd = [
            console_script(script),
            "-g",
            group,
            "-n",
            name,
            "-i",
            LOOPBACK,
            "-l",
            "DEBUG",
            *args,
        ]
        full_env = {**os.environ, **(env or {})}
        self.log_path = log_path
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""
