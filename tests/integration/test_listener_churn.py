"""Listeners survive any number of publishers arriving and leaving, cleanly or killed.

A SUB socket shared by many publishers aborts the whole process inside libzmq when one pipe ends
while another publisher's multi-frame message is half read. The churn runs in a child process
(``python this_file.py KIND``) so that such an abort fails the test instead of killing pytest.
Publishers are PUB sockets of the child, announced through an in-process discovery backend;
"killed" ones vanish without a REMOVED event first (as a SIGKILLed satellite's socket does).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import zmq

from constellation.net.discovery import DiscoveredService, Discovery, ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.protocol.cmdp1 import CMDP1Metric

CYCLES = 100
PEERS_PER_CYCLE = 3
LOOPBACK = "127.0.0.1"


class ManualDiscovery(Discovery):
    """A discovery backend whose services the test adds and removes by hand."""

    def __init__(self, group: str) -> None:
        super().__init__(group, "Churn.driver", NetworkScope.from_interfaces([LOOPBACK]))

    def announce(self, service: ServiceId, port: int) -> None:
        pass

    def withdraw(self, service: ServiceId) -> None:
        pass

    def close(self) -> None:
        pass

    def _start_browsing(self, services: frozenset[ServiceId]) -> None:
        pass

    def add(self, name: str, port: int) -> None:
        self._service_added(
            DiscoveredService(self.group, name, ServiceId.MONITORING, LOOPBACK, port)
        )

    def remove(self, name: str) -> None:
        self._service_removed(name, ServiceId.MONITORING)


def _publisher(ctx: zmq.Context[Any]) -> tuple[zmq.Socket[Any], int]:
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    port = sock.bind_to_random_port(f"tcp://{LOOPBACK}")
    return sock, port


def _burst(socks: dict[str, zmq.Socket[Any]], count: int) -> None:
    for name, sock in socks.items():
        frames = CMDP1Metric(name, "TX_RECORDS", 1, "records").encode()
        for _ in range(count):
            sock.send_multipart(frames)


def _make_listener(kind: str, discovery: ManualDiscovery, received: dict[str, int]) -> Any:
    lock = threading.Lock()

    def count(message: CMDP1Metric) -> None:
        with lock:
            received[message.sender] = received.get(message.sender, 0) + 1

    if kind == "monitor":
        from constellation.net.listener import MonitoringListener

        return MonitoringListener(
            discovery.group, discovery=discovery, level=None, metrics=[], on_metric=count
        )
    from controller.telemetry import MetricWatcher

    class _Ctl:  # what MetricWatcher uses of a controller
        def __init__(self) -> None:
            from constellation.core.environment import ProcessSettings
            from constellation.net.loop import EventLoop

            self.loop = EventLoop(zmq.Context.instance(), "churn")
            self.loop.start()
            self.discovery = discovery
            self.settings = ProcessSettings()

    ctl = _Ctl()
    watcher = MetricWatcher(ctl, ["TX_RECORDS"])  # type: ignore[arg-type]
    original = watcher._store

    def store(message: CMDP1Metric) -> None:
        original(message)
        count(message)

    watcher._store = store  # type: ignore[method-assign]
    watcher.stop_loop = ctl.loop.stop  # type: ignore[attr-defined]
    return watcher


def churn(kind: str) -> None:
    """Run the churn; exit 0 with a summary line, or non-zero (abort) on failure."""
    ctx: zmq.Context[Any] = zmq.Context.instance()
    discovery = ManualDiscovery("churn")
    received: dict[str, int] = {}
    listener = _make_listener(kind, discovery, received)
    steady, steady_port = _publisher(ctx)
    discovery.add("Steady.pub", steady_port)
    for cycle in range(CYCLES):
        socks: dict[str, zmq.Socket[Any]] = {}
        for index in range(PEERS_PER_CYCLE):
            sock, port = _publisher(ctx)
            name = f"Churn.c{cycle}_{index}"
            socks[name] = sock
            discovery.add(name, port)
        # Publish fast until every new peer was heard (its subscription took effect).
        deadline = time.monotonic() + 30
        while not all(name in received for name in socks) and time.monotonic() < deadline:
            _burst({"Steady.pub": steady, **socks}, 5)
            time.sleep(0.001)  # pacing the publishers so that a loaded listener keeps up
        _burst({"Steady.pub": steady, **socks}, 100)  # messages in flight as the peers leave
        for index, (name, sock) in enumerate(socks.items()):
            if index % 2:  # killed: the socket goes first, the departure is noticed later
                sock.close(linger=0)
                _burst({"Steady.pub": steady}, 200)
                discovery.remove(name)
            else:  # clean: withdrawn, then closed
                discovery.remove(name)
                sock.close(linger=0)
    before = received.get("Steady.pub", 0)
    deadline = time.monotonic() + 10
    while received.get("Steady.pub", 0) == before and time.monotonic() < deadline:
        _burst({"Steady.pub": steady}, 10)
        time.sleep(0.01)  # pacing the publisher, not synchronising
    after = received.get("Steady.pub", 0)
    listener.close()
    if hasattr(listener, "stop_loop"):
        listener.stop_loop()
    steady.close(linger=0)
    churned = sum(1 for name in received if name.startswith("Churn."))
    print(f"cycles={CYCLES} steady_before={before} steady_after={after} churned={churned}")
    sys.exit(0 if after > before else 3)


@pytest.mark.parametrize("kind", ["monitor", "watcher"])
def test_listener_survives_churn(kind: str) -> None:
    child = subprocess.run(
        [sys.executable, __file__, kind], capture_output=True, text=True, timeout=240
    )
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stdout}\n{child.stderr}"
    summary = dict(field.split("=") for field in child.stdout.split())
    assert int(summary["cycles"]) == CYCLES
    # Every churned publisher was really followed before it left.
    assert int(summary["churned"]) == CYCLES * PEERS_PER_CYCLE
    assert int(summary["steady_after"]) > int(summary["steady_before"]) > 0


if __name__ == "__main__":
    churn(sys.argv[1])
