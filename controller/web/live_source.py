"""MissionControl web: the live histogram, through the live tap if it is installed.

:class:`LiveSource` imports ``constellation.live.Streamer`` lazily and reads frames in a thread
of its own; :func:`histogram` turns one sender's block values into bin counts (pure). Without
the module ``available`` is False and ``reason`` says why, for the panel. Per-transmitter rates
come from the transmitters' own metrics (see the model), not from here.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["LiveSource", "histogram"]


def histogram(blocks: list[Any], bins: int = 32) -> dict[str, list[float]]:
    """Bin the values of ``blocks`` (numpy arrays or bytes, read as unsigned bytes)."""
    arrays = [np.frombuffer(b, np.uint8) if isinstance(b, bytes) else np.asarray(b) for b in blocks]
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
    if values.size == 0:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(values.astype(float), bins=bins)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


class LiveSource:
    """Histograms of a chosen sender's block values, published every ``period`` seconds."""

    def __init__(
        self,
        group: str,
        interface: str | None,
        publish: Callable[[list[tuple[str, Any]]], None],
        streamer_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.group, self.interface, self.publish = group, interface, publish
        self.reason = ""
        self.sender = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._factory = streamer_factory
        if self._factory is None:
            try:
                self._factory = importlib.import_module("constellation.live").Streamer
            except Exception as exc:
                self.reason = f"live histogram: not available ({type(exc).__name__}: {exc})"

    @property
    def available(self) -> bool:
        return self._factory is not None

    def choose(self, sender: str) -> None:
        """Follow ``sender`` (restarts the reader)."""
        if self._factory is None:
            raise LookupError(self.reason)
        self.close()
        self.sender = sender
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="web-live", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._factory is not None
        streamer = self._factory(self.group, [self.sender], interface=self.interface)
        try:
            while not self._stop.is_set():
                frame = streamer.read(0.5)
                if frame is None:
                    continue
                blocks = [b for rec in frame.records.get(self.sender, []) for b in rec.blocks]
                hist = histogram(blocks)
                self.publish([("histogram", {"sender": self.sender, **hist})])
        except Exception as exc:
            self.publish([("histogram", {"sender": self.sender, "error": str(exc)})])
        finally:
            close = getattr(streamer, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
