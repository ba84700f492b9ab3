"""Finding the system's Chromium, its headless flags, and what every driver of a page offers."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from typing import Optional

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
CHROME_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage")


def find_chromium() -> tuple[Optional[str], Optional[str], str]:
    """(browser, chromedriver or None, why not) from PATH; ``why not`` is "" when Chromium is there."""
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    why = "" if browser else (f"no Chromium on PATH (looked for {', '.join(BROWSERS)}; "
                              "Debian: apt-get install -y chromium chromium-driver)")
    return browser, driver, why


class HeadlessPage(ABC):
    """The interface of both drivers: ``open``, ``run`` (JavaScript with ``arguments``/``return``),
    ``click`` (CSS selector), ``console`` (``level``, ``message``), ``screenshot``, ``close``."""

    @abstractmethod
    def run(self, script: str, *args):
        """Run ``script`` (a function body) in the page; its return value, JSON-converted."""

    @abstractmethod
    def close(self) -> None:
        """End the browser and remove its profile."""

    def broken_images(self) -> list[str]:
        """The ``src`` (first 120 characters) of every image that did not load."""
        return self.run("return Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                        ".map(i => i.getAttribute('src').slice(0, 120));")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
