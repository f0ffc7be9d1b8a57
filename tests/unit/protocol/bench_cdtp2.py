"""Throughput of the CDTP2 codec (not a test): records per second for encode and decode.

Run from the repository root: ``.venv/bin/python -m tests.unit.protocol.bench_cdtp2``.
Batches of 2000 records with one 64-byte block each, like a transmitter's DATA messages;
each figure is the best of several timing rounds.
"""

from __future__ import annotations

import os
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from constellation.protocol import DataRecord, decode_data_frame, encode_data_frame

BATCH = 2000
ROUNDS, CALLS = 7, 50


def best_rate(func: Callable[[], object]) -> float:
    seconds = min(timeit.repeat(func, number=CALLS, repeat=ROUNDS)) / CALLS
    return BATCH / seconds


def measure(label: str, records: list[DataRecord]) -> None:
    frame = encode_data_frame("Tx.t1", records)
    encode = best_rate(lambda: encode_data_frame("Tx.t1", records))
    decode = best_rate(lambda: decode_data_frame(frame))
    both = 1 / (1 / encode + 1 / decode)
    print(
        f"{label:28s} encode {encode / 1e6:5.2f} M rec/s   decode {decode / 1e6:5.2f} M rec/s   "
        f"encode+decode {both / 1e6:5.2f} M rec/s   ({len(frame)} B/frame)"
    )


def main() -> None:
    block = os.urandom(64)
    arrays: list[Any] = [np.frombuffer(os.urandom(64), np.uint16) for _ in range(BATCH)]
    measure("bytes, no tags", [DataRecord(i + 1, {}, [block]) for i in range(BATCH)])
    measure(
        "bytes, 2 tags",
        [DataRecord(i + 1, {"dtype": "uint8", "n": i}, [block]) for i in range(BATCH)],
    )
    measure("numpy uint16, no tags", [DataRecord(i + 1, {}, [arrays[i]]) for i in range(BATCH)])
    measure(
        "memoryview, no tags", [DataRecord(i + 1, {}, [memoryview(block)]) for i in range(BATCH)]
    )


if __name__ == "__main__":
    main()
