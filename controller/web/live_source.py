"""MissionControl web: the "Live data" panel, fed by the live data tap (``constellation.live``).

:class:`LiveSource` owns one :class:`~constellation.live.Streamer` (policy ``latest``, every
sender) in a thread of its own, never in the web server's event loop. Every ``period`` seconds
it takes what arrived, turns the streamer's ``stats`` into per-sender rates
(:class:`RateWindow`) and the chosen sender's block values into a histogram
(:class:`ValueWindow`, :func:`histogram`), and publishes one ``live`` event when something
changed; EOR events go to ``on_eor`` (the header's run condition). The helpers are pure, with
the time passed in. Without the module ``available`` is False and ``reason`` says why.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["LiveSource", "RateWindow", "ValueWindow", "histogram"]

#: Values of the chosen sender kept for its histogram.
VALUES = 200_000


def histogram(blocks: list[Any], bins: int = 32) -> dict[str, list[float]]:
    """Bin the values of ``blocks`` (numpy arrays or bytes, read as unsigned bytes)."""
    arrays = [np.frombuffer(b, np.uint8) if isinstance(b, bytes) else np.asarray(b) for b in blocks]
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
    if values.size == 0:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(values.astype(float), bins=bins)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


class ValueWindow:
    """The last ``capacity`` block values of one sender (bounded, oldest arrays dropped)."""

    def __init__(self, capacity: int = VALUES) -> None:
        self.capacity = capacity
        self._arrays: deque[np.ndarray[Any, Any]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._arrays.clear()
        self._size = 0

    def add(self, blocks: list[Any]) -> None:
        for block in blocks:
            data = np.frombuffer(block, np.uint8) if isinstance(block, bytes) else block
            flat = np.asarray(data).ravel()[-self.capacity :]
            if flat.dtype.kind not in "biuf":  # not numbers: read its bytes
                flat = flat.view(np.uint8) if flat.dtype.itemsize else flat[:0]
            self._arrays.append(flat)
            self._size += flat.size
        while self._size > self.capacity and self._arrays:
            self._size -= self._arrays.popleft().size

    def values(self) -> list[np.ndarray[Any, Any]]:
        return list(self._arrays)


class RateWindow:
    """Per-sender records/s and MB/s over the last ``window`` seconds of streamer stats.

    Records count ``received + dropped`` (every record the sender sent, from its sequence
    numbers), so the rate is the sender's even when this reader skips most of them; bytes are
    only known for received records, so MB/s scales them by the records skipped.
    """

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._history: dict[str, deque[tuple[float, int, int, int]]] = {}

    def rows(self, stats: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
        rows = []
        for sender in sorted(stats):
            s = stats[sender]
            total = int(s.received) + int(s.dropped)
            hist = self._history.setdefault(sender, deque())
            hist.append((now, total, int(s.received), int(s.bytes)))
            while len(hist) > 2 and now - hist[1][0] >= self.window:
                hist.popleft()
            t0, total0, received0, bytes0 = hist[0]
            elapsed = now - t0
            records_per_s = mb_per_s = 0.0
            if elapsed > 0:
                records_per_s = (total - total0) / elapsed
                received = int(s.received) - received0
                per_record = (int(s.bytes) - bytes0) / received if received > 0 else 0.0
                mb_per_s = per_record * records_per_s / 1e6
            rows.append(
                {
                    "sender": sender,
                    "records_per_s": records_per_s,
                    "mb_per_s": mb_per_s,
                    "received": int(s.received),
                    "dropped": int(s.dropped),
                    "records": int(s.last_sequence),
                    "run_id": str(s.run_id),
                }
            )
        return rows


class LiveSource:
    """Rates of every sender and the histogram of a chosen one, published at most 1/period Hz."""

    def __init__(
        self,
        group: str,
        interface: str | None,
        publish: Callable[[list[tuple[str, Any]]], None],
        streamer_factory: Callable[..., Any] | None = None,
        *,
        discovery: str = "mdns",
        on_eor: Callable[[str, str, str], None] | None = None,
        period: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group, self.interface, self.publish = group, interface, publish
        self.discovery, self.period, self.clock = discovery, period, clock
        self.on_eor = on_eor
        self.reason = ""
        self.sender = ""
        self._lock = threading.Lock()  # sender and values: choose() vs the reader thread
        self._values = ValueWindow()
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []  # also those still closing a streamer
        self._factory = streamer_factory
        if self._factory is None:
            try:
                self._factory = importlib.import_module("constellation.live").Streamer
            except Exception as exc:
                self.reason = f"live data: not available ({type(exc).__name__}: {exc})"

    @property
    def available(self) -> bool:
        return self._factory is not None

    def disable(self, reason: str) -> None:
        """Never read live data (the panel shows ``reason``)."""
        self._factory, self.reason = None, reason

    def start(self) -> None:
        """Begin reading (idempotent); the streamer is opened in the reader thread."""
        with self._lock:
            if self._factory is None or self._closed or self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._read, args=(self._stop,), name="web-live", daemon=True
            )
            self._thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [self._thread]

    def stop(self) -> None:
        """Stop reading; the reader closes its streamer by itself (no waiting). Restartable."""
        with self._lock:
            self._thread = None
            self._stop.set()

    def want(self, receivers: int) -> None:
        """Read while the group has receivers with a live tap (``receivers`` of them).

        A streamer without any receiver to connect to is not kept open.
        """
        if receivers > 0:
            self.start()
        else:
            self.stop()

    def choose(self, sender: str) -> None:
        """Show ``sender``'s histogram from now on (its values so far are forgotten)."""
        if self._factory is None:
            raise LookupError(self.reason)
        with self._lock:
            self.sender = sender
            self._values.clear()

    def _read(self, stop: threading.Event) -> None:
        assert self._factory is not None
        try:
            streamer = self._factory(
                self.group,
                None,
                interface=self.interface,
                discovery=self.discovery,
                policy="latest",
                buffer=2**20,
            )
        except Exception as exc:
            self.reason = f"live data: {type(exc).__name__}: {exc}"
            self.publish([("live", {"error": self.reason})])
            return
        rates = RateWindow()
        last: Any = None
        try:
            next_tick = self.clock() + self.period
            while not stop.wait(max(0.0, next_tick - self.clock())):
                next_tick = max(next_tick + self.period, self.clock())
                frame = streamer.read(0.0)
                changed = frame is not None and self._take(frame)
                rows = rates.rows(streamer.stats, self.clock())
                with self._lock:
                    sender = self.sender
                    hist = histogram(self._values.values()) if changed else None
                    count = len(self._values)
                data: dict[str, Any] = {"rates": rows, "sender": sender}
                if hist is not None:
                    data["histogram"] = {"sender": sender, "values": count, **hist}
                if hist is not None or rows != last:
                    last = rows
                    self.publish([("live", data)])
        except Exception as exc:  # the server goes on without live data
            self.reason = f"live data stopped: {type(exc).__name__}: {exc}"
            self.publish([("live", {"error": self.reason})])
        finally:
            streamer.close()

    def _take(self, frame: Any) -> bool:
        """Keep the chosen sender's values and pass EOR conditions on; True if values came."""
        for event in getattr(frame, "events", []):
            if hasattr(event, "run_metadata") and self.on_eor is not None:  # an EOR
                condition = str(event.run_metadata.get("condition", ""))
                self.on_eor(event.sender, event.run_id, condition)
        with self._lock:
            wanted = self.sender.lower()
            if not wanted:
                return False
            records = [r for s, recs in frame.records.items() if s.lower() == wanted for r in recs]
            for record in records:
                self._values.add(list(record.blocks))
            return bool(records)

    def close(self) -> None:
        """Stop the reader for good (bounded: the streamer joins within 5 s)."""
        with self._lock:
            self._closed = True
        self.stop()
        for thread in self._threads:
            thread.join(7)
