"""Ready-made satellite ``DevNullReceiver``: receives runs and counts them, storing nothing.

Answers ``get_data_rate`` with the records and bytes per second of the current or last run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from constellation.cli import run_satellite
from constellation.core.commands import CommandResult
from constellation.protocol.cdtp2 import DataRecord
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
    _t_first = 0.0
    _t_last = 0.0

    def do_starting(self, run_id: str) -> None:
        self.records = self.block_bytes = 0
        self._t_first = self._t_last = 0.0

    def receive_data_batch(self, sender: str, records: Sequence[DataRecord]) -> None:
        now = time.monotonic()
        if not self._t_first:
            self._t_first = now
        self._t_last = now
        self.records += len(records)
        self.block_bytes += sum(len(b) for r in records for b in r.blocks)

    def receive_eor(self, sender: str, user_tags: dict[str, Any], meta: dict[str, Any]) -> None:
        self.log.info(
            "run %s from %s: %d records stored nowhere", self.run_id, sender, self.records
        )

    def get_data_rate(self) -> CommandResult:
        elapsed = self._t_last - self._t_first
        rate = self.records / elapsed if elapsed > 0 else 0.0
        mbps = self.block_bytes / elapsed / 1e6 if elapsed > 0 else 0.0
        payload = {
            "records": self.records,
            "bytes": self.block_bytes,
            "records_per_s": rate,
            "mb_per_s": mbps,
            "seconds": elapsed,
        }
        return CommandResult(f"{rate:.0f} records/s, {mbps:.1f} MB/s", payload)


def main(argv: Sequence[str] | None = None) -> int:
    return run_satellite(DevNullReceiver, argv)


if __name__ == "__main__":
    raise SystemExit(main())
