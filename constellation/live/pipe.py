"""A numpy-pipe view of one sender: fixed-shape records as a structured array.

``pipe = streamer.pipe("Tx.a")``; ``pipe.read()`` returns every row not yet consumed as a
structured array with fields ``timestamp`` (when the receiver published the record, seconds
since the epoch) and ``data`` (the record's blocks joined, typed by the ``dtype`` tag);
``pipe.consume(n)`` drops the first ``n`` rows, the others come back on the next read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from constellation.errors import DecodeError
from constellation.live.frame import LiveRecord

if TYPE_CHECKING:
    from constellation.live.streamer import Streamer

__all__ = ["NumpyPipe"]


class NumpyPipe:
    """Rows of one sender's fixed-shape records, fed by its streamer's reads."""

    def __init__(self, streamer: Streamer, sender: str) -> None:
        self.sender = sender
        self._streamer = streamer
        self._rows: list[np.ndarray[Any, Any]] = []
        self._dtype: np.dtype[Any] | None = None

    def feed(self, records: list[LiveRecord]) -> None:
        """Append ``records`` (called by the streamer on every read)."""
        if not records:
            return
        data = [np.concatenate(r.blocks) if len(r.blocks) != 1 else r.blocks[0] for r in records]
        if self._dtype is None:
            first = data[0]
            self._dtype = np.dtype([("timestamp", np.float64), ("data", first.dtype, first.shape)])
        field = self._dtype["data"]
        rows = np.empty(len(records), dtype=self._dtype)
        for pos, (record, values) in enumerate(zip(records, data, strict=True)):
            if values.dtype != field.base or values.shape != field.shape:
                raise DecodeError(
                    f"pipe of {self.sender}: record {record.sequence} is {values.dtype}"
                    f"{list(values.shape)}, the pipe holds {field.base}{list(field.shape)}"
                )
            rows[pos] = (record.published, values)
        self._rows.append(rows)

    def read(self, flatten: bool = False, timeout: float | None = 0.0) -> np.ndarray[Any, Any]:
        """Rows not consumed yet (after reading the streamer for up to ``timeout`` s).

        ``flatten`` returns a plain 2-D float array: timestamp, then the data values.
        """
        self._streamer.read(timeout)
        rows = self._joined()
        if not flatten:
            return rows
        values = rows["data"].reshape(len(rows), -1).astype(np.float64)
        return np.column_stack([rows["timestamp"], values])

    def consume(self, n: int) -> None:
        """Drop the first ``n`` rows (all when ``n`` exceeds them)."""
        rows = self._joined()
        self._rows = [rows[max(0, n) :]] if len(rows) > n else []

    def __len__(self) -> int:
        return sum(len(r) for r in self._rows)

    def _joined(self) -> np.ndarray[Any, Any]:
        if not self._rows:
            dtype = self._dtype or np.dtype([("timestamp", np.float64), ("data", np.uint8)])
            return np.empty(0, dtype=dtype)
        if len(self._rows) > 1:
            self._rows = [np.concatenate(self._rows)]
        return self._rows[0]
