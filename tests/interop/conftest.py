"""Interop fixtures: a cached venv with Constellation's own ``constellationdaq`` package.

Their import package is also called ``constellation``, so their code only ever runs with that
venv's python, in subprocesses started in a scratch directory with ``-I`` semantics (no
PYTHONPATH, no current directory on ``sys.path``). Console scripts are started as
``<venv python> <venv bin/script>`` so that a moved cache still works.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.chirp_guard import their_processes_running
from tests.helpers import REPO

THEIR_VERSION = "1.0.2"
VENV_ROOT = REPO / ".cache" / "interop-venv"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
_MARKER = ".interop-ok"
#: pip messages that mean "the package index could not be reached" (skip, do not fail). "No
#: matching distribution" alone is not one of them: it is also what a reachable index that lacks
#: the version says, and that is a real failure.
_UNREACHABLE_HINTS = (
    "NewConnectionError",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Failed to establish a new connection",
    "Max retries exceeded",
    "ProxyError",
    "ConnectTimeoutError",
    "Read timed out",
)


def _index_unreachable(pip_output: str) -> bool:
    """True if pip failed because it could not reach the index (its retries name the cause)."""
    return any(hint in pip_output for hint in _UNREACHABLE_HINTS)


def _pip_messages(pip_output: str) -> str:
    """pip's own ERROR lines and its last retry warning, for a skip or failure reason."""
    lines = [ln.strip() for ln in pip_output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    retries = [ln for ln in lines if ln.startswith("WARNING: Retrying")]
    picked = retries[-1:] + errors
    return " | ".join(picked) if picked else (lines[-1] if lines else "no output")


def _their_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSTELLATION_")}
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONSAFEPATH"] = "1"  # never put the script dir / cwd (maybe our repo) on sys.path
    return env


def _create_venv(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = shutil.which("python3") or sys.executable
    made = subprocess.run([base, "-m", "venv", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"python3 -m venv failed: {made.stderr[-2000:]}")
    pip = subprocess.run(
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            f"constellationdaq[hdf5]=={THEIR_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=_their_env(),
    )
    if pip.returncode != 0:
        out = pip.stdout + pip.stderr
        shutil.rmtree(path, ignore_errors=True)
        if _index_unreachable(out):
            pytest.skip(
                f"cannot install constellationdaq=={THEIR_VERSION}: package index not "
                f"reachable; pip said: {_pip_messages(out)}"
            )
        # Any other install failure is an error of the set-up, never a skip.
        pytest.fail(f"pip install constellationdaq=={THEIR_VERSION} failed:\n{out[-3000:]}")
    (path / _MARKER).write_text(THEIR_VERSION)


class TheirVenv:
    """The cached venv with ``constellationdaq``; runs their code in subprocesses only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = str(path / "bin" / "python")

    def script(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def run_script(
        self, script: str, args: dict[str, Any], cwd: Path, timeout: float = 90.0
    ) -> dict[str, Any]:
        """Run ``tests/interop/scripts/<script>`` with their python; returns its JSON result."""
        with their_processes_running():
            proc = subprocess.run(
                [self.python, "-I", str(SCRIPTS / script), json.dumps(args)],
                cwd=cwd,
                env=_their_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise AssertionError(
                f"{script} failed (rc {proc.returncode}):\nstdout:\n{proc.stdout[-4000:]}"
                f"\nstderr:\n{proc.stderr[-4000:]}"
            )
        result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
        return result


@pytest.fixture(scope="session")
def their_venv() -> TheirVenv:
    path = VENV_ROOT / THEIR_VERSION
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    with open(VENV_ROOT / ".lock", "w") as lock:
        # parallel test workers (pytest -n): one creates the venv, the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / _MARKER).exists():
            _create_venv(path)
    return TheirVenv(path)


#: What their satellites log last before they hang at exit (constellationdaq 1.0.2: the
#: PyRandomTransmitter's ZMQ context termination does not return after SIGINT). Past this line
#: their shutdown has nothing left to do, so the teardown kills them instead of waiting.
_LAST_WORDS = "Terminating ZMQ context."
#: How long a process that logged :data:`_LAST_WORDS` still gets to exit by itself.
_LAST_WORDS_GRACE = 0.5
#: How long their processes get to exit after the SIGINT (the tests need nothing of them then).
_EXIT_TIMEOUT = 3.0


class TheirProcess:
    """One of their satellites (or Monitor) started from its console script on ``lo``."""

    def __init__(
        self, venv: TheirVenv, script: str, args: Sequence[str], cwd: Path, log_path: Path
    ) -> None:
        self.script = script
        self.log_path = log_path
        self._out = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [venv.python, venv.script(script), *args],
            cwd=cwd,
            env=_their_env(),
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def interrupt(self) -> None:
        """Ask it to exit (SIGINT, as Ctrl-C would); :meth:`finish` waits for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def finish(self, deadline: float) -> None:
        """Wait for the exit until ``deadline`` (monotonic), or a moment after its last words."""
        last_words_at: float | None = None
        while self.proc.poll() is None:
            now = time.monotonic()
            if last_words_at is None and self.output().rstrip().endswith(_LAST_WORDS):
                last_words_at = now
            hung = last_words_at is not None and now - last_words_at > _LAST_WORDS_GRACE
            if hung or now > deadline:
                self.proc.kill()
                break
            time.sleep(0.05)
        self.proc.wait(10)
        self._out.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def theirs(their_venv: TheirVenv, group: str, tmp_path: Path) -> Iterator[Any]:
    """Factory for their satellites: ``theirs("SatellitePyRandomTransmitter", "tx")``."""
    started: list[TheirProcess] = []
    workdir = tmp_path / "theirs"
    workdir.mkdir(exist_ok=True)

    def start(script: str, name: str | None = None, *extra: str) -> TheirProcess:
        args = ["-g", group, "-i", "lo", "-l", "DEBUG", *extra]
        if name is not None:
            args += ["-n", name]
        proc = TheirProcess(
            their_venv, script, args, workdir, tmp_path / f"their.{script}.{name}.log"
        )
        started.append(proc)
        return proc

    with their_processes_running():
        yield start
        for proc in started:  # all at once: their shutdowns overlap
            proc.interrupt()
        deadline = time.monotonic() + _EXIT_TIMEOUT
        for proc in reversed(started):
            proc.finish(deadline)
