"""MissionControl web figures: page ready time, state-change latency, idle server CPU.

Starts N Example satellites (in one host process, on 127.0.0.1), MissionControl on a free port
and a headless Chromium, then measures:

- page ready: from ``driver.get`` until the page says ready and shows all N rows (several
  loads; median and maximum). Goal: <= 1 s with 50 satellites.
- state change: from sending ``initialize`` to one satellite until its row shows INIT in the
  page (a MutationObserver stamps the moment). This includes the command round trip and the
  satellite's own initializing, so it is an upper bound of heartbeat -> page. Goal: <= 0.5 s.
- idle CPU: the MissionControl process's CPU time over ``--idle`` seconds with the N idle
  satellites and the page open, as % of one core. Goal: <= 5 %.
- with ``--data-rate R``: a RandomTransmitter sending R records/s (``--block-size`` bytes) to a
  DevNullReceiver for ``--data-seconds``, the page following its live histogram: the
  MissionControl process's CPU then (its live reader receives every DATA message), and the
  records/s the page shows.

    python bench/web.py [--satellites 50] [--loads 5] [--changes 5] [--idle 20]
                        [--data-rate 0] [--block-size 1024] [--data-seconds 10] [--mc-args ...]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.web.headless import close_browser, start_browser
from tests.helpers import LOOPBACK, console_script, unique_group, wait_for


def host(group: str, first: int, count: int) -> None:
    """Run Example satellites ``first`` .. ``first + count - 1`` in this process until SIGTERM.

    Every satellite subscribes to the heartbeats of every other one: a process holds
    ``count * N`` sockets, hence several processes and a raised file limit.
    """
    import resource

    import zmq

    from satellites.example import Example

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    zmq.Context.instance().set(zmq.MAX_SOCKETS, 16384)
    sats = [
        Example(f"s{i:02d}", group, interfaces=[LOOPBACK]).start()
        for i in range(first, first + count)
    ]
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    for sat in sats:
        sat.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as res:
            return json.loads(res.read())
    except OSError:
        return None


def post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read())


READY = """
return document.body.dataset.ready === "1"
    && document.querySelectorAll('#sat-body tr').length >= arguments[0];
