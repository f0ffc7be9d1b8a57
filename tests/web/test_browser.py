"""MissionControl in a real headless Chromium, against real satellite processes on 127.0.0.1.

One browser, one MissionControl process and one group for the module; the tests run in file
order (token, configuration error, a full run by clicking with a chart, log filters, DEAD).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from controller.web.headless import close_browser, have_browser, start_browser
from tests.conftest import FAST_TIMING
from tests.helpers import LOOPBACK, SatelliteProcess, console_script, unique_group, wait_for
from tests.web.proxy import CuttableProxy

pytestmark = pytest.mark.timeout(120)
if not have_browser():  # `make test` installs them (make system-deps)
    pytest.fail("chromium and chromedriver are needed: run `make system-deps`", pytrace=False)

from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

TOKEN = "let-me-operate"
RUN_TOML = """
[RandomTransmitter.tx]
rate = 200
block_size = 32
[DevNullReceiver.rx]
_data = { receive_from = ["RandomTransmitter.tx"] }
[Example._default]
sample_period = 0.05
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class Page:
    """The browser on MissionControl's page, with waits."""

    def __init__(self, driver: Any, url: str) -> None:
        self.d, self.url = driver, url

    def js(self, script: str) -> Any:
        return self.d.execute_script(script)

    def by_id(self, element_id: str) -> Any:
        return self.d.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return str(self.js(f"return document.getElementById({element_id!r}).textContent"))

    def states(self) -> dict[str, str]:
        return self.js(
            "const o = {}; for (const tr of document.querySelectorAll('#sat-body tr'))"
            " o[tr.dataset.name] = tr.querySelector('.sat-state').textContent; return o;"
        )

    def wait_states(self, expected: str, names: list[str], timeout: float = 20) -> None:
        wait_for(
            lambda: all(self.states().get(n) == expected for n in names),
            timeout,
            0.05,
            f"{names} {expected} on the page (shows {self.states()})",
        )

    def select(self, element_id: str, value: str) -> None:
        """Choose ``value`` in a select whose options the page may be refreshing meanwhile."""

        def chosen() -> bool:
            try:
                Select(self.by_id(element_id)).select_by_value(value)
            except (StaleElementReferenceException, NoSuchElementException):
                return False
            return self.js(f"return document.getElementById({element_id!r}).value") == value

        wait_for(chosen, 10, 0.05, f"{value} chosen in {element_id}")

    def click(self, element_id: str) -> None:
        wait_for(lambda: self.by_id(element_id).is_enabled(), 20, 0.05, f"{element_id} enabled")
        button = self.by_id(element_id)
        # Not under the sticky header: the page may have scrolled to a chart.
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("mc")
    (tmp / "run.toml").write_text(RUN_TOML)
    (tmp / "broken.toml").write_text("[Example.a]\nsample_period = = 0.05\n")
    name = unique_group("web")
    port = free_port()
    cmd = [console_script("MissionControl"), "-g", name, "-i", LOOPBACK, "--port", str(port)]
    cmd += ["-c", str(tmp / "run.toml"), "--operator-token", TOKEN, "--log-level", "DEBUG"]
    log = open(tmp / "mc.log", "wb")  # noqa: SIM115
    # fast heartbeats: MissionControl sees the killed satellite DEAD within about a second
    env = {**os.environ, **FAST_TIMING}
    mc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://{LOOPBACK}:{port}"
    sats: list[SatelliteProcess] = []
    try:
        wait_for(lambda: _get(url + "/api/info"), 20, 0.1, "MissionControl serving")
        sats = [
            SatelliteProcess(script, sat, name, env=FAST_TIMING)
            for script, sat in (
                ("SatelliteExample", "a"),
                ("SatelliteRandomTransmitter", "tx"),
                ("SatelliteDevNullReceiver", "rx"),
                ("SatelliteExample", "victim"),
            )
        ]
        names = [s.canonical for s in sats]
        wait_for(
            lambda: len((_get(url + "/api/snapshot") or {}).get("satellites", [])) == 4,
            30,
            0.1,
            "4 satellites known to MissionControl",
        )
        yield {"url": url, "sats": sats, "names": names, "mc": mc, "tmp": tmp}
    finally:
        with ThreadPoolExecutor(len(sats) or 1) as pool:  # their shutdowns overlap
            list(pool.map(SatelliteProcess.stop, sats))
        mc.send_signal(signal.SIGTERM)
        try:
            mc.wait(15)
        except subprocess.TimeoutExpired:
            mc.kill()
            mc.wait(5)
        log.close()


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as res:
            return json.loads(res.read())
    except OSError:
        return None


