"""Raw pyzmq baselines of bench/throughput.py: PUSH -> PULL between two plain processes.

Three ways of moving the same random blocks (``random_records``, as RandomTransmitter sends):

``copy``
    one message per record, a small msgpack header frame and the data frame, with pyzmq's
    defaults (``send_multipart`` / ``recv_multipart``: one copy of the data on each side);
``zero-copy``
    the same messages, frames of 64 KiB and more sent and received without a copy;
``batch``
    one message per batch of as many records as the CDTP2 sender puts into one DATA message
    (records until their block bytes reach the 128 KiB payload threshold): a header frame and
    one ``msgpack.packb`` of the ``[sequence, {}, [block]]`` records, sent zero-copy from
    64 KiB; the receiver unpacks every batch with ``msgpack.unpackb``.

``python bench/raw_pyzmq.py pull SIZE MODE`` binds, prints its port, counts until the end
marker and prints a JSON result; ``python bench/raw_pyzmq.py push PORT SIZE SECONDS MODE`` sends
for SECONDS and prints its CPU seconds. :func:`run_raw` runs both and returns the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq

from satellites.random_transmitter import random_records

__all__ = ["MODES", "batch_records", "run_raw"]

LOOPBACK = "127.0.0.1"
MODES = ("copy", "zero-copy", "batch")
#: The CDTP2 sender's default payload threshold (``_data.payload_threshold`` = 128 KiB).
PAYLOAD_THRESHOLD = 128 * 1024
#: The CDTP2 sender's records-per-message cap (half its default ``queue_size``).
MAX_BATCH_RECORDS = 16384
SAMPLE_S = 0.05


def batch_records(block_size: int) -> int:
    """Records per DATA message of the CDTP2 sender at full speed (it seals at the threshold)."""
    return min(MAX_BATCH_RECORDS, -(-PAYLOAD_THRESHOLD // block_size))


def _pull(block_size: int, mode: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port(f"tcp://{LOOPBACK}")
    print(port, flush=True)
    copy = mode == "copy" or block_size < zmq.COPY_THRESHOLD
    if mode == "batch":
        copy = batch_records(block_size) * block_size < zmq.COPY_THRESHOLD
    records = nbytes = 0
    t_first = t_last = cpu_first = 0.0
    unpackb = msgpack.unpackb
    while True:
        header, data = sock.recv_multipart(copy=copy)  # type: ignore[call-overload]
        head = header if copy else header.bytes
        if head == b"END":
            break
        if not records:
            t_first, cpu_first = time.perf_counter(), time.process_time()
        unpackb(head)
        if mode == "batch":
            batch = unpackb(data if copy else data.buffer)
            records += len(batch)
            nbytes += sum(len(block) for record in batch for block in record[2])
        else:
            records += 1
            nbytes += len(data)
        t_last = time.perf_counter()
    cpu = time.process_time() - cpu_first
    result = {"records": records, "bytes": nbytes, "seconds": t_last - t_first, "cpu": cpu}
    print(json.dumps(result), flush=True)
    sock.close(0)
    ctx.term()


def _push(port: int, block_size: int, seconds: float, mode: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.connect(f"tcp://{LOOPBACK}:{port}")
    blocks = [record[0] for record in random_records(block_size, 1, 0)]
    packb = msgpack.packb
    send, send_multipart = sock.send, sock.send_multipart
    per_batch = batch_records(block_size)
    batch_copy = per_batch * block_size < zmq.COPY_THRESHOLD
    cycled = blocks * -(-per_batch // len(blocks))
    batches = [cycled[i : i + per_batch] for i in range(0, len(cycled) - per_batch + 1, per_batch)]
    seq = 0
    cpu_start = time.process_time()
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        if mode == "zero-copy":
            for data in blocks:
                seq += 1
                send(packb((seq, {})), zmq.SNDMORE)
                send(data, copy=False)
        elif mode == "copy":
            for data in blocks:
                seq += 1
                send_multipart([packb((seq, {})), data])
        else:
            for batch in batches:
                records: list[tuple[int, dict[str, Any], list[Any]]] = [
                    (seq + i, {}, [data]) for i, data in enumerate(batch, 1)
                ]
                send(packb((seq + 1, len(records))), zmq.SNDMORE)
                send(packb(records), copy=batch_copy)
                seq += len(records)
    sock.send_multipart([b"END", b""])
    print(time.process_time() - cpu_start, flush=True)
    sock.close(linger=-1)
    ctx.term()


def _sample_rss(procs: list[subprocess.Popen[bytes]], peaks: dict[int, int]) -> None:
    for proc in procs:
        try:
            rss = psutil.Process(proc.pid).memory_info().rss
        except psutil.Error:
            continue
        peaks[proc.pid] = max(peaks.get(proc.pid, 0), rss)


def run_raw(block_size: int, seconds: float, mode: str) -> dict[str, Any]:
    """Plain pyzmq PUSH -> PULL between two processes for ``seconds``; the puller's rates.

    Returns ``records_per_s``, ``mb_per_s`` (block bytes, first to last message at the
    puller), ``cpu_s_per_gb`` (both processes; ``tx_``/``rx_`` each one) and the peak RSS
    of each process in MiB.
    """
    if mode not in MODES:
        raise ValueError(f"unknown raw mode {mode!r}")
    me = [sys.executable, str(Path(__file__).resolve())]
    pull = subprocess.Popen(
        [*me, "pull", str(block_size), mode], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    procs = [pull]
    peaks: dict[int, int] = {}
    try:
        assert pull.stdout is not None
        port = int(pull.stdout.readline())
        push = subprocess.Popen(
            [*me, "push", str(port), str(block_size), str(seconds), mode], stdout=subprocess.PIPE
        )
        procs.append(push)
        while push.poll() is None or pull.poll() is None:
            _sample_rss(procs, peaks)
            time.sleep(SAMPLE_S)  # RSS sampling period, not a synchronisation
        result = json.loads(pull.stdout.readline())
        assert push.stdout is not None
        push_cpu = float(push.stdout.readline())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(20)
    elapsed = result["seconds"] or float("inf")
    gb = result["bytes"] / 1e9 or float("inf")
    return {
        "records_per_s": round(result["records"] / elapsed),
        "mb_per_s": round(result["bytes"] / elapsed / 1e6, 1),
        "cpu_s_per_gb": round((push_cpu + result["cpu"]) / gb, 3),
        "tx_cpu_s_per_gb": round(push_cpu / gb, 3),
        "rx_cpu_s_per_gb": round(result["cpu"] / gb, 3),
        "send_peak_rss_mb": round(peaks.get(procs[-1].pid, 0) / 2**20, 1),
        "recv_peak_rss_mb": round(peaks.get(pull.pid, 0) / 2**20, 1),
    }


def main(argv: list[str]) -> int:
    """Child process entry: ``pull SIZE MODE`` or ``push PORT SIZE SECONDS MODE``."""
    if argv[:1] == ["pull"] and len(argv) == 3:
        _pull(int(argv[1]), argv[2])
    elif argv[:1] == ["push"] and len(argv) == 5:
        _push(int(argv[1]), int(argv[2]), float(argv[3]), argv[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
