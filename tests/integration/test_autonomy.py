"""Autonomy end to end: heartbeats, lives, roles, conditional transitions, the controller's view.

Satellites that must die run as real processes (``processes`` fixture, SIGKILL / SIGTERM);
the others run in this process (``satellites`` fixture), where their state, run condition and
heartbeat tracker can be read directly. Heartbeat timing is shrunk five-fold (``fast_timing``):
the announced intervals are 0.1-0.42 s instead of 0.5-2.1 s, so a peer dies after about 2 s of
silence. Everything talks over 127.0.0.1.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import msgpack
import pytest
import zmq

from constellation.core.config import Configuration
from constellation.core.fsm import Command
from constellation.core.roles import Role, heartbeat_interval
from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.errors import ConfigError
from constellation.net.discovery import DiscoveredService, ServiceId
from constellation.protocol.chp1 import CHP1Message
from controller import Controller
from satellites.example import Example
from tests.conftest import FAST_SETTINGS
from tests.helpers import LOOPBACK, wait_for

__all__: list[str] = []

#: Heartbeat scale of FAST_SETTINGS (conftest): every interval is multiplied by this.
SCALE = FAST_SETTINGS.heartbeat_scale


class Gate(Example):
    """An Example whose ``do_starting`` takes ``start_delay`` s, or waits for ``release``."""

    start_delay = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.release.set()

    def do_initializing(self, config: Configuration) -> str:
        self.start_delay = config.get_float("start_delay", 0.0, min=0.0, max=5.0)
        return super().do_initializing(config)

    def do_starting(self, run_id: str) -> str:
        self.release.wait(10)
        time.sleep(self.start_delay)  # the "hardware" takes this long to get ready
        return super().do_starting(run_id)


@pytest.fixture
def ctl(fast_timing: dict[str, str], group: str) -> Iterator[Controller]:
    """A controller with the shrunk timing (its heartbeats are fast too)."""
    controller = Controller(group, interface=LOOPBACK, settings=FAST_SETTINGS)
    yield controller
    controller.close()


def _config(**sections: dict[str, Any]) -> dict[str, Any]:
    """``{"Type.Name": {...}}`` -> the two-level controller configuration mapping."""
    data: dict[str, Any] = {"_default": {"sample_period": 0.01}}
    for canonical, params in sections.items():
        type_name, _, name = canonical.partition(".")
        data.setdefault(type_name, {})[name] = params
    return data


def _to_state(ctl: Controller, config: dict[str, Any], state: str, run_id: str = "r1") -> None:
    """Step every satellite of ``ctl`` from NEW to ``state`` (INIT, ORBIT or RUN)."""
    ctl.initialize(config)
    ctl.await_state("INIT", 10)
    if state == "INIT":
        return
    ctl.launch()
    ctl.await_state("ORBIT", 10)
    if state == "ORBIT":
        return
    ctl.start(run_id)
    ctl.await_state("RUN", 10)


def _await_mesh(*sats: Any) -> None:
    """Wait until every satellite receives the heartbeats of every other one."""
    for sat in sats:
        others = {o.canonical_name for o in sats if o is not sat}
        wait_for(lambda s=sat, o=others: o <= set(s.heartbeats.peers()), 10, what="mesh")


def _last_changed(ctl: Controller, name: str) -> datetime:
    """When ``name`` last changed state, from its ``get_state`` reply tag."""
    reply = ctl.satellites[name].command("get_state")
    value = reply.tags["last_changed"]
    assert isinstance(value, datetime)
    return value


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


# --- death and departure -------------------------------------------------------------------------
def test_sigkill_of_dynamic_process_in_run_brings_peers_to_safe(
    processes: Any, satellites: Any, ctl: Controller
) -> None:
    killed = processes("SatelliteExample", "k")
    peer_proc = processes("SatelliteExample", "p")
    local = satellites(Example, "a")
    names = ["Example.k", "Example.p", "Example.a"]
    ctl.await_satellites(names, timeout=20)
    _to_state(ctl, _config(), "RUN")
    # k's subscribers: a, p and the controller. Shrunk: the real interval would be 2.1 s.
    expected = round(heartbeat_interval(3, 30.0) * SCALE, 3)
    wait_for(
        lambda: (peer := local.heartbeats.peer("Example.k")) and peer.interval_s == expected,
        5,
        what="k announcing the interval for 3 subscribers",
    )
    interval = local.heartbeats.peer("Example.k").interval_s

    killed_at = datetime.now(timezone.utc)
    killed.kill()
    wait_for(lambda: local.state is State.SAFE, 10, 0.005, "in-process peer SAFE")
    wait_for(lambda: ctl.states.get("Example.p") == "SAFE", 10, what="process peer SAFE")
    wait_for(lambda: ctl.states.get("Example.k") == "DEAD", 10, what="controller shows DEAD")

    local_reaction = _seconds(_last_changed(ctl, "Example.a"), killed_at)
    proc_reaction = _seconds(_last_changed(ctl, "Example.p"), killed_at)
    print(
        f"interval {interval:.3f} s; SAFE after {local_reaction:.3f} s (in-process), "
        f"{proc_reaction:.3f} s (process) = {local_reaction / interval:.2f} / "
        f"{proc_reaction / interval:.2f} intervals"
    )
    # Never before three silent intervals (the lives); the upper bound is generous for a loaded
    # machine yet still tells the lives rule from a slower one (departure, a fixed long timeout).
    assert 3 * interval < local_reaction < 10 * interval
    assert 3 * interval < proc_reaction < 10 * interval
    assert "Example.k died" in local.status
    assert local.run_condition & RunCondition.INTERRUPTED
    assert local.run_condition & RunCondition.DEGRADED
    assert not local.heartbeats.peer("Example.k").alive
    assert "Example.k" in ctl.statuses["Example.p"] or "Example.a" in ctl.statuses["Example.p"]
    assert peer_proc.proc.poll() is None


def test_sigterm_of_essential_process_in_orbit_interrupts_peers(
    processes: Any, satellites: Any, ctl: Controller
) -> None:
    essential = processes("SatelliteExample", "e")
    a = satellites(Example, "a")
    b = satellites(Example, "b")
    left: list[str] = []
    ctl.on_leave(left.append)
    ctl.await_satellites(["Example.e", "Example.a", "Example.b"], timeout=20)
    _to_state(ctl, _config(**{"Example.e": {"_autonomy": {"role": "ESSENTIAL"}}}), "ORBIT")
    wait_for(lambda: a.heartbeats.peer("Example.e") is not None, 5, what="beats of e")
    assert a.heartbeats.peer("Example.e").role is Role.ESSENTIAL

    essential.signal(signal.SIGTERM)
    wait_for(lambda: a.state is State.SAFE and b.state is State.SAFE, 10, what="peers SAFE")
    assert essential.proc.wait(15) == 0
    assert "Example.e" in a.status and "Example.e" in b.status
    wait_for(lambda: "Example.e" in left, 10, what="on_leave")
    assert ctl.states["Example.e"] == "DEAD"
    assert "received SIGTERM" in essential.output()


def test_departure_interrupts_only_for_essential_peers(
    fast_timing: dict[str, str], satellites: Any, ctl: Controller
) -> None:
    watcher = satellites(Example, "w")
    dynamic = satellites(Example, "dyn")
    essential = satellites(Example, "ess")
    ctl.await_satellites(["Example.w", "Example.dyn", "Example.ess"], timeout=20)
    _to_state(ctl, _config(**{"Example.ess": {"_autonomy": {"role": "ESSENTIAL"}}}), "ORBIT")
    wait_for(lambda: len(watcher.heartbeats.peers()) >= 3, 5, what="beats of all peers")
    interval = watcher.heartbeats.peer("Example.dyn").interval_s

    dynamic.close()  # withdraws its services without interrupting itself first
    wait_for(lambda: watcher.heartbeats.peer("Example.dyn") is None, 10, what="departure")
    time.sleep(5 * interval)  # longer than a silent peer takes to die: no late reaction
    assert watcher.state is State.ORBIT
    assert essential.state is State.ORBIT

    essential.close()
    wait_for(lambda: watcher.state is State.SAFE, 10, what="interrupt after ESSENTIAL departed")
    assert "Example.ess departed" in watcher.status
    wait_for(lambda: ctl.states.get("Example.ess") == "DEAD", 10, what="controller DEAD")


def test_transient_and_none_deaths_do_not_interrupt(
    processes: Any, satellites: Any, ctl: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sat.Example.w")
    none_proc = processes("SatelliteExample", "n")
    transient_proc = processes("SatelliteExample", "t")
    transient_term = processes("SatelliteExample", "tt")
    watcher = satellites(Example, "w")
    names = ["Example.n", "Example.t", "Example.tt", "Example.w"]
    ctl.await_satellites(names, timeout=20)
    config = _config(
        **{
            "Example.n": {"_autonomy": {"role": "NONE"}},
            "Example.t": {"_autonomy": {"role": "TRANSIENT"}},
            "Example.tt": {"_role": "transient"},  # the old flat spelling
        }
    )
    _to_state(ctl, config, "RUN")
    wait_for(lambda: len(watcher.heartbeats.peers()) >= 4, 5, what="beats of all peers")
    assert watcher.heartbeats.peer("Example.n").role is Role.NONE

    none_proc.kill()
    wait_for(lambda: not watcher.heartbeats.peer("Example.n").alive, 10, what="n dead")
    assert watcher.state is State.RUN
    assert watcher.run_condition == RunCondition.GOOD
    assert "NONE peer Example.n died" in caplog.text

    transient_proc.kill()
    wait_for(lambda: not watcher.heartbeats.peer("Example.t").alive, 10, what="t dead")
    # The reaction runs in the satellite's task worker, just after the tracker's event.
    wait_for(lambda: watcher.run_condition == RunCondition.DEGRADED, 5, what="run degraded")
    assert watcher.state is State.RUN
    # the warning is logged just after the condition is set
    degraded = "run marked degraded: TRANSIENT peer Example.t died"
    wait_for(lambda: degraded in caplog.text, 5, what="the degraded warning")

    transient_term.signal(signal.SIGTERM)  # interrupts itself (SAFE), then departs
    assert transient_term.proc.wait(15) == 0
    wait_for(lambda: watcher.heartbeats.peer("Example.tt") is None, 10, what="tt departed")
    assert "TRANSIENT peer Example.tt failed (reported SAFE" in caplog.text
    assert watcher.state is State.RUN
    expected = {"Example.n": "DEAD", "Example.t": "DEAD", "Example.tt": "DEAD", "Example.w": "RUN"}
    wait_for(lambda: ctl.states == expected, 5, what=f"controller view {expected}")
    ctl.stop(["Example.w"])
    ctl.await_state("ORBIT", 10, ["Example.w"])
    assert watcher.run_condition == RunCondition.DEGRADED


# --- conditional transitions ---------------------------------------------------------------------
def test_conditional_start_and_stop_order(
    fast_timing: dict[str, str], satellites: Any, ctl: Controller
) -> None:
    for name in ("c", "b", "a"):
        satellites(Gate, name)
    seen: list[tuple[float, str, str]] = []
    lock = threading.Lock()

    def record(name: str, _old: str, new: str) -> None:
        with lock:
            seen.append((time.monotonic(), name, new))

    ctl.on_state_change(record)
    ctl.await_satellites(["Gate.a", "Gate.b", "Gate.c"], timeout=20)
    config = _config(
        **{
            "Gate.a": {"start_delay": 0.3, "_conditions": {"require_stopping_after": ["Gate.b"]}},
            "Gate.b": {
                "start_delay": 0.1,
                "_conditions": {
                    "require_starting_after": ["Gate.a"],
                    "require_stopping_after": ["Gate.c"],
                },
            },
            "Gate.c": {"_conditions": {"require_starting_after": ["Gate.a", "Gate.b"]}},
        }
    )
    _to_state(ctl, config, "ORBIT")
    ctl.start("r1")
    ctl.await_state("RUN", 10)
    ran = {n: _last_changed(ctl, n) for n in ("Gate.a", "Gate.b", "Gate.c")}
    assert ran["Gate.a"] < ran["Gate.b"] < ran["Gate.c"]
    assert _seconds(ran["Gate.b"], ran["Gate.a"]) >= 0.1  # b's own delay, after a was done
    with lock:
        first = {n: min(t for t, m, s in seen if m == n and s == "RUN") for n in ran}
        b_starting = min(t for t, m, s in seen if m == "Gate.b" and s == "starting")
    assert first["Gate.a"] < first["Gate.b"] < first["Gate.c"]
    assert b_starting < first["Gate.a"]  # b waited in 'starting' while a was still starting

    ctl.stop()
    ctl.await_state("ORBIT", 10)
    stopped = {n: _last_changed(ctl, n) for n in ran}
    assert stopped["Gate.c"] < stopped["Gate.b"] < stopped["Gate.a"]


def test_condition_timeout_fails_naming_the_missing_peer(
    fast_timing: dict[str, str], satellites: Any, ctl: Controller
) -> None:
    other = satellites(Example, "a")
    waiting = satellites(Example, "b")
    ctl.await_satellites(["Example.a", "Example.b"], timeout=20)
    _await_mesh(other, waiting)
    conditions = {"require_starting_after": ["Example.a"], "transition_timeout": 0.5}
    _to_state(ctl, _config(**{"Example.b": {"_conditions": conditions}}), "ORBIT")
    began = time.monotonic()
    ctl.start("r1", targets=["Example.b"])  # a stays in ORBIT
    wait_for(lambda: waiting.state is State.ERROR, 5, 0.01, "b in ERROR")
    elapsed = time.monotonic() - began
    assert 0.5 <= elapsed < 1.5
    status = ctl.satellites["Example.b"].command("get_status").verb
    assert "timed out after 0.5 s waiting for Example.a (in ORBIT) to reach RUN" in status
    wait_for(lambda: ctl.states.get("Example.b") == "ERROR", 5, what="controller sees ERROR")
    # b is DYNAMIC: its failure interrupts a, which was waiting in ORBIT
    wait_for(lambda: ctl.states.get("Example.a") == "SAFE", 5, what="a interrupted")
    assert "Example.b failed" in ctl.statuses["Example.a"]


def test_required_peer_in_error_or_gone_fails_the_waiting_satellite_at_once(
    fast_timing: dict[str, str], satellites: Any, ctl: Controller
) -> None:
    slow = satellites(Gate, "a")
    waiting = satellites(Gate, "b")
    gone = satellites(Gate, "c")
    waiting_too = satellites(Gate, "d")
    ctl.await_satellites(["Gate.a", "Gate.b", "Gate.c", "Gate.d"], timeout=20)
    _await_mesh(slow, waiting, gone, waiting_too)
    config = _config(
        **{
            "Gate.b": {"_conditions": {"require_starting_after": ["Gate.a"]}},
            "Gate.d": {"_conditions": {"require_starting_after": ["Gate.c"]}},
        }
    )
    _to_state(ctl, config, "ORBIT")
    slow.release.clear()
    gone.release.clear()
    try:
        ctl.start("r1")
        wait_for(lambda: "Waiting for Gate.a" in waiting.status, 5, what="b waiting")
        wait_for(lambda: "Waiting for Gate.c" in waiting_too.status, 5, what="d waiting")
        assert waiting.state is State.starting

        failed_at = time.monotonic()
        slow.fail("bias supply tripped")
        wait_for(lambda: waiting.state is State.ERROR, 5, 0.005, "b in ERROR")
        assert time.monotonic() - failed_at < 0.5  # not the 30 s timeout
        assert waiting.status == (
            "TransitionError: required peer Gate.a is in ERROR: bias supply tripped"
        )

        left_at = time.monotonic()
        gone.close()
        wait_for(lambda: waiting_too.state is State.ERROR, 5, 0.005, "d in ERROR")
        assert time.monotonic() - left_at < 2.0  # the departure, not heartbeat loss
        assert waiting_too.status == "TransitionError: required peer Gate.c is gone (departed)"
    finally:
        slow.release.set()
        gone.release.set()


def test_controller_rejects_unknown_and_circular_conditions(
    fast_timing: dict[str, str], satellites: Any, ctl: Controller
) -> None:
    a = satellites(Example, "a")
    b = satellites(Example, "b")
    ctl.await_satellites(["Example.a", "Example.b"], timeout=20)
    wait_for(lambda: ctl.states == {"Example.a": "NEW", "Example.b": "NEW"}, 5, what="view")

    unknown = _config(**{"Example.b": {"_conditions": {"require_launch_after": ["Example.zz"]}}})
    with pytest.raises(ConfigError) as info:
        ctl.initialize(unknown)
    assert info.value.key == "Example.b._conditions.require_launching_after"
    assert "Example.zz" in str(info.value) and "not a satellite of this group" in str(info.value)

    circular = _config(
        **{
            "Example.a": {"_conditions": {"require_landing_after": ["Example.b"]}},
            "Example.b": {"_require_landing_after": ["example.A"]},
        }
    )
    with pytest.raises(ConfigError, match=r"Example\.a -> Example\.b -> Example\.a"):
        ctl.initialize(circular)
    assert (a.state, b.state) == (State.NEW, State.NEW)  # nothing was sent

    # The satellite itself rejects a self-reference (a controller that does not check).
    itself = {"_conditions": {"require_starting_after": ["Example.a"]}}
    assert ctl.satellites["Example.a"].command("initialize", itself).ok
    wait_for(lambda: a.state is State.ERROR, 5, what="a in ERROR")
    assert "_conditions.require_starting_after" in a.status
    assert "cannot wait for itself" in a.status


# --- roles ---------------------------------------------------------------------------------------
def test_get_role_reports_name_and_flags(
    fast_timing: dict[str, str], satellites: Any, ctl: Controller
) -> None:
    roles = {"none": "NONE", "transient": "TRANSIENT", "essential": "ESSENTIAL"}
    for name in (*roles, "default"):
        satellites(Example, name)
    names = [f"Example.{n}" for n in (*roles, "default")]
    ctl.await_satellites(names, timeout=20)
    new_role = ctl.satellites["Example.default"].command("get_role")
    assert (new_role.verb, new_role.payload) == ("DYNAMIC", 0x06)
    config = _config(
        **{f"Example.{n}": {"_autonomy": {"role": r.lower()}} for n, r in roles.items()}
    )
    _to_state(ctl, config, "INIT")
    expected = {
        "Example.none": ("NONE", 0x00),
        "Example.transient": ("TRANSIENT", 0x04),
        "Example.default": ("DYNAMIC", 0x06),
        "Example.essential": ("ESSENTIAL", 0x07),
    }
    replies = ctl.command("get_role")
    assert {n: (r.verb, r.payload) for n, r in replies.items()} == expected
    # The flags travel in every heartbeat: the controller's tracker maps them back to roles.
    wait_for(
        lambda: all(
            (p := ctl.heartbeats.peer(n)) is not None and p.role.name == role
            for n, (role, _) in expected.items()
        ),
        5,
        what="roles in heartbeats",
    )


# --- heartbeats on the wire ----------------------------------------------------------------------
def _read_beats(sock: zmq.Socket[Any], until: float) -> list[CHP1Message]:
    beats = []
    while (left := until - time.monotonic()) > 0:
        if sock.poll(int(left * 1000) + 1):
            beats.append(CHP1Message.decode(sock.recv_multipart()))
    return beats


def _subscriber(port: int) -> zmq.Socket[Any]:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(f"tcp://{LOOPBACK}:{port}")
    return sock


def test_heartbeats_carry_state_role_interval_and_status(
    fast_timing: dict[str, str], satellites: Any, group: str
) -> None:
    sat = satellites(Example, "hb", group=f"{group}_alone")
    port = sat._heartbeat.port
    subs = [_subscriber(port)]
    try:
        wait_for(lambda: sat._heartbeat.subscribers == 1, 5, what="one subscriber")
        beats = _read_beats(subs[0], time.monotonic() + 0.35)
        regular = [b for b in beats if not b.is_extrasystole]
        assert len(regular) >= 3
        first = regular[0]
        assert (first.sender, first.state, first.flags) == ("Example.hb", State.NEW, 0x06)
        assert first.interval_ms == 100  # 0.5 s minimum, shrunk
        assert all(b.status is None for b in regular[1:])  # status only when it changed

        subs += [_subscriber(port) for _ in range(4)]  # 5 subscribers: 3.0 s, shrunk 0.6 s
        wait_for(lambda: sat._heartbeat.subscribers == 5, 5, what="five subscribers")
        wait_for(
            lambda: any(b.interval_ms == 600 for b in _read_beats(subs[0], time.monotonic() + 0.2)),
            5,
            what="interval scaled to the subscriber count",
        )

        config = {"_autonomy": {"max_heartbeat_interval": 1.0}, "sample_period": 0.1}
        sat.transition(Command.initialize, config)
        beats = _read_beats(subs[0], time.monotonic() + 0.7)
        extra = [b for b in beats if b.is_extrasystole]
        # one extra beat per change, in order (a change reported late may be repeated)
        states = [State(b.state) for b in extra]
        assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == [
            State.initializing,
            State.INIT,
        ]
        assert extra[-1].status == "Initialized with sample_period=0.1 s"
        assert extra[-1].flags & 0x7F == 0x06
        after = beats[beats.index(extra[-1]) :]
        assert len(after) >= 3
        assert {b.interval_ms for b in after} == {200}  # capped at 1.0 s, shrunk
        for sock in subs[1:]:
            sock.close(linger=0)
        wait_for(lambda: sat._heartbeat.subscribers == 1, 5, what="unsubscribed")
    finally:
        for sock in subs:
            sock.close(linger=0)


def test_controller_sends_heartbeats(ctl: Controller) -> None:
    sock = _subscriber(ctl._heartbeat.port)
    try:
        beats = _read_beats(sock, time.monotonic() + 0.5)
    finally:
        sock.close(linger=0)
    assert beats
    assert {(b.sender, b.flags & 0x7F) for b in beats} == {("Controller", 0)}
    assert all(b.interval_ms >= 100 for b in beats)


class FakePeer:
    """A raw PUB socket on loopback that a satellite's heartbeat receiver is told to follow."""

    def __init__(self, sat: Any, name: str = "Fake.pub") -> None:
        self.name = name
        self.sock = zmq.Context.instance().socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port(f"tcp://{LOOPBACK}")
        service = DiscoveredService(sat.group, name, ServiceId.HEARTBEAT, LOOPBACK, port)
        sat.heartbeats.peer_added(service)
        # PUB drops messages until the connection is up: beat until the satellite heard one.
        wait_for(
            lambda: self.beat(State.ORBIT) or sat.heartbeats.peer(name) is not None,
            5,
            0.05,
            "fake peer known",
        )

    def beat(self, state: State, interval_ms: int = 200, flags: int = 0) -> None:
        self.sock.send_multipart(CHP1Message(self.name, state, flags, interval_ms).encode())

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def close(self) -> None:
        self.sock.close(linger=0)