@pytest.fixture(scope="module")
def page(group: dict[str, Any]) -> Iterator[Page]:
    driver = start_browser()
    try:
        p = Page(driver, group["url"])
        driver.get(group["url"] + "/")
        wait_for(lambda: p.js("return document.body.dataset.ready") == "1", 20, 0.05, "page ready")
        p.wait_states("NEW", group["names"])
        yield p
    finally:
        close_browser(driver)


def test_header_shows_the_group(page: Page, group: dict[str, Any]) -> None:
    assert page.text("h-count") == "4"
    assert page.text("h-state") == "NEW"
    assert page.text("h-run") == "next run_1"
    assert page.by_id("btn-initialize").is_enabled()
    assert not page.by_id("btn-launch").is_enabled()


def test_wrong_token_is_refused(page: Page) -> None:
    page.by_id("token").send_keys("not-it")
    page.by_id("token-save").click()
    wait_for(lambda: "wrong" in page.text("token-msg"), 10, 0.05, "token refused on the page")
    page.click("btn-initialize")
    wait_for(lambda: "operator token wrong" in page.text("control-msg"), 10, 0.05, "refusal")
    page.by_id("token").clear()
    page.by_id("token").send_keys(TOKEN)
    page.by_id("token-save").click()
    wait_for(lambda: page.text("token-msg") == "operator", 10, 0.05, "token accepted")


def test_configuration_error_is_shown(page: Page, group: dict[str, Any]) -> None:
    Select(page.by_id("config-select")).select_by_value("broken.toml")
    page.click("btn-initialize")
    wait_for(lambda: "broken.toml" in page.text("control-msg"), 10, 0.05, "config error shown")
    assert "error" in page.by_id("control-msg").get_attribute("class")
    assert set(page.states().values()) == {"NEW"}
    # An uploaded file is checked at once; a good one becomes selectable.
    bad = group["tmp"] / "mine-bad.toml"
    bad.write_text("[Example.a\n")
    page.by_id("config-file").send_keys(str(bad))
    wait_for(lambda: "upload mine-bad.toml: " in page.text("control-msg"), 10, 0.05, "refused")
    good = group["tmp"] / "mine.toml"
    good.write_text(RUN_TOML)
    page.by_id("config-file").send_keys(str(good))
    wait_for(
        lambda: (
            page.js("return document.getElementById('config-select').value") == "uploaded:mine.toml"
        ),
        10,
        0.05,
        "the upload selected",
    )


