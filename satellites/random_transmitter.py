"""Ready-made satellite ``RandomTransmitter``: streams records of random bytes.

Parameters: ``block_size`` (bytes, default 1024), ``number_of_blocks`` (per record, default 1),
``rate`` (records/s, 0 = full speed, as fast as the receiver takes them; default 0), ``seed``
(default 0). Random data are generated once at ``initialize``: records cycle through up to 256
different ready-made blocks (``bytes`` for small blocks, views into one random pool for large
ones), so the transmitter itself costs little CPU and the benchmark measures the framework.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import cycle
from typing import Any

import numpy as np

from constellation.cli import run_satellite
from constellation.core.config import Configuration
from constellation.parameters import Param, read_parameters
from constellation.transmitter import TransmitterSatellite

__all__ = ["RandomTransmitter", "main", "random_records"]

#: Size of the random pool that large blocks are views of.
_POOL_BYTES = 16 * 1024 * 1024
#: Different records prepared; records cycle through them.
_VARIANTS = 256
#: Blocks up to this size are separate ``bytes`` objects (cheapest to encode).
_BYTES_BLOCK_MAX = 8192
#: At full speed, ``stop_requested`` is checked after this many records.
_CHUNK = 64


def random_records(block_size: int, number_of_blocks: int, seed: int) -> list[tuple[Any, ...]]:
    """Up to 256 different records (tuples of blocks) of random bytes, made once.

    Blocks up to 8 KiB are separate ``bytes`` objects, larger ones views of one random pool.
    """
    pool_size = max(_POOL_BYTES, 2 * block_size)
    pool = np.random.default_rng(seed).integers(0, 256, pool_size, dtype=np.uint8)
    view = memoryview(pool.data).cast("B")
    span = pool_size - block_size
    step = 4099 * (1 + block_size // 4099)
    blocks: list[Any] = []
    offset = 0
    for _ in range(_VARIANTS * number_of_blocks):
        piece = view[offset : offset + block_size]
        blocks.append(piece.tobytes() if block_size <= _BYTES_BLOCK_MAX else piece)
        offset = (offset + step) % span
    n = number_of_blocks
    return [tuple(blocks[i : i + n]) for i in range(0, len(blocks), n)]


class RandomTransmitter(TransmitterSatellite):
    """Sends records of random bytes."""

    parameters = (
        Param("block_size", int, 1024, "bytes per block", unit="B", min=1, max=256 * 1024 * 1024),
        Param("number_of_blocks", int, 1, "blocks per record", min=1, max=1024),
        Param(
            "rate",
            float,
            0.0,
            "records per second; 0 = as fast as the receiver takes them",
            unit="records/s",
            min=0.0,
        ),
        Param("seed", int, 0, "seed of the random data", min=0),
    )

    block_size = 1024
    number_of_blocks = 1
    rate = 0.0
    seed = 0

    def do_initializing(self, config: Configuration) -> str:
        values = read_parameters(self.parameters, config)
        self.block_size = values["block_size"]
        self.number_of_blocks = values["number_of_blocks"]
        self.rate = values["rate"]
        self.seed = values["seed"]
        self._records = random_records(self.block_size, self.number_of_blocks, self.seed)
        rate = "full speed" if not self.rate else f"{self.rate:g} records/s"
        return f"Initialized: {self.number_of_blocks} x {self.block_size} B per record, {rate}"

    def do_starting(self, run_id: str) -> str:
        self.bor_tags = {
            "block_size": self.block_size,
            "number_of_blocks": self.number_of_blocks,
            "seed": self.seed,
        }
        return f"Run {run_id} running"  # the status once in RUN (set when starting ends)

    def do_run(self, run_id: str) -> str:
        sent = self._run_full_speed() if not self.rate else self._run_paced()
        return f"Run {run_id}: {sent} records sent"

    def _run_full_speed(self) -> int:
        send = self.send_record
        stopped = self.stop_requested
        records = self._records
        chunks = [records[i : i + _CHUNK] for i in range(0, len(records), _CHUNK)]
        sent = 0
        while True:
            for chunk in chunks:
                if stopped():
                    return sent
                for blocks in chunk:
                    send(blocks)
                sent += len(chunk)

    def _run_paced(self) -> int:
        send = self.send_record
        period = 1.0 / self.rate
        next_time = time.monotonic()
        sent = 0
        for blocks in cycle(self._records):
            if self.stop_requested():
                break
            send(blocks)
            sent += 1
            next_time += period
            delay = next_time - time.monotonic()
            if delay > 0 and self.wait_for_stop(delay):
                break
        return sent

    def do_stopping(self) -> str:
        return f"Run {self.run_id} stopped"


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``SatelliteRandomTransmitter``."""
    return run_satellite(RandomTransmitter, argv)


if __name__ == "__main__":
    raise SystemExit(main())
