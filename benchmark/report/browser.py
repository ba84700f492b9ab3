"""Open a report in headless Chromium: chromedriver's WebDriver HTTP API, else DevTools on a pipe.

Used by the report's browser test and to take the reference screenshot:

    python -m benchmark.report.browser <sweep>/report.html --screenshot report.png

prints what the page shows a user: images that did not load, console errors. Needs the
system's ``chromium`` (Debian: ``apt-get install chromium``); with ``chromedriver``
(``chromium-driver``) it is driven through WebDriver (:class:`Browser`), without it
through the DevTools protocol on a pipe (:class:`benchmark.report.browser_cdp.PipeBrowser`).
Both use the standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

from benchmark.report.chromium import CHROME_ARGS, HeadlessPage, find_chromium

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference

def launch(backend: Optional[str] = None, **kwargs) -> HeadlessPage:
    """A headless browser: ``backend`` "chromedriver" or "pipe"; default chromedriver where installed."""
    _, driver, why = find_chromium()
    if why:
        raise FileNotFoundError(why)
    if backend == "chromedriver" or (backend is None and driver):
        return Browser(**kwargs)
    from benchmark.report.browser_cdp import PipeBrowser

    return PipeBrowser(**kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser(HeadlessPage):
    """One headless Chromium session: ``open``, ``run`` (JavaScript), ``click``, ``console``, ``screenshot``."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 30.0):
        browser, driver, why = find_chromium()
        if why or driver is None:
            raise FileNotFoundError(why or "chromedriver is not on PATH (Debian: apt-get install -y chromium-driver)")
        self.port = _free_port()
        self.profile = tempfile.TemporaryDirectory(prefix="report-chromium-")
        self.driver = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.timeout = timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError("chromedriver did not start")
            time.sleep(0.1)
        options = {"binary": browser, "args": [*CHROME_ARGS, f"--user-data-dir={self.profile.name}",
                                               f"--window-size={width},{height}"]}
        caps = {"browserName": "chrome", "goog:chromeOptions": options, "goog:loggingPrefs": {"browser": "ALL"}}
        try:
            self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        except Exception:
            self.close()
            raise

    def _call(self, method: str, path: str, body: Optional[dict] = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"WebDriver {method} {path}: {err.read()[:500]!r}") from None

    def _session(self, method: str, path: str, body: Optional[dict] = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, path: Path) -> None:
        """Load ``path`` and wait until every image has finished loading (or failed)."""
        self._session("POST", "/url", {"url": Path(path).resolve().as_uri()})
        deadline = time.monotonic() + self.timeout
        while not self.run("return document.readyState === 'complete' && "
                           "Array.from(document.images).every(i => i.complete);"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: images still loading after {self.timeout} s")
            time.sleep(0.1)

    def run(self, script: str, *args):
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def click(self, css: str) -> None:
        element = self._session("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]
        self._session("POST", f"/element/{element}/click", {})

    def console(self) -> list[dict]:
        """The browser's console entries since the last call (``level``, ``message``)."""
        for path in ("/se/log", "/log"):  # W3C-mode chromedriver, then the legacy endpoint
            try:
                return self._session("POST", path, {"type": "browser"})
            except RuntimeError:
                continue
        return []

    def screenshot(self, path: Path, full_page: bool = True, max_height: int = 6000) -> Path:
        """A PNG of the page (the whole page up to ``max_height`` px when ``full_page``)."""
        if full_page:
            height = min(max_height, int(self.run("return document.documentElement.scrollHeight;")))
            width = int(self.run("return Math.max(1400, document.documentElement.scrollWidth);"))
            self._session("POST", "/window/rect", {"width": min(width, 2400), "height": height + 150})
        Path(path).write_bytes(base64.b64decode(self._session("GET", "/screenshot")))
        return Path(path)

    def close(self) -> None:
        try:
            if getattr(self, "session", None):
                self._call("DELETE", f"/session/{self.session}")
        except Exception:  # the browser is gone already; the driver is stopped below
            pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        self.profile.cleanup()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args(argv)
    with launch(width=args.width) as browser:
        browser.open(args.page)
        broken = browser.broken_images()
        errors = [e for e in browser.console() if e.get("level") == "SEVERE"]
        count = browser.run("return document.images.length;")
        print(f"{count} images, {len(broken)} not loaded; {len(errors)} console errors")
        for item in broken + [e["message"] for e in errors]:
            print(f"  {item}")
        if args.screenshot:
            print(f"wrote {browser.screenshot(args.screenshot)}")
    return 1 if broken or errors else 0


if __name__ == "__main__":
    sys.exit(main())
