"""Benchmark: the run data service over loopback (figures printed).

The server is ``constellation-h5 serve`` in a process of its own, as it runs in use (a server
thread in the benchmark's process would share its interpreter lock with the client). Speeds are
medians of ``--repeats`` runs.

- ``slices``: msgpack record slices of 1 KiB records (MB/s of block bytes), goal >= 200 MB/s;
  ``slice_pack_speedup``: in one process, building the same slice bytes the way the service
  does vs from ``records()`` maps with ``msgpack.packb`` (the service's earlier way);
- ``download``: the whole file via ``/file``, read as ``constellation-h5 remote download``
  reads it (4 MiB reads) and discarded (MB/s), goal >= 1 GB/s; ``download_to_file``: the same
  into a file (adds the disk); ``download_httpx``: the body read with httpx's ``iter_raw``
  (64 KiB reads), for comparison;
- ``follow``: delay from asking a writer process to write and flush a record until it reaches
  a follower (ms; an upper bound of flush-to-delivery), goal <= 100;
- ``listing``: ``GET /api/runs`` over ``--files`` small run files, catalog warm (s), goal <= 1;
- ``decode_many``: 8 files, process pool vs one process (speed-up), goal >= 1.6 on 2 cores.

    python bench/service.py [--records 50000] [--files 1000] [--repeats 3] [--skip-listing]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgpack
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._procs import BIN, LOOPBACK, wait_for
from constellation.reader import decode_many, open_run
from constellation.reader.fetch import copy_body, open_body
from constellation.service.reading import encode_record, record_slice
from satellites.h5datawriter.runfile import RunFile
from tests.service.support import TX, WRITER

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def served(directory: Path) -> Iterator[str]:
    """``constellation-h5 serve directory`` on a free loopback port; yields its URL."""
    server = subprocess.Popen(
        [str(BIN / "constellation-h5"), "serve", str(directory), "--host", LOOPBACK, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" on ")[-1].strip()  # "serving DIR on URL"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/api/runs", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30, what="constellation-h5 serve")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=15)


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return round(statistics.median(measure() for _ in range(repeats)), 1)


class _Rec:
    def __init__(self, sequence: int, size: int) -> None:
        self.sequence, self.tags = sequence, {"dtype": "<u1"}
        self.blocks = [np.full(size, sequence % 251, np.uint8).tobytes()]


def write(directory: Path, run_id: str, records: int, size: int = 1024, swmr: bool = True) -> Path:
    run = RunFile.create(directory, run_id, WRITER, swmr=swmr, expected_senders=[TX])
    run.begin_sender(TX, {}, {})
    for first in range(1, records + 1, 4096):
        run.write_records(TX, [_Rec(s, size) for s in range(first, min(records + 1, first + 4096))])
    run.end_sender(TX, {}, {"run_id": run_id, "condition": "GOOD"})
    run.close()
    return run.path


def payload_sum(run: Any) -> int:
    return sum(int(r.blocks[0].sum()) for r in run.records(TX))


def bench_slices(url: str, records: int) -> float:
    step = 10_000
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as client:
        for first in range(0, records, step):
            reply = client.get(
                f"/api/runs/big/{TX}/records", params={"start": first, "stop": first + step}
            )
            reply.raise_for_status()
    return records * 1024 / (time.perf_counter() - start) / 1e6


def bench_pack(path: Path, records: int) -> float:
    """Speed-up of the service's slice bytes over packing ``records()`` maps (one process)."""
    stop = min(records, 10_000)
    record_slice(path, TX, "0", str(stop))  # warm: both ways then find the file in the cache
    start = time.perf_counter()
    with open_run(path) as run:
        maps = [encode_record(r) for _, r in zip(range(stop), run.records(TX), strict=False)]
        before = msgpack.packb(maps, use_bin_type=True)
    old = time.perf_counter() - start
    start = time.perf_counter()
    after = record_slice(path, TX, "0", str(stop))
    new = time.perf_counter() - start
    assert after == before, "the slice bytes differ"
    return old / new


