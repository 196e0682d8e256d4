"""The command line: settings, exit codes, signals, `check`."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from otel_chargy.config import DEFAULT_KML_URL, ListenAddress, load_config
from otel_chargy.generator import generate_network, render_kml
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess, command, free_port, wait_until


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(), *args], capture_output=True, text=True, timeout=60, env=env)


def test_defaults() -> None:
    config = load_config([], {})
    assert config.kml_url == DEFAULT_KML_URL
    assert config.refresh_interval_s == 300
    assert config.listen_address == ListenAddress("0.0.0.0", 9000)
    assert config.telemetry_path == "/metrics"
    assert config.max_staleness_s == 900
    assert config.fetch_timeout_s == 30
    assert (config.max_bytes, config.max_connectors) == (50_000_000, 40_000)
    assert (config.demo, config.log_level, config.log_format) == (False, "info", "logfmt")


def test_environment_fallbacks_and_flags_over_them() -> None:
    environ = {
        "KML_URL": "file:///tmp/feed.kml",
        "CHARGY_REFRESH_INTERVAL": "2.5",
        "CHARGY_LISTEN": "[::1]:9100",
        "CHARGY_MAX_STALENESS": "60",
        "CHARGY_FETCH_TIMEOUT": "5",
        "CHARGY_MAX_BYTES": "1_000",
        "CHARGY_MAX_CONNECTORS": "200_000",
        "CHARGY_DEMO": "1",
        "CHARGY_LOG_LEVEL": "DEBUG",
        "CHARGY_LOG_FORMAT": "json",
    }
    config = load_config([], environ)
    assert config.kml_url == "file:///tmp/feed.kml"
    assert config.refresh_interval_s == 2.5
    assert config.listen_address == ListenAddress("::1", 9100)
    assert (config.max_staleness_s, config.fetch_timeout_s, config.max_bytes) == (60, 5, 1000)
    assert config.max_connectors == 200_000
    assert (config.demo, config.log_level, config.log_format) == (True, "debug", "json")
    flagged = load_config(["--refresh-interval", "7", "--kml-url", "/x.kml", "--log.format", "logfmt"], environ)
    assert (flagged.refresh_interval_s, flagged.kml_url, flagged.log_format) == (7, "/x.kml", "logfmt")


def test_exporter_choices_follow_the_otel_variables() -> None:
    assert load_config([], {}).metrics_exporters == ("prometheus",)
    assert load_config([], {}).traces_exporters == ()
    both = load_config([], {"OTEL_METRICS_EXPORTER": "prometheus, otlp"})
    assert both.metrics_exporters == ("prometheus", "otlp")
    assert load_config([], {"OTEL_METRICS_EXPORTER": "none"}).metrics_exporters == ()
    with_endpoint = load_config([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert with_endpoint.traces_exporters == ("otlp",)
    assert load_config([], {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}).traces_exporters == (
        "otlp",
    )
    assert load_config(["--traces-exporter", "console"], {}).traces_exporters == ("console",)
    protocols = load_config(
        [], {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
    )
    assert (protocols.otlp_metrics_protocol, protocols.otlp_traces_protocol) == ("http/protobuf", "grpc")


def test_push_interval_is_the_sdk_default_capped_at_the_refresh_interval() -> None:
    assert load_config([], {}).metric_export_interval_s == 60
    assert load_config(["--refresh-interval", "20"], {}).metric_export_interval_s == 20
    assert load_config([], {"OTEL_METRIC_EXPORT_INTERVAL": "15000"}).metric_export_interval_s == 15


def test_otlp_header_values_are_secrets() -> None:
    config = load_config([], {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%3D123,x-team=core"})
    assert set(config.otlp_header_values) >= {"abc%3D123", "abc=123", "core"}
    assert "abc" not in repr(config)


def test_max_staleness_defaults_to_three_refresh_intervals() -> None:
    assert load_config(["--refresh-interval", "10"], {}).max_staleness_s == 30


def test_config_repr_hides_the_feed_url() -> None:
    assert "486ac6e4" not in repr(load_config([], {}))


@pytest.mark.parametrize(
    ("args", "environ", "mentions"),
    [
        (["--refresh-interval", "abc"], {}, "--refresh-interval"),
        (["--refresh-interval", "0.1"], {}, "--refresh-interval"),
        ([], {"CHARGY_REFRESH_INTERVAL": "nan"}, "--refresh-interval"),
        ([], {"CHARGY_FETCH_TIMEOUT": "soon"}, "--fetch-timeout"),
        (["--max-bytes", "-5"], {}, "--max-bytes"),
        (["--max-connectors", "10"], {}, "--max-connectors"),
        (["--web.listen-address", "9000"], {}, "--web.listen-address"),
        (["--web.listen-address", "host:99999"], {}, "--web.listen-address"),
        (["--web.telemetry-path", "metrics"], {}, "--web.telemetry-path"),
        (["--log.level", "loud"], {}, "--log.level"),
        (["--no-such-option"], {}, "--no-such-option"),
        (["--metrics-exporter", "prometheus,statsd"], {}, "--metrics-exporter"),
        ([], {"OTEL_TRACES_EXPORTER": "zipkin"}, "--traces-exporter"),
        ([], {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ([], {"OTEL_METRIC_EXPORT_INTERVAL": "often"}, "OTEL_METRIC_EXPORT_INTERVAL"),
    ],
)
def test_bad_setting_exits_2_with_one_line(args: list[str], environ: dict[str, str], mentions: str) -> None:
    result = run(*args, env=environ)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and mentions in lines[0] and "Traceback" not in result.stderr


def test_port_in_use_exits_2_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--demo", "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--web.listen-address" in lines[0] and "in use" in lines[0]


def test_help_documents_every_setting_and_hides_the_key() -> None:
    result = run("--help")
    assert result.returncode == 0
    for flag, env in [
        ("--kml-url", "KML_URL"),
        ("--refresh-interval", "CHARGY_REFRESH_INTERVAL"),
        ("--web.listen-address", "CHARGY_LISTEN"),
        ("--web.telemetry-path", None),
        ("--max-staleness", "CHARGY_MAX_STALENESS"),
        ("--fetch-timeout", "CHARGY_FETCH_TIMEOUT"),
        ("--max-bytes", "CHARGY_MAX_BYTES"),
        ("--max-connectors", "CHARGY_MAX_CONNECTORS"),
        ("--demo", "CHARGY_DEMO"),
        ("--log.level", "CHARGY_LOG_LEVEL"),
        ("--log.format", "CHARGY_LOG_FORMAT"),
    ]:
        assert flag in result.stdout and (env is None or env in result.stdout)
    assert "API-KEY=REDACTED" in result.stdout
    assert "486ac6e4" not in result.stdout


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
        assert service.process.wait(timeout=5) == 0
    assert "otel-chargy stopped" in service.logs()


def test_signal_during_a_hanging_fetch_still_ends_within_5_s(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(b"", delay_s=30))
    service = ServiceProcess(["--kml-url", feed_url])
    with service:
        wait_until(lambda: feed.request_count >= 1, "the fetch to start")
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=5) == 0


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


def test_check_reports_a_usable_feed(tmp_path: Path) -> None:
    network = generate_network(25, seed=8)
    path = tmp_path / "feed.kml"
    path.write_bytes(render_kml(network))
    result = run("check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    counts = network.count_by_state()
    assert f"stations: {len(network.stations)}" in result.stdout
    assert f"devices: {network.device_count}" in result.stdout
    assert f"connectors: {network.connector_count}" in result.stdout
    for state, count in counts.items():
        assert f"{state.value}: {count}" in result.stdout
    assert "parse issues: none" in result.stdout
    assert run("check", path.as_uri()).returncode == 0


def test_check_fails_with_the_reason_and_no_key(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(b"nope", status=502))
    result = run("check", feed_url)
    assert result.returncode == 1
    assert "http_error" in result.stdout and "HTTP 502" in result.stdout
    assert TEST_API_KEY not in result.stdout + result.stderr
    assert "API-KEY=REDACTED" in result.stdout


def test_plain_path_and_file_url_feeds(tmp_path: Path) -> None:
    network = generate_network(7, seed=6)
    path = tmp_path / "feed.kml"
    path.write_bytes(render_kml(network))
    for source in (str(path), path.as_uri()):
        with ServiceProcess(["--kml-url", source]) as service:
            service.wait_for_refreshes("success", 1)
            assert service.sample("chargy_feed_stations") == 7


def test_too_large_feed_is_refused(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(50))))
    with ServiceProcess(["--kml-url", feed_url, "--max-bytes", "10000"]) as service:
        service.wait_for_refreshes("too_large", 1)
        assert service.sample("chargy_feed_up") == 0
