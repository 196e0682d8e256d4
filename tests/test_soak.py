"""Endurance: 2,000 refreshes of a moving 3,000-connector feed with faults interleaved, in a fresh
interpreter: memory, threads and open files stay flat after the first 100 refreshes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_soak_keeps_memory_threads_and_files_flat() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.soak", "--refreshes", "2000"],
        capture_output=True, text=True, timeout=1500, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    early, late = report["after_100"], report["after_all"]
    assert report["connectors"] >= 3000
    assert late["rss_mib"] < early["rss_mib"] * 1.10, report
    assert late["threads"] == early["threads"], report
    assert late["fds"] == early["fds"], report
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == 2000
    assert outcomes["success"] == 1800
    assert {"http_error", "invalid_xml", "forbidden_xml", "not_kml", "empty"} <= set(outcomes)
