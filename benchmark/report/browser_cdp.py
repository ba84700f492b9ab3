"""Headless Chromium through the DevTools protocol on a pipe: no chromedriver, no websocket.

``chromium --remote-debugging-pipe`` reads protocol commands (JSON, NUL-terminated) on its
file descriptor 3 and writes replies and events on 4, so the standard library can drive
it. The interface of :class:`benchmark.report.chromium.HeadlessPage`, like the chromedriver
one (:mod:`benchmark.report.browser`); used where chromedriver is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from benchmark.report.chromium import BROWSERS, CHROME_ARGS, HeadlessPage


class PipeBrowser(HeadlessPage):
    """One headless Chromium page driven over ``--remote-debugging-pipe``."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 30.0):
        binary = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
        if binary is None:
            raise FileNotFoundError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)})")
        self.timeout, self.width, self.height = timeout, width, height
        self.profile = tempfile.TemporaryDirectory(prefix="report-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds():  # the protocol's descriptors 3 (commands in) and 4 (replies out)
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.driver = subprocess.Popen(
            [binary, *CHROME_ARGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile.name}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, pass_fds=(3, 4))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer, self._next_id, self._events = b"", 0, []
        self.session = None
        try:
            page = next(t for t in self._send("Target.getTargets")["targetInfos"] if t["type"] == "page")
            self.session = self._send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})[
                "sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self._send(f"{domain}.enable")
        except Exception:
            self.close()
            raise

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _send(self, method: str, params: Optional[dict] = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and method.split(".")[0] not in ("Target", "Browser"):  # page commands
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def open(self, path: Path) -> None:
        self._send("Page.navigate", {"url": Path(path).resolve().as_uri()})
        deadline = time.monotonic() + self.timeout
        time.sleep(0.05)  # let the navigation replace about:blank before polling its readyState
        while not self.run("return location.protocol === 'file:' && document.readyState === 'complete' && "
                           "Array.from(document.images).every(i => i.complete);"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: images still loading after {self.timeout} s")
            time.sleep(0.1)

    def run(self, script: str, *args):
        expression = f"(function () {{ {script} }}).apply(null, {json.dumps(list(args))})"
        result = self._send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def click(self, css: str) -> None:
        """A real mouse click at the element's centre (as a user's, not element.click())."""
        box = self.run("const e = document.querySelector(arguments[0]); e.scrollIntoView({block: 'center'});"
                       "const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2];",
                       css)
        for kind in ("mousePressed", "mouseReleased"):
            self._send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                    "clickCount": 1})

    def console(self) -> list[dict]:
        """Errors as chromedriver reports them: ``level`` SEVERE for errors, exceptions, failed loads."""
        self.run("return 0;")  # collect the events sent so far
        entries = []
        for event in self._events:
            params, method = event.get("params", {}), event.get("method")
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get("text", "")
                entries.append({"level": "SEVERE", "message": text})
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                entries.append({"level": "SEVERE" if params.get("type") == "error" else "INFO", "message": text})
            elif method == "Log.entryAdded":
                entry = params["entry"]
                text = entry.get("text", "") + (f" {entry['url']}" if entry.get("url") else "")
                entries.append({"level": "SEVERE" if entry.get("level") == "error" else "INFO", "message": text})
        self._events = []
        return entries

    def screenshot(self, path: Path, full_page: bool = True, max_height: int = 6000) -> Path:
        params = {"format": "png"}
        if full_page:
            height = min(max_height, int(self.run("return document.documentElement.scrollHeight;")))
            self._send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": height,
                                                              "deviceScaleFactor": 1, "mobile": False})
        Path(path).write_bytes(base64.b64decode(self._send("Page.captureScreenshot", params)["data"]))
        return Path(path)

    def close(self) -> None:
        try:
            self._send("Browser.close")
        except Exception:  # already gone
            pass
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
            self.driver.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        self.profile.cleanup()
