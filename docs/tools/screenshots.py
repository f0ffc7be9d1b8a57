"""Render screenshots of the MissionControl page into docs/images/ (used by docs/missioncontrol.md).

Starts a demo group on 127.0.0.1 (Example, RandomTransmitter, DevNullReceiver), MissionControl
on a free port and a headless Chromium; clicks through initialize, launch and start, adds a
chart and the live histogram, opens a custom command form, and saves the pictures.
Everything it starts it stops.

    .venv/bin/python docs/tools/screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from controller.web.headless import close_browser, start_browser  # noqa: E402

BIN = Path(sys.executable).parent
CONFIG = """
[RandomTransmitter.tx]
rate = 500
block_size = 256
[DevNullReceiver.rx]
_data = { receive_from = ["RandomTransmitter.tx"] }
[Example._default]
sample_period = 0.05
"""


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mc-shots-"))
    (tmp / "run.toml").write_text(CONFIG)
    group = f"demo_{uuid.uuid4().hex[:6]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mc_cmd = [str(BIN / "MissionControl"), "-g", group, "-i", "127.0.0.1", "--port", str(port)]
    procs = [subprocess.Popen([*mc_cmd, "-c", str(tmp / "run.toml")], stdout=subprocess.DEVNULL)]
    driver = None
    try:
        wait(lambda: up(url + "/api/info"), 20, "MissionControl")
        for script, name in [
            ("SatelliteExample", "sensor"),
            ("SatelliteExample", "stage"),
            ("SatelliteRandomTransmitter", "tx"),
            ("SatelliteDevNullReceiver", "rx"),
        ]:
            cmd = [str(BIN / script), "-g", group, "-n", name, "-i", "127.0.0.1"]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        driver = start_browser(1400, 1300)
        js = driver.execute_script
        driver.get(url + "/")
        wait(lambda: js("return document.querySelectorAll('#sat-body tr').length") == 4, 30, "4")

        def click(verb: str, state: str) -> None:
            wait(lambda: js(f"return !document.getElementById('btn-{verb}').disabled"), 20, verb)
            js(f"document.getElementById('btn-{verb}').click()")
            wait(
                lambda: js("return document.getElementById('h-state').textContent") == state,
                30,
                state,
            )

        click("initialize", "INIT")
        click("launch", "ORBIT")
        click("start", "RUN")
        wait(
            lambda: js("return [...document.querySelectorAll('#m-metric option')].length"),
            20,
            "metrics",
        )
        for i, (sender, metric) in enumerate(
            [("RandomTransmitter.tx", "TX_RECORDS"), ("DevNullReceiver.rx", "RX_RECORDS")]
        ):
            wait(
                lambda s=sender: js(
                    "return [...document.querySelectorAll('#m-sender option')]"
                    f".some(o => o.value == {s!r})"
                ),
                20,
                sender,
            )
            js(
                f"const s = document.getElementById('m-sender'); s.value = {sender!r};"
                "s.dispatchEvent(new Event('change'));"
            )
            wait(
                lambda m=metric: js(
                    "return [...document.querySelectorAll('#m-metric option')]"
                    f".some(o => o.value == {m!r})"
                ),
                20,
                metric,
            )
            js(f"document.getElementById('m-metric').value = {metric!r};")
            js(f"document.getElementById('{'m-new' if i == 0 else 'm-add'}').click()")
        tx = "RandomTransmitter.tx"
        wait(
            lambda: js(
                "return [...document.getElementById('hist-sender').options]"
                f".some(o => o.value == {tx!r})"
            ),
            20,
            "the live tap's senders",
        )
        js(f"document.getElementById('hist-sender').value = {tx!r};")
        js("document.getElementById('hist-go').click()")
        wait(
            lambda: js("return Number(document.getElementById('hist').dataset.bins || 0)"),
            20,
            "bins",
        )
        time.sleep(6)  # let the run and its chart grow for the picture
        driver.save_screenshot(str(out / "missioncontrol.png"))
        driver.find_element("id", "live").screenshot(str(out / "missioncontrol-live.png"))
        js("document.querySelector('#sat-body tr[data-name=\"Example.sensor\"] .cmd-open').click()")
        wait(lambda: js("return document.getElementById('cmd-select').options.length"), 10, "cmds")
        js(
            "const s = document.getElementById('cmd-select'); s.value = 'set_offset';"
            "s.dispatchEvent(new Event('change'));"
        )
        js("document.getElementById('satellites').scrollIntoView(); window.scrollBy(0, -70);")
        driver.set_window_size(1400, 700)
        driver.save_screenshot(str(out / "missioncontrol-commands.png"))
        js("document.getElementById('btn-stop').click()")
        print(
            "wrote missioncontrol.png, missioncontrol-live.png, "
            f"missioncontrol-commands.png in {out}"
        )
    finally:
        if driver is not None:
            close_browser(driver)
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images")
