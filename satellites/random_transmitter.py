"""Ready-made satellite ``RandomTransmitter``: streams random blocks as fast as allowed.

Parameters: ``block_size`` (bytes, default 1024), ``number_of_blocks`` (per record, default 1),
``rate`` (records/s, 0 = as fast as the receiver takes them), ``seed`` (default 0). The random
pool is generated once; records are slices of it, so the transmitter itself costs little CPU.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from constellation.cli import run_satellite
from constellation.core.config import Configuration
from constellation.transmitter import TransmitterSatellite

__all__ = ["RandomTransmitter", "main"]

_POOL_BYTES = 16 * 1024 * 1024


class RandomTransmitter(TransmitterSatellite):
    """Sends records of random bytes."""

    block_size = 1024
    number_of_blocks = 1
    rate = 0.0
    seed = 0

    def do_initializing(self, config: Configuration) -> str:
        self.block_size = config.get_int("block_size", 1024, min=1, max=256 * 1024 * 1024)
        self.number_of_blocks = config.get_int("number_of_blocks", 1, min=1, max=1024)
        self.rate = config.get_float("rate", 0.0, min=0.0)
        self.seed = config.get_int("seed", 0, min=0)
        size = max(_POOL_BYTES, self.block_size * 2)
        self._pool = np.random.default_rng(self.seed).integers(0, 256, size, dtype=np.uint8)
        return (
            f"Initialized: {self.number_of_blocks} x {self.block_size} B per record, "
            f"rate {'max' if not self.rate else f'{self.rate:g}/s'}"
        )

    def do_starting(self, run_id: str) -> str:
        self.bor_tags = {
            "block_size": self.block_size,
            "number_of_blocks": self.number_of_blocks,
            "seed": self.seed,
        }
        return f"Run {run_id} starting"

    def do_run(self, run_id: str) -> str:
        pool = memoryview(self._pool)  # type: ignore[arg-type]
        size, nblocks = self.block_size, self.number_of_blocks
        span = len(pool) - size
        offset = 0
        period = 1.0 / self.rate if self.rate else 0.0
        next_time = time.monotonic()
        sent = 0
        send = self.send_record
        while not self.stop_requested():
            blocks = []
            for _ in range(nblocks):
                blocks.append(pool[offset : offset + size])
                offset = (offset + 4099) % span
            send(blocks)
            sent += 1
            if period:
                next_time += period
                delay = next_time - time.monotonic()
                if delay > 0 and self.wait_for_stop(delay):
                    break
        return f"Run {run_id}: {sent} records sent"

    def do_stopping(self) -> str:
        return f"Run {self.run_id} stopped"


def main(argv: Sequence[str] | None = None) -> int:
    return run_satellite(RandomTransmitter, argv)


if __name__ == "__main__":
    raise SystemExit(main())