def test_full_run_by_clicking_with_a_live_chart(page: Page, group: dict[str, Any]) -> None:
    names = group["names"]
    Select(page.by_id("config-select")).select_by_value("run.toml")
    page.click("btn-initialize")
    page.wait_states("INIT", names)
    page.click("btn-launch")
    page.wait_states("ORBIT", names)
    page.click("btn-start")
    page.wait_states("RUN", names)
    wait_for(lambda: page.text("h-run").startswith("run_1"), 10, 0.05, "run id in the header")
    assert page.text("h-condition") == "GOOD"
    # A chart of the transmitter's records receives points while the run goes on.
    wait_for(
        lambda: (
            "RandomTransmitter.tx"
            in page.js(
                "return [...document.querySelectorAll('#m-sender option')].map(o => o.value)"
            )
        ),
        15,
        0.1,
        "the transmitter's metrics offered",
    )
    page.select("m-sender", "RandomTransmitter.tx")
    wait_for(
        lambda: (
            "TX_RECORDS"
            in page.js(
                "return [...document.querySelectorAll('#m-metric option')].map(o => o.value)"
            )
        ),
        15,
        0.1,
        "TX_RECORDS offered",
    )
    page.select("m-metric", "TX_RECORDS")
    page.by_id("m-new").click()

    def points() -> int:
        return int(
            page.js(
                "const c = document.querySelector('.chart'); "
                "return c ? Number(c.dataset.points || 0) : 0"
            )
        )

    first = wait_for(points, 15, 0.1, "points in the chart")
    wait_for(lambda: points() > first, 15, 0.1, "the chart growing")
    assert page.js("return document.querySelectorAll('.chart canvas').length") >= 1
    page.click("btn-stop")
    page.wait_states("ORBIT", names)
    page.click("btn-land")
    page.wait_states("INIT", names)
    assert page.text("h-run").endswith("(next run_2)")
    replies = page.js(
        "return [...document.querySelectorAll('#sat-body td.reply')].map(td => td.textContent)"
    )
    assert replies and all(r == "SUCCESS: transitioning" for r in replies)


def test_live_data_status_and_run_condition(page: Page, group: dict[str, Any]) -> None:
    names, tx = group["names"], "RandomTransmitter.tx"
    page.click("btn-launch")
    page.wait_states("ORBIT", names)
    page.click("btn-start")
    page.wait_states("RUN", names)
    # The transmitter's status in RUN is its running text, not the one of `starting`.
    wait_for(
        lambda: (
            page.js(
                f"return document.querySelector('#sat-body tr[data-name=\"{tx}\"] td:nth-child(4)')"
                ".textContent"
            )
            == "Run run_2 running"
        ),
        10,
        0.05,
        "the transmitter's status in RUN",
    )

    def rate() -> float:
        text = page.js(
            f"const td = document.querySelector('#rates-body tr[data-sender=\"{tx}\"] .rps');"
            " return td ? td.textContent : '0'"
        )
        return float(text)

    wait_for(lambda: rate() > 0, 20, 0.1, "a non-zero records/s of the transmitter (live tap)")
    mbps = page.js(
        f"return document.querySelector('#rates-body tr[data-sender=\"{tx}\"] .mbps').textContent"
    )
    assert float(mbps) > 0
    page.select("hist-sender", tx)
    page.by_id("hist-go").click()

    def hist() -> tuple[int, int]:
        d = page.js(
            "const c = document.getElementById('hist'); return [c.dataset.bins, c.dataset.values]"
        )
        return int(d[0] or 0), int(d[1] or 0)

    wait_for(lambda: hist()[0] > 0 and hist()[1] > 0, 20, 0.1, "histogram bins on the page")
    first = hist()[1]
    wait_for(lambda: hist()[1] > first, 20, 0.1, "the histogram taking new values")
    assert page.text("hist-msg").startswith(tx)
    page.click("btn-stop")
    page.wait_states("ORBIT", names)

    # The header's condition is the receivers' RUN_CONDITION and the EORs once the run ended.
    def condition() -> tuple[str, str, str]:
        return tuple(
            page.js(
                "const c = document.getElementById('h-condition');"
                " return [c.textContent, c.dataset.source, c.title]"
            )
        )

    wait_for(
        lambda: condition()[1] == "receivers" and f"EOR {tx}: GOOD" in condition()[2],
        15,
        0.05,
        "the run condition from the receiver and the EOR",
    )
    text, _, title = condition()
    assert text == "GOOD" and "DevNullReceiver.rx: GOOD" in title
    page.click("btn-land")
    page.wait_states("INIT", names)


