"""Library objects read no environment: the knobs reach satellites and controllers as settings.

A ``CONSTELLATION_*`` variable set in this process, even a malformed one, changes nothing for
a Satellite or Controller built here; only the launchers parse it (tests/unit/
test_cli_environment.py, and ``test_max_message_size_env_bounds_command_socket`` for a real
satellite process). Settings passed explicitly reach every part: heartbeat timing, metric
intervals and the message limit of the command socket.
"""

from __future__ import annotations

from typing import Any

import pytest
import zmq

from constellation.core.environment import ProcessSettings
from constellation.net.heartbeat import HeartbeatTiming
from controller import Controller
from satellites.example import Example
from tests.helpers import LOOPBACK

#: Malformed values: the launcher refuses each one; library code must not even look.
BOGUS = {
    "CONSTELLATION_HEARTBEAT_SCALE": "fast",
    "CONSTELLATION_METRIC_SCALE": "-1",
    "CONSTELLATION_MAX_MESSAGE_SIZE": "huge",
    "CONSTELLATION_MALLOC_TUNING": "off",
}
SMALL = ProcessSettings(heartbeat_scale=0.2, metric_scale=0.05, max_message_size=65_536)


def _answered(sat: Any, size: int) -> bool:
    """Whether the satellite's command socket answers a request of ``size`` bytes (a junk
    frame gets an ERROR reply; one over the limit makes ZeroMQ drop the connection)."""
    assert sat._command_server is not None
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://{LOOPBACK}:{sat._command_server.port}")
        sock.send_multipart([b"", b"\x00" * size])
        return bool(sock.poll(1500))
    finally:
        sock.close()


def test_satellite_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, satellites: Any
) -> None:
    for name, value in BOGUS.items():
        monkeypatch.setenv(name, value)
    sat = satellites(Example, "plain", settings=None)  # built as a script would: no settings
    assert sat._heartbeat.timing == HeartbeatTiming()
    assert sat.heartbeats.timing == HeartbeatTiming()
    assert sat.metrics.interval_scale == 1.0
    monkeypatch.setenv("CONSTELLATION_MAX_MESSAGE_SIZE", "65536")  # well-formed, still ignored
    assert _answered(sat, 70_000)


def test_controller_ignores_the_environment(monkeypatch: pytest.MonkeyPatch, group: str) -> None:
    for name, value in BOGUS.items():
        monkeypatch.setenv(name, value)
    with Controller(group, interface=LOOPBACK) as ctl:
        assert ctl.settings == ProcessSettings()
        assert ctl.heartbeats.timing == HeartbeatTiming()
        assert ctl._heartbeat.timing == HeartbeatTiming()


def test_explicit_settings_reach_every_part(satellites: Any, group: str) -> None:
    sat = satellites(Example, "small", settings=SMALL)
    fast = HeartbeatTiming(scale=0.2)
    assert sat._heartbeat.timing == fast and sat.heartbeats.timing == fast
    assert sat.metrics.interval_scale == 0.05
    assert _answered(sat, 60_000)
    assert not _answered(sat, 70_000)
    assert _answered(sat, 100)  # the satellite still serves others
    with Controller(group, interface=LOOPBACK, settings=SMALL) as ctl:
        assert ctl.heartbeats.timing == fast and ctl._heartbeat.timing == fast
        ctl.await_satellites(["Example.small"], timeout=20)
