"""End to end as a user runs it: satellites from their console scripts, a controller script."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from constellation.net.discovery import DiscoveryEvent, ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.net.mdns import MdnsDiscovery
from controller import Controller
from tests.helpers import LOOPBACK, REPO, console_script, wait_for


def test_controller_steers_two_satellite_processes(
    processes: Any, group: str, tmp_path: Path
) -> None:
    a = processes("SatelliteExample", "a")
    b = processes("SatelliteExample", "b")
    config = tmp_path / "run.toml"
    config.write_text(
        "[Example._default]\nsample_period = 0.01\n[Example.b]\nsample_period = 0.02\n"
    )
    changes: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.on_state_change(
            lambda n, o, s: (lock.acquire(), changes.append((n, o, s)), lock.release())
        )
        ctl.await_satellites(["Example.a", "Example.b"], timeout=20)
        replies = ctl.initialize(config)
        assert all(r.ok and r.verb == "transitioning" for r in replies.values())
        ctl.await_state("INIT", timeout=10)
        ctl.launch()
        ctl.await_state("ORBIT", timeout=10)
        ctl.start("r1")
        ctl.await_state("RUN", timeout=10)
        assert ctl.satellites["Example.a"].command("get_run_id").verb == "r1"
        ctl.stop()
        ctl.await_state("ORBIT", timeout=10)
        ctl.land()
        ctl.await_state("INIT", timeout=10)
        assert ctl.states == {"Example.a": "INIT", "Example.b": "INIT"}
        config_b = ctl.satellites["Example.b"].command("get_config").payload
        assert config_b["sample_period"] == 0.02
        with lock:
            seen = {(n, s) for n, _, s in changes}
        for name in ("Example.a", "Example.b"):
            assert {(name, s) for s in ("INIT", "ORBIT", "RUN")} <= seen

        left = threading.Event()
        ctl.on_leave(lambda name: name == "Example.a" and left.set())
        a.signal(signal.SIGINT)
        assert a.proc.wait(15) == 0
        assert left.wait(10), "controller did not notice the departure"
        assert ctl.states["Example.a"] == "DEAD"
        assert "Example.a" not in ctl.satellites
        assert ctl.states["Example.b"] == "INIT"
    assert b.proc.poll() is None  # closing the controller never affects satellites


def test_shutdown_command_ends_the_process(processes: Any, group: str) -> None:
    proc = processes("SatelliteExample", "s")
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites(["Example.s"], timeout=20)
        reply = ctl.shutdown()["Example.s"]
        assert reply.ok
    assert proc.proc.wait(15) == 0


def test_satellite_announces_and_withdraws_on_mdns(processes: Any, group: str) -> None:
    found: dict[ServiceId, Any] = {}
    gone: set[ServiceId] = set()
    browser = MdnsDiscovery(group, "Test.browser", NetworkScope((LOOPBACK,)))
    try:

        def on_event(event: DiscoveryEvent, service: Any) -> None:
            if event is DiscoveryEvent.ADDED:
                found[service.service] = service
            else:
                gone.add(service.service)

        browser.add_listener(list(ServiceId), on_event)
        proc = processes("SatelliteRandomTransmitter", "tx")
        wanted = {ServiceId.CONTROL, ServiceId.HEARTBEAT, ServiceId.MONITORING, ServiceId.DATA}
        wait_for(lambda: wanted <= set(found), 20, what="all four services")
        assert all(s.name == "RandomTransmitter.tx" for s in found.values())
        assert all(s.address == LOOPBACK and s.group == group for s in found.values())
        proc.signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0
        wait_for(lambda: wanted <= gone, 10, what="all four services withdrawn")
    finally:
        browser.close()


def test_other_groups_are_invisible(processes: Any, group: str) -> None:
    processes("SatelliteExample", "mine")
    processes("SatelliteExample", "theirs", group_name=f"{group}_other")
    with Controller(group.upper(), interface=LOOPBACK) as ctl:  # group names are case-insensitive
        ctl.await_satellites(["Example.mine"], timeout=20)
        other = Controller(f"{group}_other", interface=LOOPBACK)
        try:
            other.await_satellites(["Example.theirs"], timeout=20)
        finally:
            other.close()
        assert list(ctl.satellites) == ["Example.mine"]


def test_launcher_flags() -> None:
    exe = console_script("SatelliteExample")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "SatelliteExample" in version.stdout
    missing = subprocess.run([exe, "-n", "x"], capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "--group" in missing.stderr
    bad_name = subprocess.run(
        [exe, "-g", "g", "-n", "bad.name", "-i", LOOPBACK],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad_name.returncode == 2 and "bad.name" in bad_name.stderr


@pytest.mark.timeout(120)
def test_quick_start_script(processes: Any, group: str) -> None:
    processes("SatelliteExample", "a")
    processes("SatelliteExample", "b")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "my_run.py"),
            "-g",
            group,
            "-i",
            LOOPBACK,
            "--seconds",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert "Example.a" in result.stdout and "-> RUN" in result.stdout
