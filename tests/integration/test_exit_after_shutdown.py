"""A satellite told to `shutdown` exits with 0 even when a SIGTERM arrives while it exits
(a supervisor or script that signals right after the reply): Python restores the default
handlers while it finalizes, and the launcher ignores the signals by then."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from typing import Any

from controller import Controller
from tests.helpers import LOOPBACK


def test_sigterm_during_exit_after_shutdown_keeps_exit_code_zero(
    processes: Any, group: str
) -> None:
    sat = processes("SatelliteExample", "a")
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites(["Example.a"], timeout=20)
        reply = ctl.satellites["Example.a"].command("shutdown")
        assert reply.ok, reply
    # Signal it over and over until it is gone: some signal lands while it finalizes.
    code = None
    deadline = time.monotonic() + 30  # a deadline, not a count: the exit is slower under load
    while time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            sat.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = sat.proc.wait(0.005)
            break
    assert code == 0, f"exit code {code}"