def test_lives_are_lost_per_silent_interval_and_restored_by_a_beat(
    fast_timing: dict[str, str], satellites: Any
) -> None:
    sat = satellites(Example, "lives")
    fake = FakePeer(sat)
    try:
        fake.beat(State.INIT, interval_ms=200)  # the last beat: recognisable by its state
        wait_for(lambda: sat.heartbeats.peer(fake.name).state == State.INIT, 5, what="last beat")
        assert sat.heartbeats.peer(fake.name).interval_s == 0.2
        silent_from = sat.heartbeats.peer(fake.name).last_seen
        changes: list[tuple[float, int]] = []

        def lives_changed() -> bool:
            lives = sat.heartbeats.peer(fake.name).lives
            if not changes or changes[-1][1] != lives:
                changes.append((time.monotonic() - silent_from, lives))
            return lives == 0

        wait_for(lives_changed, 5, 0.002, "peer dead")
        # one life per 1.5 x 0.2 s of silence; DEAD with the third
        assert [lives for _, lives in changes] == [3, 2, 1, 0]
        for (at, _), due in zip(changes[1:], (0.3, 0.6, 0.9), strict=True):
            assert due <= at < due + 0.1
        info = sat.heartbeats.peer(fake.name)
        assert (info.alive, State(info.state)) == (False, State.DEAD)

        fake.beat(State.ORBIT)
        wait_for(lambda: sat.heartbeats.peer(fake.name).alive, 5, what="revived")
        assert sat.heartbeats.peer(fake.name).lives == 3
        assert sat.state is State.NEW
    finally:
        fake.close()