class _Discard(io.RawIOBase):
    """A sink for the body: the transfer alone, as the httpx figure counts it."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def bench_download(url: str, target: Path | None) -> float:
    """The body read in large reads into ``target`` (a file), or discarded (None)."""
    start = time.perf_counter()
    with (
        open_body(url, "/api/runs/big/file", {}) as reply,
        target.open("wb") if target else _Discard() as out,
    ):
        nbytes = copy_body(reply, out)  # type: ignore[arg-type]
    return nbytes / (time.perf_counter() - start) / 1e6


def bench_download_httpx(url: str) -> float:
    start = time.perf_counter()
    nbytes = 0
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        client.stream("GET", "/api/runs/big/file") as r,
    ):
        for chunk in r.iter_raw(4 << 20):
            nbytes += len(chunk)
    return nbytes / (time.perf_counter() - start) / 1e6


def bench_follow(url: str, directory: Path, rounds: int = 20) -> list[float]:
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.service.grow_writer", str(directory), "live"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdin is not None
    writer.stdout.readline()
    delays = []
    with httpx.Client(base_url=url, timeout=60) as client:
        httpx.get(f"{url}/api/runs").raise_for_status()
        with client.stream("GET", f"/api/runs/live/{TX}/follow") as stream:
            lines = stream.iter_lines()
            next(lines)
            for _ in range(rounds):
                flushed = time.perf_counter()  # upper bound: includes the writer's own time
                writer.stdin.write("write 1\n")
                writer.stdin.flush()
                writer.stdout.readline()  # written and flushed
                for line in lines:
                    if line.startswith("data:"):
                        delays.append((time.perf_counter() - flushed) * 1000)
                        break
    writer.kill()
    writer.wait()
    return delays


def bench_listing(files: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(files):
            write(Path(tmp), f"r{n}", 2, size=16, swmr=False)
        with served(Path(tmp)) as url:
            httpx.get(f"{url}/api/runs", timeout=600).raise_for_status()  # builds the catalog
            time.sleep(0.3)  # let the catalog's refresh interval pass: a real rescan by stat
            start = time.perf_counter()
            rows = httpx.get(f"{url}/api/runs", timeout=60).json()
            assert len(rows) == files
            return time.perf_counter() - start


def bench_many(directory: Path) -> float:
    paths = [write(directory, f"m{n}", 20_000, swmr=False) for n in range(8)]
    start = time.perf_counter()
    with ThreadPoolExecutor(1) as one:  # one worker thread: as one process
        decode_many(paths, payload_sum, executor=one, progress=False)
    single = time.perf_counter() - start
    start = time.perf_counter()
    decode_many(paths, payload_sum, progress=False)
    return single / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-listing", action="store_true")
    args = parser.parse_args()
    result: dict[str, object] = {}
    repeats = args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        big = write(directory, "big", args.records)
        result["slice_pack_speedup"] = median_of(repeats, lambda: bench_pack(big, args.records))
        with served(directory) as url:
            result["slices_MB_s"] = median_of(repeats, lambda: bench_slices(url, args.records))
            result["download_MB_s"] = median_of(repeats, lambda: bench_download(url, None))
            with tempfile.TemporaryDirectory() as out:  # not in the served directory
                target = Path(out) / "downloaded.h5"
                to_file = median_of(repeats, lambda: bench_download(url, target))
                result["download_to_file_MB_s"] = to_file
            result["download_httpx_MB_s"] = median_of(repeats, lambda: bench_download_httpx(url))
            delays = bench_follow(url, directory)
            result["follow_ms_median"] = round(float(np.median(delays)), 1)
            result["follow_ms_max"] = round(max(delays), 1)
        if not args.skip_listing:
            result["listing_s"] = round(bench_listing(args.files), 3)
        result["decode_many_speedup"] = round(bench_many(directory), 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
