"""Pure per-sender accounting of a live subscriber: what arrived, what was lost, exactly.

Records carry sequence numbers 1, 2, 3, ... per run; a DATA message holds a contiguous range.
Every number skipped between two delivered messages, and every number between the last one
delivered and the EOR's ``data_records``, is counted as dropped. A subscriber that saw the BOR
live expects sequence 1 first; one that joined during the run (replayed BOR) starts counting at
the first record it gets. Ranges already delivered (a duplicate, or records already read from
the file by ``follow``) are cut off, so every record is delivered at most once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SenderStats", "SequenceAccount"]


@dataclass
class SenderStats:
    """Totals of one sender as seen by one subscriber (cumulative over its runs)."""

    received: int = 0
    dropped: int = 0
    bytes: int = 0
    last_sequence: int = 0
    run_id: str = ""
    runs: int = 0


class SequenceAccount:
    """Sequence-number bookkeeping of one sender: call on_bor / on_data / on_eor in order."""

    def __init__(self) -> None:
        self.stats = SenderStats()
        self.expected: int | None = None  # next sequence number wanted; None = not yet known
        self.in_run = False

    def on_bor(self, run_id: str, replayed: bool) -> bool:
        """A BOR; returns False when it repeats the BOR of the run already open (ignored)."""
        stats = self.stats
        if self.in_run and run_id == stats.run_id:
            return False
        stats.run_id = run_id
        stats.runs += 1
        stats.last_sequence = 0
        self.in_run = True
        self.expected = None if replayed else 1
        return True

    def start_after(self, sequence: int) -> None:
        """Records up to ``sequence`` are known already (read from the file): expect the next."""
        self.expected = sequence + 1
        self.stats.last_sequence = max(self.stats.last_sequence, sequence)

    def on_data(self, first: int, count: int, nbytes: int = 0) -> int:
        """A DATA message of records ``first .. first+count-1``.

        Returns how many leading records to skip (already delivered); ``count`` or more means
        the whole message is to be ignored. Gaps are added to ``dropped``.
        """
        if count <= 0:
            return 0
        if not self.in_run:
            return count  # no BOR yet: the subscriber joined before the replayed BOR came
        stats = self.stats
        if self.expected is None:
            self.expected = first
        skip = 0
        if first > self.expected:
            stats.dropped += first - self.expected
        elif first < self.expected:
            skip = self.expected - first
            if skip >= count:
                return count
        new = count - skip
        stats.received += new
        if count:
            stats.bytes += nbytes * new // count
        self.expected = first + count
        stats.last_sequence = first + count - 1
        return skip

    def on_eor(self, data_records: int | None) -> None:
        """The EOR: records between the last delivered one and ``data_records`` were dropped."""
        if not self.in_run:
            return
        self.in_run = False
        if data_records is None or self.expected is None:
            return
        if data_records >= self.expected:
            self.stats.dropped += data_records - self.expected + 1
        self.expected = None