def _malformed_beats() -> list[list[bytes]]:
    good = CHP1Message("Fake.pub", State.ORBIT, 0, 200, "ok").encode()
    pack = msgpack.packb
    head = pack("CHP\x01") + pack("Fake.pub") + pack(msgpack.Timestamp(0))
    return [
        [b"garbage"],
        [b""],
        [good[0][:-3]],  # truncated
        [good[0] + b"\x00"],  # trailing bytes
        [*good, b"third frame"],
        [good[0], b"\xff\xfe not utf-8"],
        [pack("CSCP\x01") + good[0][5:]],  # another protocol
        [head + pack(0x1FF) + pack(0) + pack(200)],  # state out of range
        [head + pack(0x30) + pack(0x100) + pack(200)],  # flags out of range
        [head + pack(0x30) + pack(0) + pack(70000)],  # interval beyond uint16
        [head + pack("ORBIT") + pack(0) + pack(200)],  # wrong type
        [pack("CHP\x01") + pack(42) + good[0][len(pack("CHP\x01") + pack("Fake.pub")) :]],
        CHP1Message("bad name!", State.ERROR, 0x07, 200).encode(),  # not a valid sender
        CHP1Message("", State.ERROR, 0x07, 200).encode(),
        CHP1Message("Other.sat", State.ERROR, 0x07, 200).encode(),  # not who we follow there
    ]


