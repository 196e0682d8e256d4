"""The command line as a process: exit codes, signals, the console script, `check`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from otel_chargy.generator import generate_network, render_kml
from otel_chargy.main import main
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.service import WAIT_LIMIT_S, ServiceProcess, command, free_port, wait_until


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(), *args], capture_output=True, text=True, timeout=60, env=env)


def test_configuration_error_exits_2_with_one_line_and_no_key() -> None:
    environ = {"PATH": os.environ["PATH"], "KML_URL": f"htps://{TEST_API_KEY}@my.chargy.lu/kml?API-KEY={TEST_API_KEY}"}
    result = run(env=environ)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("otel-chargy: error: KML_URL ")
    assert TEST_API_KEY not in result.stdout + result.stderr


def test_port_in_use_exits_2_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--demo", "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--web.listen-address" in lines[0] and "in use" in lines[0]


def test_console_script_is_installed() -> None:
    # pip puts console scripts beside the interpreter that installed the project.
    script = shutil.which("otel-chargy", path=str(Path(sys.executable).parent))
    assert script is not None, "no otel-chargy script: install the project (pip install -e .)"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("otel-chargy ")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_the_service_cleanly(signum: int) -> None:
    service = ServiceProcess(["--demo"])
    with service:
        service.wait_for_refreshes("success", 1)
        service.process.send_signal(signum)
        assert service.process.wait(timeout=WAIT_LIMIT_S) == 0
    assert "otel-chargy stopped" in service.logs()


def test_signal_during_a_hanging_fetch_still_ends_the_service(feed: FeedServer, feed_url: str) -> None:
    # The feed and the fetch timeout both wait 10 minutes: the service must end without waiting for them.
    feed.serve(FeedResponse(b"", delay_s=600))
    service = ServiceProcess(["--kml-url", feed_url, "--fetch-timeout", "600"])
    with service:
        wait_until(lambda: feed.request_count >= 1, "the fetch to start")
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=WAIT_LIMIT_S) == 0


def test_ipv6_listen_address() -> None:
    port = free_port()
    process = subprocess.Popen([*command(), "--demo", "--web.listen-address", f"[::1]:{port}"], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: httpx.get(f"http://[::1]:{port}/healthz").status_code == 200, "the IPv6 listener")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_json_logs_one_line_per_refresh_without_the_key(feed: FeedServer, feed_url: str) -> None:
    import json

    feed.serve(FeedResponse(render_kml(generate_network(10))))
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "0.5", "--log.format", "json"]) as service:
        service.wait_for_refreshes("success", 2)
        feed.serve(FeedResponse(b"<html>down</html>", status=200))
        service.wait_for_refreshes("not_kml", 1)
    records = [json.loads(line) for line in service.logs().splitlines()]
    refreshes = [r for r in records if r["msg"].startswith("refresh")]
    assert {r["outcome"] for r in refreshes} >= {"success", "not_kml"}
    success = next(r for r in refreshes if r["outcome"] == "success")
    assert success["level"] == "info" and success["stations"] == 10 and "duration_s" in success
    assert "connectors" in success
    failure = next(r for r in refreshes if r["outcome"] == "not_kml")
    assert failure["level"] == "warn" and failure["reason"]
    started = next(r for r in records if r["msg"] == "otel-chargy started")
    assert "API-KEY=REDACTED" in started["feed"]
    assert TEST_API_KEY not in service.logs()


@pytest.mark.usefixtures("restore_logging")
def test_check_reports_a_usable_feed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    network = generate_network(25, seed=8)
    path = tmp_path / "feed.kml"
    path.write_bytes(render_kml(network))
    assert main(["check", str(path)]) == 0
    report = capsys.readouterr().out
    counts = network.count_by_state()
    assert f"stations: {len(network.stations)}" in report
    assert f"devices: {network.device_count}" in report
    assert f"connectors: {network.connector_count}" in report
    for state, count in counts.items():
        assert f"{state.value}: {count}" in report
    assert "parse issues: none" in report
    assert main(["check", path.as_uri()]) == 0


@pytest.mark.usefixtures("restore_logging")
def test_check_fails_with_the_reason_and_no_key(
    feed: FeedServer, feed_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feed.serve(FeedResponse(b"nope", status=502))
    assert main(["check", feed_url]) == 1
    captured = capsys.readouterr()
    assert "http_error" in captured.out and "HTTP 502" in captured.out
    assert TEST_API_KEY not in captured.out + captured.err
    assert "API-KEY=REDACTED" in captured.out


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("where", ["before", "after"])
def test_check_honours_max_bytes_given_before_or_after_it(
    where: str, feed: FeedServer, feed_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(50))))
    flag = ["--max-bytes", "10000"]
    assert main([*flag, "check", feed_url] if where == "before" else ["check", feed_url, *flag]) == 1
    assert "too_large" in capsys.readouterr().out
