"""Configuration attacked from outside (issue #17, rows 11 and 13): every bad value the service or the
OpenTelemetry SDK would read stops the start with exit code 2 and one line naming it, never a traceback;
checked by starting the real command."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.service import ServiceProcess, command, raw_get

NON_ASCII_HOST = "é" * 70
OTLP = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}


def start(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "CHARGY_"))}
    return subprocess.run(
        [*command(), "--demo", *args], capture_output=True, text=True, timeout=60, env={**clean, **env}
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ([], {**OTLP, "OTEL_EXPORTER_OTLP_TIMEOUT": "abc"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ([], {**OTLP, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "abc"}, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"),
        ([], {**OTLP, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": ""}, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"),
        ([], {**OTLP, "OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, "OTEL_EXPORTER_OTLP_COMPRESSION"),
        # The gRPC exporter takes gzip alone; the HTTP one gzip, deflate and none.
        ([], {**OTLP, "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "deflate"}, "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"),
        ([], {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "abc"}, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"),
        ([], {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "-1"}, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
        ([], {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
        ([], {"OTEL_BSP_SCHEDULE_DELAY": "0"}, "OTEL_BSP_SCHEDULE_DELAY"),
        ([], {"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "99999"}, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"),
        ([], {"OTEL_BLRP_SCHEDULE_DELAY": "-1"}, "OTEL_BLRP_SCHEDULE_DELAY"),
        ([], {"OTEL_BLRP_MAX_QUEUE_SIZE": "abc"}, "OTEL_BLRP_MAX_QUEUE_SIZE"),
        ([], {**OTLP, "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "abc"}, "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"),
        ([], {"OTEL_METRICS_EXEMPLAR_FILTER": "sometimes"}, "OTEL_METRICS_EXEMPLAR_FILTER"),
        ([], {"OTEL_PROPAGATORS": "tracecontext,b3-typo"}, "OTEL_PROPAGATORS"),
        ([], {"CHARGY_LISTEN": f"{NON_ASCII_HOST}:9000"}, "CHARGY_LISTEN"),
        (["--web.listen-address", "a..b:9000"], {}, "--web.listen-address"),
        (["--web.telemetry-path", "/x/../metrics"], {}, "--web.telemetry-path"),
    ],
)
def test_a_bad_setting_exits_2_with_one_line(args: list[str], env: dict[str, str], named: str) -> None:
    if named != "--web.listen-address" and "CHARGY_LISTEN" not in env:
        args = ["--web.listen-address", "127.0.0.1:0", *args]
    result = start(args, env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"otel-chargy: error: {named} "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("host", ["a..b", "xn--", NON_ASCII_HOST, "b" * 64 + ".example"])
def test_a_feed_host_idna_refuses_exits_2_with_one_line(host: str) -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "CHARGY_"))}
    result = subprocess.run(
        [*command(), "--feed.url", f"http://{host}/kml?API-KEY=k", "--web.listen-address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "not a valid host name" in result.stderr, result.stderr


def test_settings_the_sdk_takes_still_start() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "deflate",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "",  # the SDK's "no limit"
        "OTEL_PROPAGATORS": "tracecontext, baggage",
        "OTEL_METRICS_EXEMPLAR_FILTER": "always_off",
        **{key: value for key, value in OTLP.items() if key != "OTEL_EXPORTER_OTLP_ENDPOINT"},
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    }
    with ServiceProcess(["--demo"], env=env) as service:
        assert service.get("/healthz").status_code == 200


def test_a_telemetry_path_with_a_doubled_slash_is_served_where_it_is_asked() -> None:
    with ServiceProcess(["--demo", "--web.telemetry-path", "//metrics"]) as service:
        service.wait_for_refreshes("success", 1)
        # http.server reads //metrics as /metrics: the path is served as it is asked, written either way.
        for path in ("//metrics", "/metrics"):
            status, body = raw_get(service.port, path)
            assert status == 200 and b"# TYPE chargy_feed_up gauge" in body, path
