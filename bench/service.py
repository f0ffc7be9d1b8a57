"""Benchmark: the run data service over loopback (one server in a thread, figures printed).

- ``slices``: msgpack record slices of 1 KiB records (MB/s of block bytes), goal >= 200 MB/s;
- ``download``: the whole file via ``/file`` (MB/s), goal >= 1 GB/s;
- ``follow``: delay from asking a writer process to write and flush a record until it reaches
  a follower (ms; an upper bound of flush-to-delivery), goal <= 100;
- ``listing``: ``GET /api/runs`` over ``--files`` small run files, catalog warm (s), goal <= 1;
- ``decode_many``: 8 files, process pool vs one process (speed-up), goal >= 1.6 on 2 cores.

    python bench/service.py [--records 50000] [--files 1000] [--skip-listing]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from constellation.reader import decode_many
from constellation.service.app import create_app
from satellites.h5datawriter.runfile import RunFile
from tests.service.support import TX, WRITER, serving

REPO = Path(__file__).resolve().parent.parent


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


def payload_sum(run: object) -> int:
    return sum(int(r.blocks[0].sum()) for r in run.records(TX))  # type: ignore[attr-defined]


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


def bench_download(url: str) -> float:
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
        with serving(create_app(tmp)) as url:
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
    parser.add_argument("--skip-listing", action="store_true")
    args = parser.parse_args()
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write(directory, "big", args.records)
        with serving(create_app(directory)) as url:
            result["slices_MB_s"] = round(bench_slices(url, args.records), 1)
            result["download_MB_s"] = round(bench_download(url), 1)
            delays = bench_follow(url, directory)
            result["follow_ms_median"] = round(float(np.median(delays)), 1)
            result["follow_ms_max"] = round(max(delays), 1)
        if not args.skip_listing:
            result["listing_s"] = round(bench_listing(args.files), 3)
        result["decode_many_speedup"] = round(bench_many(directory), 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
