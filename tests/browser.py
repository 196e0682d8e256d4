"""Headless Chromium (Debian's package), driven over its DevTools protocol, to see pages as a person does.

The protocol runs over a pipe (--remote-debugging-pipe: commands on the child's fd 3, answers on its fd 4,
JSON messages ended by NUL), so no WebSocket library is needed. One browser serves many pages: a
start costs seconds on a busy machine. Each page can have JavaScript off (Emulation.setScriptExecutionDisabled),
which --dump-dom cannot do (with scripts off it dumps nothing).

`python -m tests.browser URL PATH [WIDTH HEIGHT [SCALE]]` saves a picture of a page (the README's:
`python -m tests.browser http://127.0.0.1:9000/ docs/status-page.png 1280 800 0.75` with `--demo`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)
# A bound on a hang, not a timing assertion.
_LIMIT_S = 90.0


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()

        def place_pipes() -> None:
            # In the child, between fork and exec: the pipes become fds 3 and 4, by way of copies above
            # both, so that neither overwrites the other when os.pipe() handed out 3 or 4 itself.
            reading = fcntl.fcntl(commands_read, fcntl.F_DUPFD_CLOEXEC, 10)
            writing = fcntl.fcntl(answers_write, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        self._process = subprocess.Popen(
            [CHROMIUM, *_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=place_pipes,
            pass_fds=(3, 4),
        )
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.send("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._commands)
        os.close(self._answers)
        self._profile.cleanup()

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + _LIMIT_S
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._events.append(message)

    def wait_for_event(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + _LIMIT_S
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(index)
            self._events.append(self._read_message(deadline))

    def events_of(self, session: str) -> list[dict[str, Any]]:
        """The events of a tab received so far and not waited for."""
        return [event for event in self._events if event.get("sessionId") == session]

    def open(
        self, url: str, *, javascript: bool = True, width: int = 1280, height: int = 900, watch: bool = False
    ) -> Tab:
        """A new tab that has loaded `url` (its load event fired: deferred scripts have run). `watch`: record
        every request the page makes (`Tab.requests`) and every Content-Security-Policy violation
        (`Tab.violations`)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        tab = Tab(self, target, session)
        tab.send("Page.enable")
        if watch:
            tab.send("Network.enable")
            listener = (
                "window.cspViolations = [];"
                "document.addEventListener('securitypolicyviolation', event => "
                "window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI));"
            )
            tab.send("Page.addScriptToEvaluateOnNewDocument", {"source": listener})
        tab.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        if not javascript:
            tab.send("Emulation.setScriptExecutionDisabled", {"value": True})
        tab.send("Page.navigate", {"url": url})
        self.wait_for_event("Page.loadEventFired", session)
        return tab


class Tab:
    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self._browser = browser
        self._target = target
        self._session = session

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._browser.send(method, params, self._session)

    def requests(self) -> list[str]:
        """The URLs this tab has asked for so far (opened with `watch=True`)."""
        self.evaluate("0")  # reads what Chromium has sent meanwhile
        return [
            event["params"]["request"]["url"]
            for event in self._browser.events_of(self._session)
            if event.get("method") == "Network.requestWillBeSent"
        ]

    def violations(self) -> list[str]:
        """The Content-Security-Policy violations the page met (opened with `watch=True`)."""
        found: list[str] = self.evaluate("window.cspViolations")
        return found

    def dom(self) -> BeautifulSoup:
        """The document as the browser holds it now."""
        root = self.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        return BeautifulSoup(self.send("DOM.getOuterHTML", {"nodeId": root})["outerHTML"], "lxml")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def type_into(self, selector: str, text: str) -> None:
        """Focuses the element and types `text` as a keyboard would (an input event per insertion)."""
        root = self.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        self.send("DOM.focus", {"nodeId": node})
        for character in text:
            self.send("Input.insertText", {"text": character})

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element."""
        root = self.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        self.send("DOM.scrollIntoViewIfNeeded", {"nodeId": node})
        quad = self.send("DOM.getContentQuads", {"nodeId": node})["quads"][0]
        x, y = sum(quad[0::2]) / 4, sum(quad[1::2]) / 4
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def screenshot(self, path: Path, scale: float = 1.0) -> None:
        """A PNG of the viewport; `scale` below 1 makes a smaller picture of the same layout."""
        width, height = self.evaluate("[window.innerWidth, window.innerHeight]")
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png", "clip": clip})["data"]))

    def picture(self, x: float, y: float, width: float, height: float, path: Path | None = None) -> Picture:
        """What the screen shows of a region of the page (CSS pixels, relative to the document), as pixels;
        saved as PNG to `path` too, for a person to look at."""
        clip = {"x": x, "y": y, "width": width, "height": height, "scale": 1}
        png = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png", "clip": clip})["data"])
        if path is not None:
            path.write_bytes(png)
        return Picture.decode(png)

    def close(self) -> None:
        self._browser.send("Target.closeTarget", {"targetId": self._target})


@dataclass(frozen=True)
class Picture:
    """A decoded PNG screenshot: 8-bit RGB or RGBA, as Chromium writes them."""

    width: int
    height: int
    channels: int
    pixels: bytes

    @classmethod
    def decode(cls, png: bytes) -> Picture:
        assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
        at, header, data = 8, b"", b""
        while at < len(png):
            (length,) = struct.unpack(">I", png[at : at + 4])
            kind, chunk = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
            if kind == b"IHDR":
                header = chunk
            elif kind == b"IDAT":
                data += chunk
            at += 12 + length
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
        assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
        channels = 3 if colour == 2 else 4
        raw = zlib.decompress(data)
        stride = width * channels
        previous = bytearray(stride)
        rows = []
        for row in range(height):
            start = row * (stride + 1)
            kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
            if kind == 1:
                for i in range(channels, stride):
                    line[i] = (line[i] + line[i - channels]) & 0xFF
            elif kind == 2:
                line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
            elif kind == 3:
                for i in range(stride):
                    left = line[i - channels] if i >= channels else 0
                    line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
            elif kind == 4:
                for i in range(stride):
                    a = line[i - channels] if i >= channels else 0
                    b, c = previous[i], previous[i - channels] if i >= channels else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            rows.append(bytes(line))
            previous = line
        return cls(width, height, channels, b"".join(rows))

    def rgb(self, x: int, y: int) -> tuple[int, int, int]:
        at = (y * self.width + x) * self.channels
        red, green, blue = self.pixels[at : at + 3]
        return red, green, blue

    def count(self, colour: tuple[int, int, int], tolerance: int = 8) -> int:
        """Pixels of about `colour`."""
        red, green, blue = colour
        pixels, channels = self.pixels, self.channels
        return sum(
            1
            for at in range(0, len(pixels), channels)
            if abs(pixels[at] - red) <= tolerance
            and abs(pixels[at + 1] - green) <= tolerance
            and abs(pixels[at + 2] - blue) <= tolerance
        )


if __name__ == "__main__":
    page_url, picture = sys.argv[1], Path(sys.argv[2])
    size = [int(value) for value in sys.argv[3:5]] or [1280, 900]
    with Browser() as browser:
        browser.open(page_url, width=size[0], height=size[1]).screenshot(
            picture, float((sys.argv[5:6] and sys.argv[5]) or 1)
        )
