"""The ``Controller`` command as an operator uses it: console in a pty, status, run and scan.

Satellites run in this test process (the ``satellites`` fixture); the controller is the real
console script in a subprocess (or a pty), always on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pexpect
import pytest

from constellation.core.config import Configuration
from constellation.core.states import State
from constellation.receiver import ReceiverSatellite
from controller import Controller
from controller.scan import Parameter, Scan, ScanError
from satellites.example import Example
from satellites.random_transmitter import RandomTransmitter
from tests.helpers import LOOPBACK, console_script, wait_for

pytestmark = pytest.mark.timeout(60)

#: Any run of ANSI escape sequences (colours, cursor movement) in terminal output.
ESC = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"


def controller_cli(
    group: str, *args: str, config: Path | None = None, timeout: float = 45
) -> subprocess.CompletedProcess[str]:
    """Run ``Controller -g GROUP -i 127.0.0.1 [-c CONFIG] ARGS...`` to completion."""
    cmd = [console_script("Controller"), "-g", group, "-i", LOOPBACK]
    if config is not None:
        cmd += ["-c", str(config)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


def state_of(*sats: Any) -> set[State]:
    return {sat.state for sat in sats}


class FailingExample(Example):
    """An Example whose run never starts."""

    def do_starting(self, run_id: str) -> str:
        raise RuntimeError("no beam")


class BorRecorder(ReceiverSatellite):
    """A receiver that remembers (run id, sender, BOR configuration) of every run."""

    def __init__(self, name: str, group: str, **kwargs: Any) -> None:
        super().__init__(name, group, **kwargs)
        self.bors: list[tuple[str, str, dict[str, Any]]] = []
        self._bor_lock = threading.Lock()

    def receive_bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        with self._bor_lock:
            self.bors.append((self.run_id, sender, config))

    def recorded(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self._bor_lock:
            return list(self.bors)


class TunableTransmitter(RandomTransmitter):
    """A RandomTransmitter that takes a new seed in ORBIT (``reconfigure``)."""

    def do_reconfigure(self, partial: Configuration) -> str:
        self.seed = partial.get_int("seed", self.seed, min=0)
        return f"seed now {self.seed}"


# --- console ------------------------------------------------------------------------------------
def spawn_console(group: str, tmp_path: Path, *extra: str) -> pexpect.spawn:
    env = {
        **os.environ,
        "IPYTHONDIR": str(tmp_path / "ipython"),  # no history, no user profile
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor-position requests
        "TERM": "xterm",
        "PAGER": "cat",
    }
    cmd = [console_script("Controller"), "-g", group, "-i", LOOPBACK, *extra]
    child = pexpect.spawn(
        cmd[0], cmd[1:], env=env, encoding="utf-8", timeout=20, dimensions=(50, 200)
    )
    child.logfile_read = (tmp_path / "console.log").open("w")
    return child


def prompt(group: str, count: int, state: str, run_id: str = "") -> str:
    """The console prompt, e.g. ``lab (2) RUN run_1 >``, whatever its colours."""
    run = rf" {run_id}{ESC}" if run_id else ""
    return rf"{re.escape(group)} {ESC}\({count}\) {ESC}{state}{ESC}{run} {ESC}>"


def close_console(child: pexpect.spawn) -> None:
    if child.isalive():
        child.terminate(force=True)
    child.logfile_read.close()


def test_console_session(satellites: Any, group: str, fast_timing: Any, tmp_path: Path) -> None:
    a = satellites(Example, "alpha")
    b = satellites(Example, "beta")
    config = tmp_path / "run.toml"
    config.write_text("[Example._default]\nsample_period = 0.01\n[Example.alpha]\n[Example.beta]\n")
    child = spawn_console(group, tmp_path, "-c", str(config))  # waits for the configured ones
    try:
        child.expect(prompt(group, 2, "NEW"))
        # Complete the type and the satellite name with TAB, then call a command on it.
        child.send("constellation.Exa")
        child.send("\t")
        child.expect("mple")
        child.send(".al")
        child.send("\t")
        child.expect("pha")
        child.send(".get_state()\r")
        child.expect(r"Example\.alpha: SUCCESS: NEW\r?\n")  # the state name only, no code
        # The help of a command is its description from get_commands.
        child.send("constellation.Example.alpha.set_offset?\r")
        child.expect("Add an offset to every sample value")
        child.send("constellation.initialize(cfg)\r")
        child.expect("Example.beta: SUCCESS: transitioning")  # same format as one satellite
        child.send("wait('INIT')\r")
        child.expect(prompt(group, 2, "INIT"))
        child.send("constellation.Example.launch()\r")
        child.send("wait('ORBIT')\r")
        child.expect(prompt(group, 2, "ORBIT"))
        child.send("constellation.start('console_1')\r")
        child.send("wait('RUN')\r")
        child.expect(prompt(group, 2, "RUN", "console_1"))  # the run id joins the prompt
        child.send("status()\r")
        gap = rf"(?:\s|{ESC})+"  # the bold header is styled cell by cell
        child.expect(gap.join(["SATELLITE", "STATE", "ROLE", "LAST BEAT", "RUN ID", "STATUS"]))
        child.expect(r"Example\.alpha\s+" + ESC + "RUN")
        child.send("constellation.stop()\r")
        child.send("wait('ORBIT')\r")
        child.expect(prompt(group, 2, "ORBIT"))
        child.send("constellation.Example.beta.land()\r")
        child.send("constellation.Example.alpha.land()\r")
        child.send("wait('INIT')\r")
        child.expect(prompt(group, 2, "INIT"))
        child.send("exit\r")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        close_console(child)
    # Leaving the console does not affect the satellites.
    assert state_of(a, b) == {State.INIT}
    assert a.run_id == "console_1" and a.sample_period == 0.01


def test_simple_console_fallback(satellites: Any, group: str, tmp_path: Path) -> None:
    satellites(Example, "solo")
    child = spawn_console(group, tmp_path, "console", "--simple", "--wait", "1")
    try:
        child.expect(prompt(group, 1, "NEW"))
        child.send("constellation.Example.so")
        child.send("\t")
        child.expect("lo")
        child.send(".get_n")
        child.send("\t")
        child.expect("ame")  # rlcompleter adds "(" after a callable
        child.send(")\r")
        child.expect("SUCCESS: Example.solo")
        child.expect(prompt(group, 1, "NEW"))  # Ctrl-D only once the console reads again
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        close_console(child)


def test_console_banner_uses_a_satellite_of_the_group(
    satellites: Any, group: str, tmp_path: Path
) -> None:
    satellites(RandomTransmitter, "tx")  # no Example in this group
    child = spawn_console(group, tmp_path, "console", "--simple", "--wait", "1")
    try:
        child.expect(r"commands: ([^\r\n]*)\r?\n")
        assert child.match.group(1).strip() == (
            "constellation.launch(), constellation.RandomTransmitter.launch(), "
            "constellation.RandomTransmitter.tx.launch()"
        )
        child.expect(prompt(group, 1, "NEW"))
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        close_console(child)


# --- status ---------------------------------------------------------------------------------------
def test_status_and_stateless_pick_up(
    satellites: Any, group: str, fast_timing: Any, controller: Controller
) -> None:
    sats = [satellites(Example, "a"), satellites(Example, "b")]
    controller.await_satellites(["Example.a", "Example.b"])
    controller.initialize({"Example": {"_default": {"sample_period": 0.01}}})
    controller.await_state("INIT")
    controller.launch()
    controller.await_state("ORBIT")
    controller.start("live_7")
    controller.await_state("RUN")
    # A controller started in the middle of a run sees the states and the run id ...
    result = controller_cli(group, "status", "--wait", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SATELLITE", "STATE", "ROLE", "LAST", "BEAT", "RUN", "ID", "STATUS"]
    for name in ("Example.a", "Example.b"):
        row = next(line for line in lines if line.startswith(name))
        assert row.split()[1:3] == ["RUN", "DYNAMIC"] and "live_7" in row
    # ... refuses to start another run on top of it, and leaves the running one alone.
    refused = controller_cli(group, "run", "other_1", "--duration", "1", "--wait", "2")
    assert refused.returncode == 1
    assert "already running" in refused.stderr and "live_7" in refused.stderr
    assert state_of(*sats) == {State.RUN} and {s.run_id for s in sats} == {"live_7"}
    controller.stop()
    controller.await_state("ORBIT")


def test_status_of_an_empty_group(group: str) -> None:
    result = controller_cli(group, "--discovery-timeout", "0.5", "status")
    assert result.returncode == 0
    assert f"no satellites in group {group}" in result.stdout


def test_configuration_errors_are_reported_before_anything_is_sent(
    group: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("Example:\n  a:\n    rate: 1\n    Rate: 2\n")
    result = controller_cli(group, "status", config=bad)
    assert result.returncode == 2
    assert f"{bad}:4:5: key 'Example.a.Rate': duplicate key" in result.stderr


# --- run ------------------------------------------------------------------------------------------
def test_run_end_to_end(satellites: Any, group: str, fast_timing: Any, tmp_path: Path) -> None:
    tx = satellites(RandomTransmitter, "tx")
    rx = satellites(BorRecorder, "rx")
    config = tmp_path / "run.yaml"
    config.write_text(
        "RandomTransmitter:\n  tx:\n    rate: 500\n    block_size: 64\nBorRecorder:\n  rx: {}\n"
    )
    result = controller_cli(group, "run", "e2e_1", "--duration", "1.5", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in ("launch -> ORBIT", "start e2e_1 -> RUN", "stop -> ORBIT", "land -> INIT"):
        assert step in out
    assert re.search(r"e2e_1 \[#+\] 00:01 / 00:01", out), out
    assert re.search(r"sent [\d,]+ .* received [\d,]+", out), out
    assert "run e2e_1 done (duration, " in out
    summary = r"^  BorRecorder\.rx: [\d,]+ records, [\d.]+ KiB, condition GOOD$"
    assert re.search(summary, out, re.M), out
    assert state_of(tx, rx) == {State.INIT}
    assert [(run, sender) for run, sender, _ in rx.recorded()] == [
        ("e2e_1", "RandomTransmitter.tx")
    ]
    assert rx.recorded()[0][2]["rate"] == 500


def test_run_fails_when_a_satellite_fails_in_starting(
    satellites: Any, group: str, fast_timing: Any, tmp_path: Path
) -> None:
    good = satellites(Example, "good")
    bad = satellites(FailingExample, "bad")
    config = tmp_path / "run.toml"
    config.write_text("[_default]\nsample_period = 0.01\n[Example.good]\n[FailingExample.bad]\n")
    result = controller_cli(group, "run", "doomed_1", "--duration", "5", config=config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FailingExample.bad ERROR: RuntimeError in do_starting: no beam" in result.stderr
    assert bad.state is State.ERROR
    assert good.state in (State.ORBIT, State.SAFE)  # stopped by the controller or interrupted


def test_ctrl_c_stops_and_lands_the_run(
    satellites: Any, group: str, fast_timing: Any, tmp_path: Path
) -> None:
    sats = [satellites(Example, "a"), satellites(Example, "b")]
    config = tmp_path / "run.toml"
    config.write_text("[Example._default]\nsample_period = 0.01\n[Example.a]\n[Example.b]\n")
    cmd = [console_script("Controller"), "-g", group, "-i", LOOPBACK, "-c", str(config)]
    proc = subprocess.Popen(
        [*cmd, "run", "long_1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: state_of(*sats) == {State.RUN}, 30, what="the run to start")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, out + err
    assert "stopping cleanly" in err and "stop -> ORBIT" in out and "land -> INIT" in out
    assert state_of(*sats) == {State.INIT}


# --- scans ----------------------------------------------------------------------------------------
def test_scan_file_runs_three_steps(
    satellites: Any, group: str, fast_timing: Any, tmp_path: Path
) -> None:
    tx = satellites(RandomTransmitter, "tx")
    rx = satellites(BorRecorder, "rx")
    config = tmp_path / "run.toml"
    config.write_text("[RandomTransmitter.tx]\nrate = 200\nblock_size = 32\n[BorRecorder.rx]\n")
    scan_file = tmp_path / "scan.toml"
    scan_file.write_text(
        'prefix = "seed"\nduration = 0.5\n\n'
        '[[parameter]]\ntarget = "RandomTransmitter.tx"\nkey = "seed"\nvalues = [11, 22, 33]\n'
    )
    result = controller_cli(group, "scan", str(scan_file), config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scan done: 3 runs" in result.stdout
    bors = [(run, config["seed"]) for run, sender, config in rx.recorded()]
    assert bors == [("seed_1", 11), ("seed_2", 22), ("seed_3", 33)]
    assert state_of(tx, rx) == {State.INIT}


def test_python_scan_reconfigures_and_continues_run_numbers(
    satellites: Any, group: str, fast_timing: Any, controller: Controller
) -> None:
    satellites(TunableTransmitter, "tx")
    rx = satellites(BorRecorder, "rx")
    controller.await_satellites(["TunableTransmitter.tx", "BorRecorder.rx"])
    config = {"TunableTransmitter": {"tx": {"rate": 200, "block_size": 32}}}
    seeds = Parameter("TunableTransmitter", "seed", [1, 2])
    first = Scan([seeds], prefix="tune", duration=0.3, land=False)
    assert [r.run_id for r in first.run(controller, config, log=lambda _: None)] == [
        "tune_1",
        "tune_2",
    ]
    again = Scan([Parameter("TunableTransmitter.tx", "seed", [3])], prefix="tune", duration=0.3)
    lines: list[str] = []
    results = again.run(controller, config, log=lines.append)
    assert [r.run_id for r in results] == ["tune_3"]  # continues after the highest number
    assert any("reconfigure" in line for line in lines)  # in ORBIT: no land/initialize
    assert not any(line.startswith("land -> INIT: TunableTransmitter") for line in lines[:-1])
    seeds_seen = [(run, config["seed"]) for run, _, config in rx.recorded()]
    assert seeds_seen == [("tune_1", 1), ("tune_2", 2), ("tune_3", 3)]


class FailsOnSecondRun(Example):
    def do_starting(self, run_id: str) -> str:
        if run_id.endswith("_2"):
            raise RuntimeError("detector tripped")
        return "ok"


def test_failed_step_stops_the_scan_in_a_known_state(
    satellites: Any, group: str, fast_timing: Any, controller: Controller
) -> None:
    fine = satellites(Example, "fine")
    flaky = satellites(FailsOnSecondRun, "flaky")
    controller.await_satellites(["Example.fine", "FailsOnSecondRun.flaky"])
    scan = Scan(
        [Parameter("Example", "sample_period", [0.01, 0.02, 0.03])], prefix="f", duration=0.3
    )
    with pytest.raises(ScanError) as info:
        scan.run(controller, {"_default": {"sample_period": 0.01}}, log=lambda _: None)
    error = info.value
    outcome = [(r.run_id, r.ok) for r in error.results]
    assert outcome == [("f_1", True), ("f_2", False)], [str(r) for r in error.results]
    assert "RuntimeError in do_starting: detector tripped" in error.results[1].error
    assert error.failures["FailsOnSecondRun.flaky"].startswith("ERROR: RuntimeError")
    assert error.states["FailsOnSecondRun.flaky"] == "ERROR"
    assert error.states["Example.fine"] in ("ORBIT", "SAFE")
    assert flaky.state is State.ERROR and fine.state in (State.ORBIT, State.SAFE)


# --- until conditions checked against the declared metrics ---------------------------------------
def test_misspelt_until_metric_is_refused_before_the_run(
    satellites: Any, group: str, fast_timing: Any, tmp_path: Path
) -> None:
    tx = satellites(RandomTransmitter, "tx")
    rx = satellites(BorRecorder, "rx")
    config = tmp_path / "run.yaml"
    config.write_text("RandomTransmitter:\n  tx:\n    rate: 500\nBorRecorder:\n  rx: {}\n")
    until = ("--until", "RX_RECORD>=5000", "--duration", "30")
    result = controller_cli(group, "run", "typo_1", *until, config=config)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "error: --until metric RX_RECORD is not declared by any satellite of this group "
        "(did you mean RX_RECORDS?); the group declares: "
    ), result.stderr
    assert {"RX_RECORDS", "TX_RECORDS", "STATE"} <= set(line.split(": ")[-1].split(", "))
    assert state_of(tx, rx) == {State.NEW}  # nothing was sent


def test_until_names_a_satellite_and_its_own_metrics(
    satellites: Any, group: str, fast_timing: Any, tmp_path: Path
) -> None:
    tx = satellites(RandomTransmitter, "tx")
    rx = satellites(BorRecorder, "rx")
    config = tmp_path / "run.yaml"
    config.write_text("RandomTransmitter:\n  tx:\n    rate: 500\nBorRecorder:\n  rx: {}\n")
    absent = controller_cli(
        group, "run", "r1", "--until", "Example.tx/TX_RECORDS>=1", config=config
    )
    assert absent.returncode == 2, absent.stdout + absent.stderr
    assert (
        "error: --until names Example.tx, which is not a satellite of this group "
        "(present: BorRecorder.rx, RandomTransmitter.tx)"
    ) in absent.stderr
    # RX_RECORDS exists in the group, but not on the transmitter named.
    wrong = controller_cli(
        group, "run", "r2", "--until", "RandomTransmitter.tx/RX_RECORDS>=1", config=config
    )
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "error: --until metric RX_RECORDS is not declared by RandomTransmitter.tx" in (
        wrong.stderr
    )
    assert "RX_RECORDS" not in wrong.stderr.split("it declares: ")[1]
    assert state_of(tx, rx) == {State.NEW}
    # Spelt right, the run goes ahead and ends on the condition.
    good = controller_cli(
        group, "run", "r3", "--until", "RandomTransmitter.tx/TX_RECORDS>=20", config=config
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "run r3 done (until, " in good.stdout


def test_misspelt_until_of_a_scan_file_is_refused_before_the_first_step(
    satellites: Any, group: str, fast_timing: Any, tmp_path: Path
) -> None:
    tx = satellites(RandomTransmitter, "tx")
    config = tmp_path / "run.toml"
    config.write_text("[RandomTransmitter.tx]\nrate = 200\n")
    scan_file = tmp_path / "scan.toml"
    scan_file.write_text(
        'prefix = "s"\nduration = 20\n[until]\nmetric = "TX_RECORD"\nvalue = 10\n\n'
        '[[parameter]]\ntarget = "RandomTransmitter.tx"\nkey = "seed"\nvalues = [1, 2]\n'
    )
    result = controller_cli(group, "scan", str(scan_file), config=config)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"error: {scan_file}: until metric TX_RECORD is not declared by any satellite of this "
        "group (did you mean TX_RECORDS?); the group declares: "
    ) in result.stderr
    assert tx.state is State.NEW
