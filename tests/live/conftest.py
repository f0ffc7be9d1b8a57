"""Fixtures of the live tests: a transmitter and a receiver as processes, and a controller."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from constellation.live import EOR, Frame, Streamer
from controller import Controller
from tests.helpers import LOOPBACK

TX = "RandomTransmitter.tx"
DN = "DevNullReceiver.dn"


@pytest.fixture
def ctl(group: str) -> Iterator[Controller]:
    controller = Controller(group, interface=LOOPBACK)
    yield controller
    controller.close()


def devnull_config(rate: float, block_size: int = 1024) -> dict[str, Any]:
    return {
        "RandomTransmitter": {
            "tx": {
                "block_size": block_size,
                "rate": rate,
                "seed": 3,
                "_conditions": {"require_starting_after": [DN]},
            }
        },
        "DevNullReceiver": {"dn": {"_data": {"receive_from": [TX]}}},
    }


@pytest.fixture
def pair(processes: Any, ctl: Controller) -> Controller:
    """RandomTransmitter ``tx`` and DevNullReceiver ``dn`` running, found by ``ctl``."""
    processes("SatelliteRandomTransmitter", "tx")
    processes("SatelliteDevNullReceiver", "dn")
    ctl.await_satellites([TX, DN], timeout=20)
    return ctl


def read_until_eor(streamer: Streamer, sink: list[Frame], timeout: float = 20) -> EOR:
    """Read ``streamer`` into ``sink`` until a frame carries an EOR; returns that EOR."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = streamer.read(0.5)
        if frame is None:
            continue
        sink.append(frame)
        for event in frame.events:
            if isinstance(event, EOR):
                return event
    raise AssertionError("no EOR within the timeout")
