"""The benchmarks run end to end on small inputs (smoke runs: their timings are not judged here).

They keep the benchmarks working rather than test the service, and take half a minute of both cores:
CI runs them as a step of their own (`pytest -m benchmarks`), outside the README's test command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmarks

ROOT = Path(__file__).parent.parent
FIGURES = {
    "refresh_s", "refresh_cpu_s", "cpu_ms_per_scrape", "scrape_p50_ms", "scrape_p99_ms", "gzip_scrape_p50_ms",
    "response_bytes", "gzip_response_bytes", "concurrent_p50_ms", "concurrent_p99_ms", "peak_rss_mib",
    "otlp_collect_cpu_ms",
}  # fmt: skip


def test_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--sizes", "100", "--repeats", "2", "--output", str(output)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    (size,) = report["sizes"]
    assert size["placemarks"] == 100 and size["connectors"] > 200
    for kind in ("otel-chargy", "naive"):
        assert set(size[kind]) == FIGURES
        # CPU per scrape is read in 10 ms clock ticks: on so small a feed it may round to 0.
        assert all(value >= 0 for value in size[kind].values())
        assert size[kind]["response_bytes"] > 0 and size[kind]["scrape_p50_ms"] > 0
    assert "| scrape_p50_ms |" in result.stdout and "ratio" in result.stdout


def test_hostile_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "hostile.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/hostile.py", "--kinds", "billion-laughs", "huge-text", "--repeats", "1",
         "--reference-placemarks", "100", "--output", str(output)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert list(report["documents"]) == ["legitimate feed", "billion-laughs", "huge-text"]
    assert report["documents"]["huge-text"]["outcome"] == "forbidden_xml"
    assert "| huge-text | 50.0 | `forbidden_xml` |" in result.stdout


def test_burst_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "burst.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/burst.py", "--clients", "10", "--bursts", "1", "--placemarks", "30",
         "--output", str(output)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (only,) = json.loads(output.read_text())["bursts"]
    assert only["answered_whole"] == 10 and only["failures"] == []
    assert "| 1 | 10 |" in result.stdout


def test_otlp_memory_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "otlp_memory.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/otlp_memory.py", "--cases", "http", "--seconds", "12", "--output", str(output)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (case,) = json.loads(output.read_text())["cases"].values()
    assert case["rss_end_mib"] > 0 and case["feed_versions_served"] > 0
    # Every request that carried connectors carried those of one snapshot, all of them.
    assert case["connectors_per_request"] in ([], [case["connectors"]])
    assert "| http |" in result.stdout


def test_afir_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "afir.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/afir.py", "--refill-points", "300", "--output", str(output)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    whole = report["cases"]["whole network"]
    assert [refresh["outcome"] for refresh in whole.values()] == ["success", "success"]
    assert whole["status only (table cached)"]["connectors"] > 0
    assert "| whole network | status only (table cached) |" in result.stdout


def test_events_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "events.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/events.py", "--sizes", "60", "--repeats", "2", "--events", "300",
         "--output", str(output)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    (size,) = report["sizes"].values()
    assert size["events_per_refresh"] > 0 and size["refresh_ms"] > 0 and size["page_p50_ms"] > 0
    assert report["memory"]["events"] == 300 and report["memory"]["bytes_per_event"] > 0
    assert "| added_share_of_refresh |" in result.stdout and "bytes an event" in result.stdout
