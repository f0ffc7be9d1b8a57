"""End-to-end demo: satellites as separate processes, steered by a controller script.

Starts (on loopback, in a fresh group) two Example satellites, a RandomTransmitter and an
H5DataWriter, runs initialize -> launch -> start -> stop -> land with the controller API while
printing every state change, shuts everything down and decodes the HDF5 file it wrote.
Exit code 0 means the whole session worked.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


def start(script: str, name: str, group: str, logdir: Path) -> subprocess.Popen[bytes]:
    log = open(logdir / f"{script}.{name}.log", "wb")  # noqa: SIM115 - closed with the process
    cmd = [str(BIN / script), "-g", group, "-n", name, "-i", LOOPBACK, "-l", "DEBUG"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def stop_all(procs: list[subprocess.Popen[bytes]], grace: float = 0.0) -> None:
    """SIGTERM what is still running after ``grace`` s (told to shut down: they exit alone)."""
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="run duration")
    parser.add_argument("--output", default=str(ROOT / "demo_output"), help="output directory")
    args = parser.parse_args()

    from controller import Controller

    group = f"demo_{uuid.uuid4().hex[:8]}"
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("demo_%Y%m%d_%H%M%S")
    print(f"group {group}, logs and data in {out}")
    written = ""
    procs = [
        start("SatelliteExample", "a", group, out),
        start("SatelliteExample", "b", group, out),
        start("SatelliteRandomTransmitter", "t1", group, out),
        start("SatelliteH5DataWriter", "w1", group, out),
    ]
    names = ["Example.a", "Example.b", "RandomTransmitter.t1", "H5DataWriter.w1"]
    config = {
        "_default": {"_autonomy": {"max_heartbeat_interval": 5}},
        "Example": {"_default": {"sample_period": 0.05}},
        "RandomTransmitter": {
            "t1": {
                "block_size": 1024,
                "rate": 20000,
                "_conditions": {"require_starting_after": ["H5DataWriter.w1"]},
            }
        },
        "H5DataWriter": {
            "w1": {
                "output_directory": str(out),
                "allow_concurrent_reading": True,
                "flush_interval": 1.0,
                "_data": {"receive_from": ["RandomTransmitter.t1"]},
            }
        },
    }
    shut_down = False
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.on_state_change(lambda n, o, s: print(f"  {n:<24} {o:>12} -> {s}"))
            ctl.await_satellites(names, timeout=30)
            print(f"found {len(ctl.satellites)} satellites")
            for step, arg, state in [
                ("initialize", config, "INIT"),
                ("launch", None, "ORBIT"),
                ("start", run_id, "RUN"),
            ]:
                print(f"-> {step}")
                getattr(ctl, step)(*([arg] if arg is not None else []))
                ctl.await_state(state, timeout=30)
            time.sleep(args.seconds)
            print("-> stop")
            ctl.stop()
            ctl.await_state("ORBIT", timeout=60)
            written = ctl.satellites["H5DataWriter.w1"].command("get_current_filename").verb
            print("-> land")
            ctl.land()
            ctl.await_state("INIT", timeout=30)
            for name in names:
                print(f"  {name:<24} {ctl.satellites[name].command('get_status').verb}")
            ctl.shutdown()
            shut_down = True
    finally:
        stop_all(procs, grace=10.0 if shut_down else 0.0)
    codes = [p.returncode for p in procs]
    print(f"satellites exited with {codes}")
    print(f"-> decoding {written}")
    summary = subprocess.run([str(BIN / "constellation-h5"), "summary", written], check=False)
    ok = all(c == 0 for c in codes) and summary.returncode == 0
    print("demo OK: a run was taken, stored and decoded" if ok else "demo FAILED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())
