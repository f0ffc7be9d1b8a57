"""Ready-made satellite ``DevNullReceiver``: receives runs and counts them, storing nothing.

Its command ``get_data_rate`` answers, for the current or last run, a map with ``records`` and
``bytes`` (block bytes) received, ``records_per_s`` and ``mb_per_s`` between the first and the
last DATA message, ``seconds`` (that interval) and ``eor_records`` (the sum of ``data_records``
of the EORs received; equal to ``records`` when nothing was lost).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import chain
from typing import Any

from constellation.cli import run_satellite
from constellation.core.commands import CommandResult
from constellation.protocol.cdtp2 import DataRecord
from constellation.protocol.cdtp2_uniform import UniformBatch
from constellation.receiver import ReceiverSatellite
from constellation.satellite import CustomCommand

__all__ = ["DevNullReceiver", "main"]


class DevNullReceiver(ReceiverSatellite):
    """Counts records and bytes of every run."""

    custom_commands = (
        CustomCommand("get_data_rate", "Records/s and MB/s of the current or last run."),
    )
    records = 0
    block_bytes = 0
    eor_records = 0
    _t_first = 0.0
    _t_last = 0.0
    _first = (0, 0)

    def do_starting(self, run_id: str) -> None:
        self.records = self.block_bytes = self.eor_records = 0
        self._t_first = self._t_last = 0.0
        self._first = (0, 0)

    def receive_data_batch(self, sender: str, records: Sequence[DataRecord]) -> None:
        # Received blocks are bytes or flat byte views: len() is their size.
        blocks = chain.from_iterable([record.blocks for record in records])
        self._count(len(records), sum(map(len, blocks)))  # type: ignore[arg-type]

    def receive_uniform_batch(self, sender: str, batch: UniformBatch) -> None:
        self._count(batch.count, batch.nbytes)  # no record objects are built

    def _count(self, records: int, nbytes: int) -> None:
        now = time.monotonic()
        self.records += records
        self.block_bytes += nbytes
        if not self._t_first:  # rates count what arrived after the first message
            self._t_first = now
            self._first = (self.records, self.block_bytes)
        self._t_last = now

    def receive_eor(self, sender: str, user_tags: dict[str, Any], meta: dict[str, Any]) -> None:
        self.eor_records += int(meta.get("data_records", 0))
        self.log.info(
            "run %s from %s: %d records stored nowhere", self.run_id, sender, self.records
        )

    def get_data_rate(self) -> CommandResult:
        """Records and bytes of the current or last run, and their rates."""
        elapsed = self._t_last - self._t_first
        records, nbytes = self.records - self._first[0], self.block_bytes - self._first[1]
        rate = records / elapsed if elapsed > 0 else 0.0
        mbps = nbytes / elapsed / 1e6 if elapsed > 0 else 0.0
        payload = {
            "records": self.records,
            "bytes": self.block_bytes,
            "records_per_s": rate,
            "mb_per_s": mbps,
            "seconds": elapsed,
            "eor_records": self.eor_records,
        }
        return CommandResult(f"{rate:.0f} records/s, {mbps:.1f} MB/s", payload)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``SatelliteDevNullReceiver``."""
    return run_satellite(DevNullReceiver, argv)


if __name__ == "__main__":
    raise SystemExit(main())
