"""Monitoring over CMDP1: logs by level, metrics with units, notifications, garbage, the Monitor.

Satellites run in-process (``satellites``) or from their console scripts (``processes``); the
listener side is :class:`MonitoringListener` or the ``Monitor`` command; all on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from constellation.core.states import State
from constellation.net.discovery import ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.net.listener import (
    MetricStats,
    MonitoringListener,
    log_subscriptions,
    metric_subscriptions,
)
from constellation.net.mdns import MdnsDiscovery
from constellation.net.monitoring import STATUS, TRACE
from constellation.protocol.cmdp1 import CMDP1Log, CMDP1Metric, CMDP1Notification
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from controller.monitor import LOG_HEADER, METRIC_HEADER, RotatingCsv
from satellites.example import Example
from tests.conftest import FAST_TIMING
from tests.helpers import LOOPBACK, console_script, wait_for


class Inbox:
    """Collects what a listener delivers (from its loop thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.logs: list[CMDP1Log] = []
        self.metrics: list[CMDP1Metric] = []
        self.notifications: list[CMDP1Notification] = []

    def log(self, message: CMDP1Log) -> None:
        with self._lock:
            self.logs.append(message)

    def metric(self, message: CMDP1Metric) -> None:
        with self._lock:
            self.metrics.append(message)

    def notification(self, message: CMDP1Notification) -> None:
        with self._lock:
            self.notifications.append(message)

    def values(self, name: str) -> list[Any]:
        with self._lock:
            return [m.value for m in self.metrics if m.name == name]

    def find_log(self, text: str) -> list[CMDP1Log]:
        with self._lock:
            return [m for m in self.logs if text in m.message]


@pytest.fixture
def listen(group: str) -> Any:
    """Factory for listeners on loopback with an :class:`Inbox`; closed at teardown."""
    opened: list[MonitoringListener] = []

    def make(**kwargs: Any) -> tuple[MonitoringListener, Inbox]:
        inbox = Inbox()
        listener = MonitoringListener(
            group,
            LOOPBACK,
            on_log=inbox.log,
            on_metric=inbox.metric,
            on_notification=inbox.notification,
            **kwargs,
        )
        opened.append(listener)
        return listener, inbox

    yield make
    for listener in opened:
        listener.close()


def _command(sat: Any, verb: str, payload: Any = NO_PAYLOAD) -> CSCP1Message:
    """One CSCP request to an in-process satellite's command port."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://{LOOPBACK}:{sat._command_server.port}")
        sock.send_multipart(CSCP1Message("Test.ctrl", CSCPType.REQUEST, verb, payload).encode())
        assert sock.poll(5000), f"no reply to {verb}"
        reply = CSCP1Message.decode(sock.recv_multipart())
    finally:
        sock.close()
    assert reply.msg_type is CSCPType.SUCCESS, f"{verb}: {reply.verb}"
    return reply


def _transition(sat: Any, verb: str, state: str, payload: Any = NO_PAYLOAD) -> None:
    _command(sat, verb, payload)
    wait_for(lambda: sat.state.name == state, 10, what=f"{sat.canonical_name} in {state}")


def _subscribed(sat: Any, *topics: str) -> bool:
    return all(sat.monitoring.wants(t) for t in topics)


# --- pure helpers ---------------------------------------------------------------------------
def test_subscriptions_follow_protocol_5_3() -> None:
    assert log_subscriptions("warning") == ["LOG/WARNING", "LOG/STATUS", "LOG/CRITICAL"]
    assert log_subscriptions("STATUS", ["fsm"]) == ["LOG/STATUS/FSM", "LOG/CRITICAL/FSM"]
    assert log_subscriptions("OFF") == [] == log_subscriptions(None)
    assert len(log_subscriptions("TRACE")) == 6
    with pytest.raises(ValueError):
        log_subscriptions("ERROR")
    assert metric_subscriptions(None) == []
    assert metric_subscriptions([]) == ["STAT/"]
    assert metric_subscriptions(["tx_bytes", "STATE"]) == ["STAT/TX_BYTES", "STAT/STATE"]


def test_metric_stats_rate_for_counters_average_for_gauges() -> None:
    stats = MetricStats(window=3)

    def sample(name: str, value: Any, second: int) -> Any:
        stamp = msgpack.Timestamp(1_700_000_000 + second, 0)
        return stats.add(CMDP1Metric("T.a", name, value, "B", time=stamp))

    assert sample("TX_BYTES", 100, 0).rate is None
    second = sample("TX_BYTES", 300, 2)
    assert second.rate == pytest.approx(100.0) and second.rate_unit == "B/s"
    assert sample("TX_BYTES", 0, 3).rate is None  # counter restarted with a new run
    assert [sample("LOAD", v, i).average for i, v in enumerate([1.0, 2.0, 3.0, 10.0])] == [
        pytest.approx(x) for x in (1.0, 1.5, 2.0, 5.0)
    ]
    assert sample("STATE", "RUN", 5).rate is None and sample("STATE", "RUN", 6).average is None


def test_csv_rotation_keeps_a_few_old_files(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    writer = RotatingCsv(path, LOG_HEADER, max_bytes=200, backups=2)
    for i in range(40):
        writer.write(("2026-01-01T00:00:00+00:00", "Example.a", "INFO", "FSM", f"line {i}"))
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "log.csv.1", "log.csv.2"]
    for name in ("log.csv", "log.csv.1", "log.csv.2"):
        rows = list(csv.reader((tmp_path / name).open()))
        assert tuple(rows[0]) == LOG_HEADER and len(rows) > 1
        assert (tmp_path / name).stat().st_size < 300
    last = list(csv.reader(path.open()))[-1]
    assert last[-1] == "line 39"
    again = RotatingCsv(path, LOG_HEADER, max_bytes=10_000)  # restart: append, no 2nd header
    again.write(("t", "s", "INFO", "", "after restart"))
    again.close()
    rows = list(csv.reader(path.open()))
    assert rows[-1][-1] == "after restart" and rows.count(list(LOG_HEADER)) == 1


# --- logs -------------------------------------------------------------------------------------
def test_listener_at_warning_gets_warning_and_above_only(satellites: Any, listen: Any) -> None:
    sat = satellites(Example, "logs")
    listener, inbox = listen(level="WARNING", notifications=False)
    wait_for(
        lambda: _subscribed(sat, "LOG/WARNING/X", "LOG/STATUS/X", "LOG/CRITICAL/X"),
        what="the satellite to see the subscriptions",
    )
    assert listener.senders == ["Example.logs"]
    # Nothing below WARNING is even built while nobody asks for it.
    assert not sat.monitoring.wants("LOG/INFO/EXAMPLE")

    sat.log.log(TRACE, "m-trace")
    sat.log.debug("m-debug")
    sat.log.info("m-info")
    sat.log.getChild("hw").warning("m-warning")
    sat.log.log(STATUS, "m-status")
    try:
        raise ValueError("bias lost")
    except ValueError:
        sat.log.exception("m-error")
    sat.log.critical("m-critical")  # sent last: once here, everything before has arrived
    wait_for(lambda: inbox.find_log("m-critical"), what="the CRITICAL message")

    got = [(m.level, m.log_topic, m.message) for m in inbox.logs if m.message.startswith("m-")]
    assert got == [
        ("WARNING", "HW", "m-warning"),
        ("STATUS", "EXAMPLE", "m-status"),
        ("CRITICAL", "EXAMPLE", "m-error"),  # Python ERROR travels as CRITICAL
        ("CRITICAL", "EXAMPLE", "m-critical"),
    ]
    error = inbox.find_log("m-error")[0]
    assert error.sender == "Example.logs"
    assert "ValueError: bias lost" in error.tags["traceback"]
    assert error.tags["funcName"] == "test_listener_at_warning_gets_warning_and_above_only"

    listener.close()  # the listener leaves: the satellite stops building log messages
    wait_for(lambda: not sat.monitoring.wants("LOG/WARNING/EXAMPLE"), what="unsubscription")
    assert sat.state.name == "NEW"


# --- metrics ----------------------------------------------------------------------------------
def test_metrics_arrive_with_units_and_a_failing_poll_is_only_a_warning(
    satellites: Any, listen: Any, fast_timing: dict[str, str]
) -> None:
    sat = satellites(Example, "met")
    counter = iter(range(1_000_000))
    sat.metrics.register("TEMPERATURE", "degC", "Sensor temperature", lambda: 20.5, 1.0)
    sat.metrics.register("EVENTS", "", "Events so far", lambda: next(counter), 1.0)
    sat.metrics.register("NUMPY", "V", "A numpy scalar", lambda: np.float32(1.5), 1.0)
    sat.metrics.register("BROKEN", "", "Raises", lambda: 1 / 0, 1.0)
    polled_in: set[str] = set()

    def run_only() -> int:
        polled_in.add(sat.state.name)
        return 1

    sat.metrics.register("RUN_ONLY", "", "Sampled in RUN", run_only, 1.0, frozenset({State.RUN}))
    sat.metrics.register("NOT_SCALAR", "", "A list cannot travel", lambda: [1, 2], 1.0)
    _, inbox = listen(level="WARNING", metrics=[])
    wait_for(
        lambda: _subscribed(sat, "STAT/STATE", "LOG/WARNING/MONITORING"),
        what="the satellite to see the subscriptions",
    )

    _transition(sat, "initialize", "INIT", {"sample_period": 0.01})
    _transition(sat, "launch", "ORBIT")
    _transition(sat, "start", "RUN", "run_7")
    wait_for(
        lambda: inbox.find_log("BROKEN") and inbox.find_log("NOT_SCALAR"),
        what="warnings about the broken metrics",
    )
    seen = len(inbox.values("EVENTS"))
    wait_for(lambda: len(inbox.values("EVENTS")) >= seen + 3, what="metrics to keep coming")
    wait_for(
        lambda: inbox.values("CPU_LOAD_AVG") and inbox.values("MEM_AVAIL"), what="the host metrics"
    )
    _transition(sat, "stop", "ORBIT")
    wait_for(lambda: inbox.values("STATE")[-2:] == ["stopping", "ORBIT"], what="STATE = ORBIT")

    assert sat.state.name == "ORBIT"  # never ERROR because of a metric
    units = {m.name: m.unit for m in inbox.metrics}
    assert units["TEMPERATURE"] == "degC" and units["NUMPY"] == "V"
    assert units["CPU_LOAD_AVG"] == "%" and units["MEM_AVAIL"] == "MiB"
    assert {"BROKEN", "NOT_SCALAR"}.isdisjoint(units)
    assert inbox.values("TEMPERATURE")[0] == 20.5 and inbox.values("NUMPY")[0] == 1.5
    events = inbox.values("EVENTS")
    assert all(isinstance(v, int) for v in events) and events == sorted(events)
    states = inbox.values("STATE")
    for state in ("initializing", "INIT", "launching", "ORBIT", "starting", "RUN", "stopping"):
        assert state in states
    assert states[-1] == "ORBIT"
    assert inbox.values("RUN_ID") == ["run_7"]
    assert inbox.values("RUN_ONLY") and polled_in == {"RUN"}
    warning = inbox.find_log("BROKEN")[0]
    assert (warning.level, warning.log_topic) == ("WARNING", "MONITORING")
    assert "ZeroDivisionError" in warning.message
    assert all(m.sender == "Example.met" for m in inbox.metrics)


def test_metric_subscription_by_name_gets_only_that_metric(
    satellites: Any, listen: Any, fast_timing: dict[str, str]
) -> None:
    sat = satellites(Example, "one")
    polls = iter(range(1_000_000))
    sat.metrics.register("STATE_EXTRA", "", "STATE is a prefix of it", lambda: next(polls), 1.0)
    listener, inbox = listen(level=None, metrics=["state"], notifications=False)
    assert listener.subscriptions == ["STAT/STATE"]
    wait_for(lambda: _subscribed(sat, "STAT/STATE"), what="subscription")
    _transition(sat, "initialize", "INIT", {})
    # STAT/STATE is also a prefix of STAT/STATE_EXTRA, so the satellite sends that too ...
    wait_for(lambda: next(polls) > 3, what="STATE_EXTRA being sampled and sent")
    _transition(sat, "launch", "ORBIT")
    wait_for(lambda: "ORBIT" in inbox.values("STATE"), what="STATE = ORBIT")
    # ... and the listener, which got everything sent before ORBIT, hands on only STATE.
    assert inbox.values("STATE") == ["initializing", "INIT", "launching", "ORBIT"]
    assert inbox.logs == []


# --- notifications ----------------------------------------------------------------------------
def test_notifications_list_log_topics_and_metrics(satellites: Any, listen: Any) -> None:
    sat = satellites(Example, "note")
    first, _ = listen(level=None)
    wait_for(
        lambda: first.offered("Example.note", "STAT") and first.offered("Example.note", "LOG"),
        what="LOG? and STAT? notifications",
    )
    metrics = first.offered("Example.note", "STAT")
    assert {"STATE", "RUN_ID", "CPU_LOAD_AVG", "MEM_AVAIL"} <= set(metrics)
    assert all(isinstance(text, str) and text for text in metrics.values())
    assert {"EXAMPLE", "FSM"} <= set(first.offered("Example.note", "LOG"))

    # A second listener gets its own notification although the topic is already subscribed.
    second, inbox = listen(level=None)
    wait_for(lambda: second.offered("Example.note", "STAT"), what="notification for listener 2")
    assert all(n.sender == "Example.note" for n in inbox.notifications)

    sat.metrics.register("HV_CURRENT", "uA", "Bias current", lambda: 0.1, 10.0)
    wait_for(
        lambda: all("HV_CURRENT" in li.offered("Example.note", "STAT") for li in (first, second)),
        what="an updated notification for both listeners",
    )
    assert first.offered("Example.note", "STAT")["HV_CURRENT"] == "Bias current"


# --- garbage ----------------------------------------------------------------------------------
def test_garbage_on_the_monitoring_socket_is_dropped(satellites: Any, listen: Any) -> None:
    sat = satellites(Example, "junk")
    listener, inbox = listen(level="INFO", notifications=False)
    wait_for(lambda: _subscribed(sat, "LOG/INFO/EXAMPLE"), what="subscription")
    endpoint = f"tcp://{LOOPBACK}:{sat.monitoring.port}"
    ctx = zmq.Context.instance()
    xsub = ctx.socket(zmq.XSUB)
    dealer = ctx.socket(zmq.DEALER)  # wrong socket type: ZeroMQ refuses the handshake
    raw = ctx.socket(zmq.STREAM)  # raw TCP bytes, not even ZMTP
    try:
        for sock in (xsub, dealer, raw):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
        rng = np.random.default_rng(1)
        for i in range(300):
            junk = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
            xsub.send_multipart([b"\x07" + junk, b"\x01LOG/", junk])  # not a subscription
            xsub.send(b"\x02" + junk)
            with contextlib.suppress(zmq.Again):  # no peer once the handshake failed
                dealer.send(junk or b"x", zmq.NOBLOCK)
            if i % 50 == 0:
                xsub.send(b"")
        assert raw.poll(5000), "no TCP connection"
        raw_id, _ = raw.recv_multipart()  # the connect notification names the peer
        raw.send_multipart([raw_id, b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256))])
        wait_for(lambda: sat.monitoring._bad_input.total >= 600, what="the junk to be read")
        sat.log.info("still publishing")
        wait_for(lambda: inbox.find_log("still publishing"), what="a log after the garbage")
    finally:
        for sock in (xsub, dealer, raw):
            sock.close(linger=0)
    # Raw bytes can read as a (ZMTP 1.0) subscription; it ends with the junk connection.
    wait_for(lambda: not sat.monitoring.wants("LOG/DEBUG/EXAMPLE"), what="junk peers gone")
    assert sat.monitoring.wants("LOG/INFO/EXAMPLE")
    assert sat.state.name == "NEW"
    assert listener.dropped == 0


def test_listener_drops_malformed_messages_with_a_warning(
    group: str, listen: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A fake monitoring service sends junk on subscribed topics, then one good message."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port(f"tcp://{LOOPBACK}")
    fake = MdnsDiscovery(group, "Fake.junk", NetworkScope((LOOPBACK,)))
    try:
        fake.announce(ServiceId.MONITORING, port)
        with caplog.at_level(logging.WARNING, "constellation.net.listener"):
            listener, inbox = listen(level="INFO", metrics=[], notifications=False)
            wanted = {b"\x01" + t.encode() for t in listener.subscriptions}
            while wanted:
                assert pub.poll(10_000), f"the listener did not subscribe {wanted}"
                wanted.discard(pub.recv())
            good = CMDP1Log("Fake.junk", "INFO", "good one", "FAKE").encode()
            junk = [
                [b"LOG/INFO", b"not msgpack", b"x"],
                [b"LOG/INFO", good[1], b"\xff\xfe not utf-8"],
                [b"LOG/INFO/", good[1], b"empty topic"],
                [b"STAT/X", good[1], b"\xc1"],
                [b"STAT/X", good[1], msgpack.packb([1, 2]) + b"\x00\xa0"],
                [b"LOG/INFO", good[1]],
                [b"LOG/INFO", good[1], b"a", b"b"],
                [b"LOG/INFO", CSCP1Message("F.j", CSCPType.REQUEST, "x").encode()[0], b"x"],
            ]
            for frames in junk:
                pub.send_multipart(frames)
            pub.send_multipart(good)
            wait_for(lambda: inbox.find_log("good one"), what="the good message")
        assert listener.dropped == len(junk)
        warnings = [r for r in caplog.records if "malformed" in r.getMessage()]
        assert len(warnings) == 1  # rate-limited: one warning for the whole burst
        assert inbox.metrics == []
    finally:
        fake.close()
        pub.close(linger=0)


# --- the Monitor command ----------------------------------------------------------------------
def test_monitor_command_writes_csv_and_leaves_the_group_alone(
    processes: Any, controller: Any, group: str, tmp_path: Path
) -> None:
    # Normal heartbeats: this test is about monitoring, not about surviving a loaded machine.
    sat = processes("SatelliteExample", "p", env={"CONSTELLATION_HEARTBEAT_SCALE": "1"})
    controller.await_satellites(["Example.p"], timeout=20)
    wait_for(lambda: controller.states.get("Example.p") == "NEW", what="the first state")
    changes: list[tuple[str, str]] = []
    # "?" -> NEW is the controller learning the first state, not a change of the satellite.
    controller.on_state_change(lambda name, old, new: old != "?" and changes.append((old, new)))
    out_dir = tmp_path / "mon"
    stdout = tmp_path / "monitor.out"
    cmd = [
        console_script("Monitor"),
        "-g",
        group,
        "-i",
        LOOPBACK,
        "-l",
        "DEBUG",
        "--metrics",
        "-o",
        str(out_dir),
    ]
    env = {**os.environ, **FAST_TIMING}
    with stdout.open("wb") as out:
        monitor = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
    try:
        # The metric list is the last answer to the subscriptions made on connecting.
        wait_for(
            lambda: any(
                "Example.p" in line and "metrics: " in line
                for line in stdout.read_text().splitlines()
            ),
            15,
            what="the Monitor to connect",
        )
        assert changes == []  # starting the Monitor changed nothing
        assert controller.states == {"Example.p": "NEW"}

        controller.initialize({"Example": {"p": {"sample_period": 0.01}}})
        controller.await_state("INIT", timeout=10)
        controller.launch()
        controller.await_state("ORBIT", timeout=10)
        controller.start("mon_1")
        controller.await_state("RUN", timeout=10)
        wait_for(lambda: (out_dir / "metric_CPU_LOAD_AVG.csv").exists(), 10, what="host metrics")
        controller.stop()
        controller.await_state("ORBIT", timeout=10)
        wait_for(
            lambda: "state stopping -> ORBIT" in (out_dir / "log.csv").read_text(),
            10,
            what="the last log row",
        )
        wait_for(lambda: changes and changes[-1][1] == "ORBIT", what="the controller's view")
        before = list(changes)

        monitor.send_signal(signal.SIGINT)
        assert monitor.wait(10) == 0, monitor.stderr.read() if monitor.stderr else ""
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
    assert controller.satellites["Example.p"].command("get_state").verb == "ORBIT"
    assert changes == before  # stopping the Monitor changed nothing either
    assert monitor.stderr is not None and monitor.stderr.read() == b""
    assert sat.proc.poll() is None

    logs = list(csv.DictReader((out_dir / "log.csv").open()))
    assert tuple(logs[0]) == LOG_HEADER
    messages = {(r["sender"], r["level"], r["topic"], r["message"]) for r in logs}
    assert ("Example.p", "INFO", "FSM", "state NEW -> initializing") in messages
    assert ("Example.p", "INFO", "FSM", "state starting -> RUN") in messages

    def rows(name: str) -> list[dict[str, str]]:
        table = list(csv.DictReader((out_dir / f"metric_{name}.csv").open()))
        assert table and tuple(table[0]) == METRIC_HEADER
        return table

    assert [r["value"] for r in rows("STATE")][-4:] == ["starting", "RUN", "stopping", "ORBIT"]
    assert [r["value"] for r in rows("RUN_ID")] == ["mon_1"]
    assert {r["unit"] for r in rows("CPU_LOAD_AVG")} == {"%"}
    assert {r["unit"] for r in rows("MEM_AVAIL")} == {"MiB"}
    assert float(rows("MEM_AVAIL")[0]["value"]) > 0

    shown = stdout.read_text()
    assert "\033[" not in shown  # no colours when stdout is not a terminal
    assert "METRIC   Example.p" in shown and "STATE = " not in shown  # states: lines of their own
    state_lines = [line.split()[-3:] for line in shown.splitlines() if " STATE    " in line]
    assert ["starting", "->", "RUN"] in state_lines and ["stopping", "->", "ORBIT"] in state_lines
    assert len(state_lines) == len({tuple(line) for line in state_lines})  # one per change
    run_rows = [r for r in logs if r["message"] == "state starting -> RUN"]
    assert run_rows and run_rows[0]["run_id"] == "mon_1"  # rows carry their run
    assert "[FSM] state ORBIT -> starting" in shown


def test_monitor_command_rejects_bad_arguments(tmp_path: Path) -> None:
    monitor = console_script("Monitor")
    bad = [
        ["-g", "x", "-i", "no_such_interface0"],
        ["-g", "x", "-i", LOOPBACK, "--max-size", "0"],
        ["-g", "x", "-i", LOOPBACK, "-l", "LOUD"],
    ]
    for args in bad:
        done = subprocess.run([monitor, *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, (args, done.stderr)
        assert "error" in done.stderr and done.stdout == ""