def test_garbage_on_heartbeat_sockets_is_dropped(
    fast_timing: dict[str, str],
    satellites: Any,
    ctl: Controller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sat = satellites(Example, "g")
    ctl.await_satellites(["Example.g"], timeout=20)
    _to_state(ctl, _config(), "ORBIT")
    ctx = zmq.Context.instance()
    port = sat._heartbeat.port

    # 1. junk sent *to* the XPUB port: an XSUB (which may send anything) and raw TCP
    xsub = ctx.socket(zmq.XSUB)
    xsub.setsockopt(zmq.LINGER, 0)
    xsub.connect(f"tcp://{LOOPBACK}:{port}")
    raw = socket.create_connection((LOOPBACK, port), timeout=5)
    try:
        raw.sendall(b"\xff" * 64 + b"GET / HTTP/1.0\r\n\r\n")
        wait_for(
            lambda: xsub.send(b"garbage") or sat._heartbeat.bad_input > 0, 5, 0.05, "junk seen"
        )
        for frames in ([b"a", b"b", b"c"], [b""], [b"\x02xyz"], [b"\x01topic"], [bytes(10000)]):
            xsub.send_multipart(frames)
        wait_for(lambda: sat._heartbeat.bad_input >= 5, 5, what="all junk dropped")
    finally:
        raw.close()
        xsub.close(linger=0)
    assert "on heartbeat socket dropped" in caplog.text

    # 2. malformed heartbeats *received* from a fake publisher the satellite follows
    fake = FakePeer(sat)
    try:
        before = sat.heartbeats.bad_input
        for frames in _malformed_beats():
            fake.send(frames)
        fake.beat(State.RUN)  # a good beat after the garbage is still taken
        wait_for(
            lambda: sat.heartbeats.peer(fake.name).state == State.RUN, 5, what="good beat after"
        )
        assert sat.heartbeats.bad_input - before == len(_malformed_beats())
    finally:
        fake.close()
    assert "malformed heartbeat dropped" in caplog.text
    assert "Fake.pub" in sat.heartbeats.peers()
    assert set(sat.heartbeats.peers()) <= {"Controller", "Fake.pub"}  # no bogus senders

    # the satellite never noticed: same state, answering, its beats still reach the controller
    assert sat.state is State.ORBIT
    assert ctl.satellites["Example.g"].command("get_state").verb == "ORBIT"
    seen = ctl.heartbeats.peer("Example.g").last_seen
    wait_for(lambda: ctl.heartbeats.peer("Example.g").last_seen > seen, 5, what="still beating")
    ctl.land()
    ctl.await_state("INIT", 10)


# --- the controller's view -----------------------------------------------------------------------
def test_controller_view_follows_heartbeats_and_membership(
    fast_timing: dict[str, str], satellites: Any, ctl: Controller
) -> None:
    events: list[tuple[str, ...]] = []
    lock = threading.Lock()

    def add(*event: str) -> None:
        with lock:
            events.append(event)

    ctl.on_join(lambda name: add("join", name))
    ctl.on_leave(lambda name: add("leave", name))
    ctl.on_state_change(lambda name, old, new: add("state", name, old, new))
    sat = satellites(Example, "v")
    wait_for(lambda: ctl.states.get("Example.v") == "NEW", 10, what="joined in NEW")

    sat.fail("cooling water flow too low")  # no command: only heartbeats can tell
    wait_for(lambda: ctl.states.get("Example.v") == "ERROR", 5, what="ERROR via heartbeat")
    assert ctl.statuses["Example.v"] == "cooling water flow too low"

    sat.close()
    wait_for(lambda: ("leave", "Example.v") in events, 10, what="on_leave")
    assert ctl.states["Example.v"] == "DEAD", events
    assert "Example.v" not in ctl.satellites
    with lock:
        assert events[0] == ("join", "Example.v")
        states = [e[2:] for e in events if e[0] == "state"]
    assert states == [("?", "NEW"), ("NEW", "ERROR"), ("ERROR", "DEAD")]
