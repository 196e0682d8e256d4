"""Headless Chromium (Debian's package), to see pages as a person does: the DOM after scripts, or a picture."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

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
)
# A bound on a hang, not a timing assertion.
_LIMIT_S = 90


def _run(url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *flags, url],
            capture_output=True,
            text=True,
            timeout=_LIMIT_S,
            check=True,
        )


def dom(url: str, *, javascript: bool = True) -> BeautifulSoup:
    """The document as the browser holds it once the page has loaded (and, with JavaScript, its scripts ran)."""
    flags = ["--dump-dom", "--virtual-time-budget=5000"]
    if not javascript:
        flags.append("--blink-settings=scriptEnabled=false")
    return BeautifulSoup(_run(url, *flags).stdout, "lxml")


def screenshot(url: str, path: Path, width: int = 1280, height: int = 1400) -> None:
    _run(url, f"--screenshot={path}", f"--window-size={width},{height}", "--virtual-time-budget=5000")
