"""Fixtures for the console tests: one real gateway and one headless Chromium per test session.

The gateway is the demo's shape (two dual-SIM modems, one per device, one agent) plus a third
emulated modem that no device uses yet: the add-device test enrolls it through the console.

The browser is Debian's chromium driven by Debian's chromium-driver through Selenium. Both paths
are given explicitly and SE_OFFLINE is set, so Selenium never runs selenium-manager (which would
download a browser or driver); Chromium is told to resolve no host but loopback, so nothing in a
test talks to an address off this machine.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.stack import FAST_PACING, PASSWORD, Device, GatewayStack
from tests.support.testdb import AppDb

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Where screenshots go: $SIMHIVE_SCREENSHOTS, or the session's temporary directory.
SHOTS_ENV = "SIMHIVE_SCREENSHOTS"
DESKTOP = (1280, 900)
PHONE = (390, 844)


class ConsoleStack(GatewayStack):
    """GatewayStack whose last emulated modem has no device and no agent yet."""

    def start(self) -> ConsoleStack:
        self.root.mkdir(parents=True, exist_ok=True)
        self.start_server()
        made = self.cli("account", "create", "--email", self.email, "--password", PASSWORD)
        self.token = str(made["token"])
        self.start_emulator()
        for modem in self.emu_state["modems"][:-1]:
            made = self.cli("device", "create", "--email", self.email, "--title", modem["id"])
            self.devices.append(Device(int(made["device_id"]), str(made["token"]), modem))
            self.set_device_settings(self.devices[-1], self.device_settings)
        self.write_agent_config(0)
        self.start_agent(0)
        return self

    @property
    def spare_modem(self) -> dict[str, Any]:
        modem: dict[str, Any] = self.emu_state["modems"][-1]
        return modem


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    root = tmp_path_factory.mktemp("console-gw")
    gw = ConsoleStack(
        root,
        modems=3,
        profile="quectel-ec25",
        dual_sim="ports",
        emulator_args=["--report-delay", "1"],
        device_settings=FAST_PACING,
    )
    try:
        gw.start()
        gw.wait_agent_ready()
        yield gw
    except BaseException:
        print(gw.logs(6000))
        raise
    finally:
        gw.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get(SHOTS_ENV)
    path = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def chrome() -> WebDriver:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            raise AssertionError(f"{path} is missing: run scripts/bootstrap test")
    os.environ["SE_OFFLINE"] = "true"  # Selenium must never fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-domain-reliability",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        # Only loopback resolves: nothing can leave the machine.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    driver = chrome()
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, timeout: float = 30) -> WebDriverWait[WebDriver]:
    # A live region may be swapped between finding an element and reading it: try again.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )


def login(driver: WebDriver, stack: GatewayStack) -> None:
    """Log in through the form (if not logged in already)."""
    driver.get(stack.url + "/login")
    if "/login" not in driver.current_url:
        return
    driver.find_element(By.ID, "email").send_keys(stack.email)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver).until(lambda d: "/login" not in d.current_url)


def shot(driver: WebDriver, folder: Path, name: str, size: tuple[int, int] = DESKTOP) -> Path:
    """A screenshot of the whole page at a window width (phone or desktop)."""
    driver.set_window_size(*size)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size[0], max(size[1], min(int(height), 4000)))
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(*DESKTOP)
    return path


def post_form(url: str, fields: dict[str, str], cookie: str | None) -> tuple[int, str]:
    """POST a form outside the browser, with or without a session cookie; (status, body)."""
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data)
    if cookie:
        request.add_header("Cookie", cookie)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


@pytest.fixture
def db(tmp_path: Path) -> AppDb:
    """The in-process app's database: a SQLite file here; tests/store/test_console_pg.py gives
    the same tests a PostgreSQL schema."""
    return AppDb(path=tmp_path / "db.sqlite3")
