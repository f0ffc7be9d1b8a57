"""MissionControl web: a headless Chromium driven by Selenium, for tests, screenshots and bench.

Uses Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``); nothing is downloaded. The flags keep the browser off the network
(no background requests, updates or sync) and every browser gets a fresh profile directory,
removed by :func:`close_browser`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CHROMEDRIVER", "CHROMIUM", "FLAGS", "close_browser", "have_browser", "start_browser"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def have_browser() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def start_browser(width: int = 1400, height: int = 1000) -> Any:
    """A Selenium WebDriver for a new headless Chromium with its own profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver._mc_profile = profile  # type: ignore[attr-defined]
    return driver


def close_browser(driver: Any) -> None:
    """Quit the browser and its driver and remove its profile."""
    try:
        driver.quit()
    finally:
        shutil.rmtree(getattr(driver, "_mc_profile", ""), ignore_errors=True)
