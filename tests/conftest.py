"""Fixtures shared by all tests: loopback-only satellites and controllers that always clean up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from constellation.core.environment import ProcessSettings
from tests.helpers import LOOPBACK, SatelliteProcess, unique_group
from tests.leaks import Snapshot, leaks_after

#: Shrunk timing for tests: heartbeats every 0.1 s instead of 0.5 s, metrics 10x faster. The
#: environment form is for started processes (their launcher parses it) ...
FAST_TIMING = {"CONSTELLATION_HEARTBEAT_SCALE": "0.2", "CONSTELLATION_METRIC_SCALE": "0.05"}
#: ... and the same values as settings for in-process satellites and controllers, which read
#: no environment (``settings=FAST_SETTINGS``).
FAST_SETTINGS = ProcessSettings.from_environ(FAST_TIMING)


@pytest.fixture(scope="module", autouse=True)
def no_leaks_in_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the module's last test if the module leaves anything behind.

    Module-scoped autouse fixtures are set up before, and torn down after, the module's other
    module-scoped fixtures (a shared satellite process, a controller), so this sees what those
    leave behind.
    """
    before = Snapshot.take()
    yield
    leaked = leaks_after(before)
    if leaked:
        pytest.fail(f"{request.node.nodeid} leaked: " + "; ".join(leaked), pytrace=False)


def _uses_shared_fixtures(request: pytest.FixtureRequest) -> bool:
    """True if the test uses a module- or session-scoped fixture other than the leak check."""
    definitions = request.node._fixtureinfo.name2fixturedefs
    return any(
        defs[-1].scope != "function"
        for name, defs in definitions.items()
        if name not in ("no_leaks_in_module",) and defs
    )


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves threads, file descriptors, sockets or child processes behind.

    Autouse fixtures are set up first and torn down last, so the check runs after the test's
    other fixtures (satellites, processes, controller) have closed what they started. The
    process-wide library singletons that may stay are listed in tests/leaks.py. A test that
    shares a module-scoped fixture (a satellite process, a controller) is checked for child
    processes only: that fixture's sockets reconnect and its thread pool grows while the test
    runs; all of it is checked when the module ends (:func:`no_leaks_in_module`).
    """
    before = Snapshot.take()
    yield
    leaked = leaks_after(before, own=not _uses_shared_fixtures(request))
    if leaked:
        pytest.fail(f"{request.node.nodeid} leaked: " + "; ".join(leaked), pytrace=False)


@pytest.fixture
def group() -> str:
    """A group name no other test uses."""
    return unique_group()


@pytest.fixture
def fast_timing(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Shrink heartbeat and metric intervals: in the environment of processes this test starts,
    and (through :func:`process_settings`) in its ``satellites`` and ``controller``."""
    for key, value in FAST_TIMING.items():
        monkeypatch.setenv(key, value)
    return dict(FAST_TIMING)


@pytest.fixture
def process_settings(request: pytest.FixtureRequest) -> ProcessSettings:
    """The settings of this test's in-process satellites and controller: :data:`FAST_SETTINGS`
    when the test uses ``fast_timing``, else the built-in defaults."""
    return FAST_SETTINGS if "fast_timing" in request.fixturenames else ProcessSettings()


@pytest.fixture
def satellites(group: str, tmp_path: Path, process_settings: ProcessSettings) -> Iterator[Any]:
    """Factory for in-process satellites on loopback; all are closed at teardown."""
    started: list[Any] = []

    def make(cls: type, name: str, **kwargs: Any) -> Any:
        kwargs.setdefault("interfaces", [LOOPBACK])
        kwargs.setdefault("settings", process_settings)
        sat = cls(name, kwargs.pop("group", group), **kwargs)
        sat.start()
        started.append(sat)
        return sat

    yield make
    for sat in reversed(started):
        sat.close()


@pytest.fixture
def processes(group: str, tmp_path: Path) -> Iterator[Any]:
    """Factory for satellites started from their console scripts; all are stopped at teardown."""
    started: list[SatelliteProcess] = []

    def start(
        script: str,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        group_name: str | None = None,
    ) -> SatelliteProcess:
        log_path = tmp_path / f"{script}.{name}.log"
        proc = SatelliteProcess(
            script,
            name,
            group_name or group,
            args,
            env={**FAST_TIMING, **(env or {})},
            log_path=log_path,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def controller(group: str, process_settings: ProcessSettings) -> Iterator[Any]:
    """A Controller of the test's group on loopback, closed at teardown."""
    from controller import Controller

    ctl = Controller(group, interface=LOOPBACK, settings=process_settings)
    yield ctl
    ctl.close()
