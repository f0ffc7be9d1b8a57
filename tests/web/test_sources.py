"""The runs and live-data adapters against small fakes (the real modules come separately)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from controller.web.live_source import LiveSource, histogram
from controller.web.runs_source import RunsSource


class FakeCatalog:
    def __init__(self) -> None:
        self.refreshed = 0
        self.comments: dict[str, str] = {}

    def refresh(self) -> None:
        self.refreshed += 1

    def runs(self, limit: int) -> list[dict[str, Any]]:
        return [
            {
                "run_id": "run_2",
                "condition": "GOOD",
                "senders": {"Tx.a": 10, "Tx.b": 5},
                "comment": self.comments.get("run_2"),
            }
        ][:limit]

    def set_comment(self, run_id: str, text: str) -> None:
        self.comments[run_id] = text


def test_runs_from_a_catalog() -> None:
    catalog = FakeCatalog()
    source = RunsSource(None, catalog=catalog)
    source.set_comment("run_2", "beam unstable")
    (run,) = source.runs()
    assert run == {
        "run_id": "run_2",
        "condition": "GOOD",
        "senders": {"Tx.a": 10, "Tx.b": 5},
        "records": 15,
        "comment": "beam unstable",
    }
    assert catalog.refreshed == 1


def test_runs_not_available_says_why(tmp_path: Path) -> None:
    assert "--data-dir" in RunsSource(None).reason
    source = RunsSource(tmp_path)
    if source.available:  # the run catalog is installed: it must read an empty directory
        assert source.runs() == []
    else:
        assert source.reason.startswith("runs: not available")
        assert source.runs() == []
        with pytest.raises(LookupError):
            source.set_comment("run_1", "x")


def test_histogram() -> None:
    hist = histogram([np.array([0, 1, 1, 2]), b"\x02\x02"], bins=3)
    assert hist["counts"] == [1, 2, 3]
    assert hist["edges"] == [0.0, 2 / 3, 4 / 3, 2.0]
    assert histogram([]) == {"edges": [], "counts": []}


class FakeStreamer:
    def __init__(self, group: str, senders: list[str], *, interface: Any = None) -> None:
        self.sent = False
        self.closed = threading.Event()

    def read(self, timeout: float) -> Any:
        if self.sent:
            self.closed.wait(timeout)
            return None
        self.sent = True
        rec = SimpleNamespace(blocks=[np.arange(8)])
        return SimpleNamespace(records={"Tx.a": [rec]}, stats={})

    def close(self) -> None:
        self.closed.set()


def test_live_source_publishes_histograms() -> None:
    got = threading.Event()
    published: list[Any] = []

    def publish(events: list[Any]) -> None:
        published.extend(events)
        got.set()

    live = LiveSource("g", None, publish, streamer_factory=FakeStreamer)
    assert live.available
    live.choose("Tx.a")
    assert got.wait(5)
    live.close()
    kind, data = published[0]
    assert kind == "histogram" and data["sender"] == "Tx.a" and sum(data["counts"]) == 8


def test_live_source_without_module() -> None:
    live = LiveSource("g", None, lambda events: None)
    if not live.available:
        assert "not available" in live.reason
        with pytest.raises(LookupError):
            live.choose("Tx.a")
