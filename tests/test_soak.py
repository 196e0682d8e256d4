"""A short soak in the suite: 300 refreshes of a moving feed that renames stations, issues new ids and
shows new powers and raw states at every refresh, with faults interleaved, pushed over OTLP (HTTP and
gRPC) to the test receiver, in a fresh interpreter; live objects, memory, threads, open files and the
SDK's attribute sets stay flat after the first 100 refreshes. A leak of one object a refresh fails it.
CI runs the long one (2,000 refreshes of a 430-connector feed) as a step of its own: `python -m tests.soak`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
REFRESHES = 300


def test_short_soak_keeps_objects_memory_threads_and_files_flat() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.soak", "--refreshes", str(REFRESHES), "--placemarks", "40"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["leaks"] == [], report
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == REFRESHES
    assert outcomes["success"] == REFRESHES * 9 // 10
    assert {"http_error", "invalid_xml", "forbidden_xml", "not_kml", "empty"} <= set(outcomes)
    # Every 7th refresh is collected and pushed by each of the two OTLP readers; the spans go in batches.
    assert report["exports"]["metrics"] == {"exports": 2 * (REFRESHES // 7), "failed": 0}
    assert report["exports"]["traces"]["exports"] > 0 and report["exports"]["traces"]["failed"] == 0
    # What the receiver, in its own process, decoded: a request per export at this size.
    assert report["exports"]["logs"]["exports"] > 0 and report["exports"]["logs"]["failed"] == 0
    assert report["received"] == {
        "metric_requests": report["exports"]["metrics"]["exports"],
        "trace_requests": report["exports"]["traces"]["exports"],
        "log_requests": report["exports"]["logs"]["exports"],
    }