"""
OBSERVE = """
const name = arguments[0], want = arguments[1];
window.__seen = null;
const find = () => document.querySelector(`#sat-body tr[data-name="${name}"] .sat-state`);
const obs = new MutationObserver(() => {
  const cell = find();
  if (cell && cell.textContent === want && window.__seen === null) {
    window.__seen = performance.timeOrigin + performance.now(); obs.disconnect();
  }
});
obs.observe(document.getElementById('sat-body'), {subtree: true, childList: true,
  characterData: true});
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--satellites", type=int, default=50)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--data-rate", type=float, default=0.0, help="records/s of a data run")
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--data-seconds", type=float, default=10.0)
    parser.add_argument("--mc-args", nargs="*", default=[], help="more MissionControl options")
    parser.add_argument("--host", nargs=3, help=argparse.SUPPRESS)  # GROUP FIRST COUNT
    args = parser.parse_args()
    if args.host:
        host(args.host[0], int(args.host[1]), int(args.host[2]))
        return 0
    n = args.satellites
    group = unique_group("webbench")
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    config = Path(tempfile.mkdtemp(prefix="webbench-")) / "run.toml"
    config.write_text(
        "[Example._default]\nsample_period = 1.0\n"
        f"[RandomTransmitter.tx]\nrate = {args.data_rate}\nblock_size = {args.block_size}\n"
        '[DevNullReceiver.rx]\n_data = { receive_from = ["RandomTransmitter.tx"] }\n'
    )
    mc_cmd = [console_script("MissionControl"), "-g", group, "-i", LOOPBACK, "--port", str(port)]
    mc_cmd += args.mc_args
    mc = subprocess.Popen([*mc_cmd, "-c", str(config)], stdout=subprocess.DEVNULL)
    hosts = [
        subprocess.Popen(
            [sys.executable, __file__, "--host", group, str(first), str(min(10, n - first))],
            stdout=subprocess.PIPE,
            text=True,
        )
        for first in range(0, n, 10)
    ]
    if args.data_rate > 0:
        for script, name in [
            ("SatelliteRandomTransmitter", "tx"),
            ("SatelliteDevNullReceiver", "rx"),
        ]:
            cmd = [console_script(script), "-g", group, "-n", name, "-i", LOOPBACK]
            hosts.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        n_all = n + 2
    else:
        n_all = n
    driver = None
    try:
        for proc in hosts[: len(range(0, n, 10))]:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        wait_for(
            lambda: len((get(url + "/api/snapshot") or {}).get("satellites", [])) == n_all,
            120,
            0.2,
            f"{n_all} satellites in MissionControl",
        )
        driver = start_browser()
        loads, walls = [], []
        for _ in range(args.loads):
            began = time.perf_counter()
            driver.get(url + "/")
            wait_for(lambda: driver.execute_script(READY, n), 30, 0.005, "page ready")
            walls.append(time.perf_counter() - began)
            # The page's own stamp: ms from navigation start to all rows shown.
            loads.append(float(driver.execute_script("return document.body.dataset.readyMs")) / 1e3)
        print(
            f"page ready with {n} satellites (navigation start -> all rows shown): median "
            f"{statistics.median(loads):.3f} s, max {max(loads):.3f} s over {len(loads)} loads "
            f"(goal <= 1 s); each: {', '.join(f'{t:.3f}' for t in loads)}; "
            f"seen by the driver: {', '.join(f'{t:.3f}' for t in walls)}"
        )
        names = sorted(
            s["name"] for s in get(url + "/api/snapshot")["satellites"] if s["type"] == "Example"
        )
        latencies = []
        for name in names[: args.changes]:
            driver.execute_script(OBSERVE, name, "INIT")
            sent = time.time() * 1000
            post(url + "/api/command", {"verb": "initialize", "targets": [name], "config": None})
            seen = wait_for(lambda: driver.execute_script("return window.__seen"), 10, 0.01, "INIT")
            latencies.append((seen - sent) / 1000)
        if latencies:
            print(
                f"initialize sent -> INIT shown: median {statistics.median(latencies):.3f} s, "
                f"max {max(latencies):.3f} s over {len(latencies)} satellites "
                "(upper bound of heartbeat -> page; goal <= 0.5 s)"
            )
        proc = psutil.Process(mc.pid)
        time.sleep(2)  # let the commands' echoes settle before the idle window
        before, t0 = proc.cpu_times(), time.monotonic()
        time.sleep(args.idle)
        after, t1 = proc.cpu_times(), time.monotonic()
        used = (after.user + after.system) - (before.user + before.system)
        print(
            f"server CPU, {n} idle satellites and one page open: "
            f"{100 * used / (t1 - t0):.1f} % of one core over {t1 - t0:.0f} s (goal <= 5 %)"
        )
        if args.data_rate > 0:
            data_run(args, url, driver, proc)
    finally:
        if driver is not None:
            close_browser(driver)
        for proc_ in (*hosts, mc):
            proc_.terminate()
            try:
                proc_.wait(30)
            except subprocess.TimeoutExpired:
                proc_.kill()
    return 0


def data_run(args: argparse.Namespace, url: str, driver: Any, proc: Any) -> None:
    """A run of the transmitter with the page following its histogram: MissionControl's CPU."""
    pair = ["RandomTransmitter.tx", "DevNullReceiver.rx"]

    def states(want: str) -> bool:
        sats = (get(url + "/api/snapshot") or {}).get("satellites", [])
        return all(s["state"] == want for s in sats if s["name"] in pair)

    for verb, state, extra in [
        ("initialize", "INIT", {"config": None}),
        ("launch", "ORBIT", {}),
        ("start", "RUN", {"run_id": f"bench_{int(time.time())}"}),
    ]:
        post(url + "/api/command", {"verb": verb, "targets": pair, **extra})
        wait_for(lambda s=state: states(s), 30, 0.05, state)
    js = driver.execute_script
    wait_for(
        lambda: js("return [...document.getElementById('hist-sender').options].length"),
        20,
        0.1,
        "the live senders",
    )
    js("document.getElementById('hist-sender').value = 'RandomTransmitter.tx';")
    js("document.getElementById('hist-go').click()")
    time.sleep(2)  # the run settles
    before, t0 = proc.cpu_times(), time.monotonic()
    time.sleep(args.data_seconds)
    after, t1 = proc.cpu_times(), time.monotonic()
    shown = js(
        'const td = document.querySelector(\'#rates-body tr[data-sender="RandomTransmitter.tx"] '
        ".rps'); return td ? td.textContent : '?'"
    )
    used = (after.user + after.system) - (before.user + before.system)
    print(
        f"server CPU during a run of {args.data_rate:g} records/s x {args.block_size} B, page "
        f"following the histogram: {100 * used / (t1 - t0):.1f} % of one core over "
        f"{t1 - t0:.0f} s; records/s shown: {shown}"
    )
    post(url + "/api/command", {"verb": "stop", "targets": pair})
    wait_for(lambda: states("ORBIT"), 30, 0.05, "ORBIT")


if __name__ == "__main__":
    raise SystemExit(main())