def test_log_filters(page: Page, group: dict[str, Any]) -> None:
    def rows() -> list[list[str]]:
        return page.js(
            "return [...document.querySelectorAll('#log-body tr')]"
            ".map(tr => [...tr.children].map(td => td.textContent))"
        )

    wait_for(lambda: len(rows()) > 0, 10, 0.05, "log lines")
    page.by_id("log-sender").send_keys("Example.a")
    shown = wait_for(rows, 10, 0.05, "Example.a's lines")
    assert all(r[2] == "Example.a" for r in shown)
    page.by_id("log-text").send_keys("no such text 0x5eed")
    wait_for(lambda: rows() == [], 10, 0.05, "nothing matching")
    assert page.text("log-shown").startswith("0 shown")
    page.by_id("log-sender").clear()
    page.by_id("log-text").clear()
    Select(page.by_id("log-level")).select_by_value("WARNING")
    assert all(r[1] in ("WARNING", "CRITICAL") for r in rows())


def test_two_operators_at_once_get_one_success_per_satellite(
    page: Page, group: dict[str, Any]
) -> None:
    def launch() -> dict[str, Any]:
        req = urllib.request.Request(
            group["url"] + "/api/command",
            json.dumps({"verb": "launch"}).encode(),
            {"Content-Type": "application/json", "X-Operator-Token": TOKEN},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.loads(res.read())["replies"]

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: launch(), range(2))
    for name in group["names"]:
        types = sorted([first[name]["type"], second[name]["type"]])
        assert types == ["INVALID", "SUCCESS"], (name, first[name], second[name])
    page.wait_states("ORBIT", group["names"])
    page.click("btn-land")
    page.wait_states("INIT", group["names"])


def test_killed_satellite_turns_dead(page: Page, group: dict[str, Any]) -> None:
    victim = group["sats"][3]
    os.kill(victim.pid, signal.SIGKILL)
    victim.proc.wait(10)
    wait_for(lambda: page.states().get(victim.canonical, "").startswith("DEAD"), 30, 0.05, "DEAD")
    assert page.states()[victim.canonical] == "DEAD (INIT)"
    assert page.js("return document.getElementById('h-state').classList.contains('mixed')")


def test_assets_are_all_local(page: Page, group: dict[str, Any]) -> None:
    urls = page.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(group["url"]) or u.startswith("data:") for u in urls)


def test_page_resumes_after_the_stream_drops(group: dict[str, Any]) -> None:
    port = int(group["url"].rsplit(":", 1)[1])
    proxy = CuttableProxy((LOOPBACK, port))
    driver = start_browser()
    live = [n for n in group["names"] if n != group["sats"][3].canonical]
    try:
        p = Page(driver, f"http://{LOOPBACK}:{proxy.port}")
        driver.get(p.url + "/")
        wait_for(lambda: p.js("return document.body.dataset.ready") == "1", 20, 0.05, "ready")
        p.wait_states("INIT", live)
        p.by_id("token").send_keys(TOKEN)
        p.by_id("token-save").click()
        wait_for(lambda: p.text("token-msg") == "operator", 10, 0.05, "token accepted")
        wait_for(lambda: p.text("conn") == "live", 10, 0.05, "stream connected")
        proxy.cut()  # the connection drops; reconnects are refused meanwhile
        wait_for(lambda: p.text("conn") == "reconnecting", 10, 0.05, "the drop noticed")
        req = urllib.request.Request(
            group["url"] + "/api/command",
            json.dumps({"verb": "launch", "targets": live}).encode(),
            {"Content-Type": "application/json", "X-Operator-Token": TOKEN},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as res:
            assert all(r["ok"] for r in json.loads(res.read())["replies"].values())
        wait_for(
            lambda: all(s["state"] == "ORBIT" for s in _live_rows(group, live)),
            20,
            0.05,
            "ORBIT on the server",
        )
        assert set(p.states()[n] for n in live) == {"INIT"}  # nothing reached the page
        accepted = proxy.accepted
        proxy.resume()
        p.wait_states("ORBIT", live)  # what it missed arrived after reconnecting
        assert proxy.accepted > accepted
        assert p.text("conn") == "live"
        p.click("btn-land")  # and it goes on following
        p.wait_states("INIT", live)
    finally:
        close_browser(driver)
        proxy.close()


def _live_rows(group: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    snap = _get(group["url"] + "/api/snapshot") or {}
    return [s for s in snap.get("satellites", []) if s["name"] in names]
