"""What the operator is told when things go wrong: dead satellites, split streams, alarms."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from constellation.errors import ConfigError
from controller import Controller
from controller.console import Session
from controller.group import GroupView
from satellites.devnull_receiver import DevNullReceiver
from satellites.example import Example
from satellites.random_transmitter import RandomTransmitter
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(90)


def test_status_with_a_frozen_satellite_is_quick_and_keeps_its_last_state(
    processes: Any, controller: Controller
) -> None:
    alive, frozen = processes("SatelliteExample", "alive"), processes("SatelliteExample", "frozen")
    controller.await_satellites(["Example.alive", "Example.frozen"])
    controller.initialize({"Example": {}})
    controller.await_state("INIT")
    view = GroupView(controller)
    try:
        wait_for(lambda: controller.statuses.get("Example.frozen"), 10, what="a status")
        status = controller.statuses["Example.frozen"]
        frozen.signal(signal.SIGSTOP)
        try:
            wait_for(lambda: controller.states.get("Example.frozen") == "DEAD", 20, what="DEAD")
            started = time.monotonic()
            rows = {row.name: row for row in view.rows()}
            assert time.monotonic() - started < 1.0  # the dead one is not asked at all
            assert rows["Example.frozen"].state == "DEAD (INIT)"
            assert rows["Example.frozen"].status == status
            assert rows["Example.alive"].state == "INIT"
            table = view.table()  # what the console's status() prints
            assert "DEAD (INIT)" in table and status in table
        finally:
            frozen.signal(signal.SIGCONT)
    finally:
        view.close()
    assert alive.pid > 0


def test_console_announces_error_with_its_status(
    satellites: Any, group: str, fast_timing: Any, controller: Controller
) -> None:
    class Fragile(Example):
        def do_launching(self) -> str:
            raise RuntimeError("HV trip on channel 3")

    satellites(Fragile, "hv")
    satellites(Example, "ok")
    controller.await_satellites(["Fragile.hv", "Example.ok"])
    lines: list[str] = []
    session = Session(controller, GroupView(controller), {}, out=lines.append)
    try:
        controller.initialize({"Fragile": {}, "Example": {}})
        controller.await_state("INIT")
        controller.launch()
        wait_for(lambda: any("Fragile.hv" in line for line in lines), 10, what="a notice")
        notice = next(line for line in lines if "Fragile.hv" in line)
        assert "-> ERROR" in notice and "HV trip on channel 3" in notice
        wait_for(lambda: controller.states.get("Example.ok") == "ORBIT", 10, what="ORBIT")
        assert controller.global_state() == "~ERROR"
        assert controller.state_summary() == "ORBIT, 1 ERROR"
    finally:
        session.close()
        session.view.close()


def test_two_receivers_on_one_transmitter_are_refused(
    satellites: Any, group: str, controller: Controller, tmp_path: Path
) -> None:
    tx = satellites(RandomTransmitter, "t1")
    satellites(DevNullReceiver, "a")
    satellites(DevNullReceiver, "b")
    controller.await_satellites(["RandomTransmitter.t1", "DevNullReceiver.a", "DevNullReceiver.b"])
    wait_for(lambda: "RandomTransmitter.t1" in controller.transmitters, 10, what="data service")
    with pytest.raises(ConfigError) as info:
        controller.initialize({"RandomTransmitter": {}, "DevNullReceiver": {}})
    text = str(info.value)
    assert "DevNullReceiver.a" in text and "DevNullReceiver.b" in text
    assert "_data.receive_from" in text and "live tap" in text
    assert tx.state.name == "NEW"  # nothing was sent
    # One receiver per transmitter is fine.
    controller.initialize(
        {
            "RandomTransmitter": {},
            "DevNullReceiver": {
                "a": {"_data": {"receive_from": ["RandomTransmitter.t1"]}},
                "b": {"_data": {"receive_from": []}},
            },
        }
    )
    controller.await_state("INIT")


def test_unused_keys_are_reported_and_a_scan_over_one_fails(
    satellites: Any, fast_timing: Any, controller: Controller
) -> None:
    from controller.runs import RunControl, RunError
    from controller.scan import Parameter, Scan

    satellites(Example, "a")
    controller.await_satellites(["Example.a"])
    lines: list[str] = []
    control = RunControl(controller, log=lines.append)
    try:
        control.initialize({"Example": {"a": {"sample_perod": 0.5}}})
    finally:
        control.close()
    assert control.unused == {"Example.a": ["sample_perod"]}
    assert "Example.a did not use: sample_perod (misspelt?)" in lines
    scan = Scan([Parameter("Example.a", "sample_perod", [0.1, 0.2])], prefix="u", duration=0.2)
    with pytest.raises(RunError) as info:
        scan.run(controller, {"_default": {}}, log=lambda _: None)
    assert "sample_perod: not a parameter it reads" in info.value.failures["Example.a"]


@pytest.mark.parametrize("script", ["Controller", "Monitor", "SatelliteExample"])
@pytest.mark.parametrize(
    ("value", "says"),
    [("nosuchif0", "unknown network interface"), ("203.0.113.7", "is not on this host")],
)
def test_bad_interface_is_one_clean_line(script: str, value: str, says: str, group: str) -> None:
    import subprocess

    from tests.helpers import console_script

    args = ["status"] if script == "Controller" else []
    result = subprocess.run(
        [console_script(script), "-g", group, "-i", value, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{script}: error: -i {value}: ") and says in lines[0]


@pytest.mark.parametrize("simple", [False, True], ids=["ipython", "simple"])
def test_console_mistakes_are_one_line_and_error_shows_in_the_prompt(
    satellites: Any, group: str, fast_timing: Any, tmp_path: Path, simple: bool
) -> None:
    import pexpect

    from tests.integration.test_controller_cli import close_console, prompt, spawn_console

    class Brittle(Example):
        def do_launching(self) -> str:
            raise RuntimeError("cable pulled")

    satellites(Example, "alpha")
    satellites(Brittle, "b")
    extra = ["console", "--simple", "--wait", "2"] if simple else ["console", "--wait", "2"]
    child = spawn_console(group, tmp_path, *extra)
    try:
        child.expect(prompt(group, 2, "NEW"))
        child.send("constellation.Exampel.get_state()\r")
        child.expect(
            r"UnknownNameError: no satellite type or command 'Exampel' in the group "
            r"\(did you mean 'Example'\?\)"
        )
        child.expect(prompt(group, 2, "NEW"))
        assert "Traceback" not in child.before
        child.send("constellation.Example.alpha.lanch()\r")
        child.expect(r"did you mean 'launch'")
        child.send("constellation.initialize({'Example': {}, 'Brittle': {}})\r")
        child.send("wait('INIT')\r")
        child.expect(prompt(group, 2, "INIT"))
        child.send("constellation.launch()\r")
        child.expect(r"! Brittle\.b: launching -> ERROR: .*cable pulled")
        child.send("\r")  # the simple console prints its prompt on a new line only
        child.expect(prompt(group, 2, "~ERROR"))
        child.send("exit()\r")  # not Ctrl-D: an EOF typed while the prompt redraws is lost
        child.expect(pexpect.EOF)
    finally:
        close_console(child)


@pytest.mark.parametrize("discovery", ["mdns", "chirp"])
def test_a_second_satellite_with_the_same_name_refuses_to_start(
    processes: Any, group: str, discovery: str
) -> None:
    import subprocess

    from tests.helpers import LOOPBACK, console_script

    first = processes("SatelliteExample", "a", "--discovery", discovery)
    with Controller(group, interface=LOOPBACK, discovery=discovery) as ctl:
        ctl.await_satellites(["Example.a"])
        endpoint = ctl.satellites["Example.a"].endpoint
        second = subprocess.run(
            [
                console_script("SatelliteExample"),
                "-g",
                group,
                "-n",
                "A",
                "-i",
                LOOPBACK,
                "--discovery",
                discovery,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 2, second.stderr
        assert f"Example.A already runs in group '{group}' at {endpoint}" in second.stderr
        # The first one is unaffected, and still the only Example.a.
        assert ctl.satellites["Example.a"].command("get_state").verb == "NEW"
        assert list(ctl.satellites) == ["Example.a"]
    assert first.proc.poll() is None


def test_a_split_stream_at_run_time_fails_the_run(
    satellites: Any, group: str, fast_timing: Any, controller: Controller
) -> None:
    """Receivers set up behind the controller's back (one at a time) still share a stream:
    one of them gets records without the BOR, and `Controller run` says so and exits 1."""
    from tests.integration.test_controller_cli import controller_cli

    satellites(RandomTransmitter, "t1")
    first, second = satellites(DevNullReceiver, "a"), satellites(DevNullReceiver, "b")
    controller.await_satellites(["RandomTransmitter.t1", "DevNullReceiver.a", "DevNullReceiver.b"])
    for name in ("DevNullReceiver.a", "DevNullReceiver.b"):  # one by one: no pre-flight check
        # the receiver that misses the EOR gives up on it after 1 s (default 10 s)
        receiver = {"_default": {"_data": {"eor_timeout": 1}}}
        controller.initialize({"DevNullReceiver": receiver}, targets=[name])
    controller.initialize(
        {"RandomTransmitter": {"t1": {"rate": 2000}}}, targets=["RandomTransmitter.t1"]
    )
    controller.await_state("INIT")
    controller.launch()
    controller.await_state("ORBIT")
    result = controller_cli(group, "run", "split_1", "--duration", "1", "--wait", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "condition NO_BOR" in result.stdout
    assert "FAILED: run condition not GOOD" in result.stderr
    assert {first.run_condition_text(), second.run_condition_text()} >= {"NO_BOR"}


def test_writer_refuses_an_unwritable_output_directory_at_initialize(
    satellites: Any, controller: Controller
) -> None:
    from satellites.h5datawriter.satellite import H5DataWriter

    writer = satellites(H5DataWriter, "w")
    controller.await_satellites(["H5DataWriter.w"])
    controller.initialize({"H5DataWriter": {"w": {"output_directory": "/proc"}}})
    with pytest.raises(Exception) as info:
        controller.await_state("INIT", timeout=10)
    status = str(info.value)
    assert "output_directory" in status and "cannot write into /proc" in status
    assert len(status) < 300  # one clear line, not h5py's text four times
    assert writer.state.name == "ERROR"


def test_a_failed_controller_construction_leaves_no_threads(group: str) -> None:
    import threading

    from tests.helpers import LOOPBACK

    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(ValueError, match="unknown discovery backend"):
        Controller(group, interface=LOOPBACK, discovery="carrier-pigeon")
    leaked = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    wait_for(lambda: not [t for t in leaked if t.is_alive()], 5, what="threads to end")


def test_console_polish_run_sequence_reconfigure_and_wait_targets(
    satellites: Any, group: str, fast_timing: Any, controller: Controller
) -> None:
    from controller.console import make_namespace

    class Tunable(Example):
        def do_reconfigure(self, partial: Any) -> str:
            return "reconfigured"

    satellites(Example, "plain")
    satellites(Tunable, "knob")
    controller.await_satellites(["Example.plain", "Tunable.knob"])
    view = GroupView(controller)
    lines: list[str] = []
    namespace = make_namespace(controller, view, None)
    session = namespace["constellation"]._session
    session.out = lines.append
    group_proxy = namespace["constellation"]
    try:
        # reconfigure is offered where it exists only.
        assert "reconfigure" in dir(group_proxy.Tunable.knob)
        assert "reconfigure" not in dir(group_proxy.Example.plain)
        assert "reconfigure" not in dir(group_proxy)  # not every member has it
        # get_state shows the state name only, in the same format for one and for many.
        assert repr(group_proxy.Example.plain.get_state()) == "Example.plain: SUCCESS: NEW"
        assert repr(group_proxy.get_state()).splitlines() == [
            "Example.plain: SUCCESS: NEW",
            "Tunable.knob: SUCCESS: NEW",
        ]
        group_proxy.initialize({"Example": {}, "Tunable": {}})
        namespace["wait"]("INIT", targets=["Tunable.knob"])
        assert controller.states["Tunable.knob"] == "INIT"
        namespace["wait"]("INIT")
        group_proxy.launch()
        namespace["wait"]("ORBIT")
        # start() without an id continues the run sequence.
        group_proxy.start("beam_7")
        namespace["wait"]("RUN")
        group_proxy.stop()
        namespace["wait"]("ORBIT")
        view.refresh_run_ids()
        group_proxy.start()
        namespace["wait"]("RUN")
        assert "starting run beam_8" in lines
        assert {r.verb for r in controller.command("get_run_id").values()} == {"beam_8"}
        group_proxy.stop()
        namespace["wait"]("ORBIT")
    finally:
        session.close()
        view.close()


def test_a_reconfigure_scan_over_a_key_nobody_reads_fails(
    satellites: Any, fast_timing: Any, controller: Controller
) -> None:
    from controller.runs import RunError
    from controller.scan import Parameter, Scan

    class Knob(Example):
        def do_reconfigure(self, partial: Any) -> str:
            self.sample_period = partial.get_float("sample_period", self.sample_period)
            return "reconfigured"

    satellites(Knob, "k")
    controller.await_satellites(["Knob.k"])
    good = Scan(
        [Parameter("Knob.k", "sample_period", [0.1, 0.2])],
        prefix="g",
        duration=0.2,
        mode="reconfigure",
    )
    assert [r.ok for r in good.run(controller, {"_default": {}}, log=lambda _: None)] == [True] * 2
    bad = Scan(
        [Parameter("Knob.k", "sample_perod", [0.1, 0.2])],
        prefix="b",
        duration=0.2,
        mode="reconfigure",
    )
    controller.initialize({"Knob": {}})  # in ORBIT already: the scan's first step reconfigures
    controller.await_state("INIT")
    controller.launch()
    controller.await_state("ORBIT")
    with pytest.raises(RunError) as info:
        bad.run(controller, {"_default": {}}, log=lambda _: None)
    # A key the satellite never had is refused by reconfigure itself, naming the key.
    assert "key 'sample_perod': unknown key" in info.value.failures["Knob.k"]
