"""The console in Debian's headless Chromium, driven with Selenium through Debian's chromedriver
(no downloaded browser). Selenium blocks, so tests call these methods with `asyncio.to_thread`
while the service answers in the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

REPO: Final = Path(__file__).resolve().parents[2]
SCREENSHOTS: Final = REPO / os.environ.get("TIMESTEP_SCREENSHOTS", "build/screenshots")
"""Where tests save screenshots (`make screenshots` sets TIMESTEP_SCREENSHOTS=docs: the README's)."""
CHROMIUM: Final = "/usr/bin/chromium"
CHROMEDRIVER: Final = "/usr/bin/chromedriver"
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
)
P = ParamSpec("P")
T = TypeVar("T")
WAIT_S: Final = 15.0
"""Upper bound for the page to show something (never a sleep)."""


def browser_missing() -> str:
    """Why the browser tests cannot run here ('' when they can)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if not missing:
        return ""
    return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"


class ConsolePage:
    """One fresh browser profile looking at the console at `base_url`."""

    def __init__(self, base_url: str, width: int = 1280, height: int = 900) -> None:
        self.base_url = base_url
        self._profile = tempfile.mkdtemp(prefix="timestep-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        # Headless windows are at least 500 px wide: emulate a phone's viewport exactly.
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self._profile, ignore_errors=True)

    def open(self, fragment: str) -> None:
        self.driver.get(f"{self.base_url}/#/{fragment}")

    def go(self, fragment: str) -> None:
        """Navigate inside the page (no reload)."""
        self.driver.execute_script("location.hash = arguments[0]", f"#/{fragment}")

    def use_key(self, key: str) -> None:
        self.go("key")
        field = self.wait_for("input[name=key]")
        field.clear()
        field.send_keys(key)
        self.click("form button[type=submit]")
        self.wait_for_text("h1", "Inbox")

    def wait_for(self, css: str) -> WebElement:
        element: WebElement = WebDriverWait(self.driver, WAIT_S).until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css)),
            f"nothing matched {css!r}",
        )
        return element

    def wait_for_text(self, css: str, text: str) -> WebElement:
        WebDriverWait(self.driver, WAIT_S).until(
            expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, css), text),
            f"{css!r} never showed {text!r}; page: {self.text('main')!r}",
        )
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait_for_count(self, css: str, count: int) -> None:
        WebDriverWait(self.driver, WAIT_S).until(
            lambda driver: len(driver.find_elements(By.CSS_SELECTOR, css)) >= count,
            f"fewer than {count} of {css!r}; page: {self.text('main')!r}",
        )

    def click(self, css: str) -> None:
        """Click the element once it is visible; one re-rendered meanwhile is found again."""

        def clicked(driver: webdriver.Chrome) -> bool:
            element = driver.find_element(By.CSS_SELECTOR, css)
            if not element.is_displayed():
                return False
            element.click()
            return True

        WebDriverWait(
            self.driver, WAIT_S, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
        ).until(clicked, f"could not click {css!r}; page: {self.text('main')!r}")

    def type(self, css: str, text: str) -> None:
        self.wait_for(css).send_keys(text)

    def replace(self, css: str, text: str) -> None:
        """Replace what a field holds with `text`, as a person would type it."""
        field = self.wait_for(css)
        field.clear()
        field.send_keys(text)

    def visible(self, css: str) -> bool:
        return bool(self.driver.find_element(By.CSS_SELECTOR, css).is_displayed())

    def enabled(self, css: str) -> bool:
        return bool(self.driver.find_element(By.CSS_SELECTOR, css).is_enabled())

    def attribute(self, css: str, name: str) -> str | None:
        value = self.driver.find_element(By.CSS_SELECTOR, css).get_attribute(name)
        return None if value is None else str(value)

    def text(self, css: str) -> str:
        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def texts(self, css: str) -> list[str]:
        return [str(element.text) for element in self.driver.find_elements(By.CSS_SELECTOR, css)]

    def attributes(self, css: str, name: str) -> list[str]:
        return [
            str(element.get_attribute(name)) for element in self.driver.find_elements(By.CSS_SELECTOR, css)
        ]

    def count(self, css: str) -> int:
        return len(self.driver.find_elements(By.CSS_SELECTOR, css))

    def url(self) -> str:
        return str(self.driver.current_url)

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))


async def in_browser(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call a blocking ConsolePage method off the event loop, which meanwhile serves the page."""
    return await asyncio.to_thread(function, *args, **kwargs)
