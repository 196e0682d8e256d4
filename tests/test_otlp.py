"""OTLP push and refresh traces, received by a real OTLP receiver over gRPC and HTTP/protobuf."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otel_chargy.generator import generate_network, render_kml
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.otlp_receiver import OtlpReceiver, attributes_of, point_values
from tests.service import ServiceProcess, free_port, wait_until
from tests.truth import (
    expected_connector_states,
    expected_detailed_states,
    expected_max_power,
    expected_station_info,
    series_of,
)

VENDOR_SECRET = "vendor-secret-0b7c4d2e9f"
PROTOCOLS = {"grpc": "grpc_endpoint", "http/protobuf": "http_endpoint"}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as otlp:
        yield otlp


def otlp_env(receiver: OtlpReceiver, protocol: str = "grpc", **extra: str) -> dict[str, str]:
    return {
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": getattr(receiver, PROTOCOLS[protocol]),
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_connector_is_pushed(protocol: str, feed: FeedServer, feed_url: str, receiver: OtlpReceiver) -> None:
    network = generate_network(1100, seed=12)
    feed.serve(FeedResponse(render_kml(network)))
    env = otlp_env(receiver, protocol, OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,region=lu")
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "1"], env=env) as service:
        resource, state = wait_until(lambda: receiver.latest_metric("chargy.connector.state"), "connector states")
        assert point_values(state) == expected_connector_states(network)
        expectations = {
            "chargy.connector.detailed_state_info": expected_detailed_states(network),
            "chargy.connector.max_power": expected_max_power(network),
            "chargy.station.info": expected_station_info(network),
        }
        for name, expected in expectations.items():
            _, metric = wait_until(lambda name=name: receiver.latest_metric(name), name)  # type: ignore[misc]
            assert point_values(metric) == expected, name
        assert state.unit == "1" and state.description.startswith("1 for the connector's current simple state")
        assert resource["service.name"] == "otel-chargy"
        assert resource["service.version"] and len(resource["service.instance.id"]) == 36
        assert (resource["deployment.environment"], resource["region"]) == ("test", "lu")
        _, up = wait_until(lambda: receiver.latest_metric("chargy.feed.up"), "chargy.feed.up")
        assert point_values(up) == {frozenset(): 1.0}
        assert service.get("/metrics").status_code == 404  # the Prometheus reader is off
    assert TEST_API_KEY.encode() not in receiver.all_bytes()


def test_delta_temporality_is_honoured(feed: FeedServer, feed_url: str, receiver: OtlpReceiver) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(5))))
    env = otlp_env(receiver, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta")
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "1"], env=env):
        _, refreshes = wait_until(lambda: receiver.latest_metric("chargy.feed.refreshes"), "refresh counts")
        assert refreshes.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        assert refreshes.sum.is_monotonic


def spans_named(receiver: OtlpReceiver, name: str) -> list[Span]:
    return [span for _, span in receiver.spans() if span.name == name]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_each_refresh_is_one_trace(protocol: str, feed: FeedServer, feed_url: str, receiver: OtlpReceiver) -> None:
    kml = render_kml(generate_network(20, seed=3)).replace(
        b'"description": "AVAILABLE"', b'"description": "BLOCKED"', 1
    )
    feed.serve(FeedResponse(kml))
    env = otlp_env(receiver, protocol, OTEL_METRICS_EXPORTER="none")
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "30"], env=env):
        (root,) = wait_until(lambda: spans_named(receiver, "chargy.refresh"), "a refresh span")
        (get,) = wait_until(lambda: spans_named(receiver, "GET"), "the HTTP span")
        (parse,) = spans_named(receiver, "chargy.parse")
    assert root.parent_span_id == b""
    assert get.parent_span_id == parse.parent_span_id == root.span_id
    assert get.trace_id == parse.trace_id == root.trace_id
    assert get.kind == Span.SpanKind.SPAN_KIND_CLIENT
    http = attributes_of(get.attributes)
    assert http["http.request.method"] == "GET"
    assert http["url.full"].endswith("/kml?API-KEY=REDACTED")
    assert (http["server.address"], http["http.response.status_code"]) == ("127.0.0.1", 200)
    assert http["server.port"] == int(feed_url.split(":")[2].split("/")[0])
    parsed = attributes_of(parse.attributes)
    assert parsed["chargy.feed.placemarks"] == 20 and parsed["chargy.feed.connectors"] > 20
    assert parsed["chargy.feed.devices"] >= 20 and parsed["chargy.feed.bytes"] == len(kml)
    (issue,) = [event for event in parse.events if event.name == "chargy.parse_issue"]
    assert attributes_of(issue.attributes) == {"kind": "unknown_state", "count": 1}
    summary = attributes_of(root.attributes)
    assert summary["chargy.refresh.outcome"] == "success" and summary["chargy.snapshot.changed"] is True
    assert summary["chargy.feed.stations"] == 20 and summary["chargy.feed.bytes"] == len(kml)
    assert summary["chargy.feed.connectors"] == parsed["chargy.feed.connectors"]
    # The feed request carried the trace context of its span (W3C traceparent).
    traceparent = feed.requests[0][1]["traceparent"]
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, trace_id, span_id) == ("00", get.trace_id.hex(), get.span_id.hex())
    assert int(flags, 16) & 1  # sampled


def test_failed_refresh_is_an_error_span_without_the_key(
    feed: FeedServer, feed_url: str, receiver: OtlpReceiver
) -> None:
    feed.serve(FeedResponse(b"gone", status=503))
    env = otlp_env(receiver, OTEL_METRICS_EXPORTER="none", OTEL_EXPORTER_OTLP_HEADERS=f"api-key={VENDOR_SECRET}")
    args = ["--kml-url", feed_url, "--refresh-interval", "30", "--log.level", "debug"]
    with ServiceProcess(args, env=env) as service:
        (root,) = wait_until(lambda: spans_named(receiver, "chargy.refresh"), "a refresh span")
        (get,) = spans_named(receiver, "GET")
        feed.serve(FeedResponse(b"<html><body>maintenance</body></html>"))
    assert root.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert attributes_of(root.attributes)["error.type"] == "http_error"
    assert attributes_of(root.attributes)["chargy.refresh.outcome"] == "http_error"
    (exception,) = [event for event in root.events if event.name == "exception"]
    assert "HTTP 503" in attributes_of(exception.attributes)["exception.message"]
    assert get.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert attributes_of(get.attributes)["error.type"] == "http_error"
    assert attributes_of(get.attributes)["http.response.status_code"] == 503
    assert any(headers.get("api-key") == VENDOR_SECRET for headers in receiver.headers)  # sent, as it must be
    everything = receiver.all_bytes().decode(errors="replace") + service.logs()
    assert TEST_API_KEY not in everything
    assert VENDOR_SECRET not in service.logs()


def test_prometheus_and_otlp_together_agree(feed: FeedServer, feed_url: str, receiver: OtlpReceiver) -> None:
    network = generate_network(300, seed=21)
    feed.serve(FeedResponse(render_kml(network)))
    env = otlp_env(receiver, OTEL_METRICS_EXPORTER="prometheus,otlp")
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "1"], env=env) as service:
        _, state = wait_until(lambda: receiver.latest_metric("chargy.connector.state"), "connector states")
        scraped = series_of(service.metrics()["chargy_connector_state"])
        assert point_values(state) == scraped == expected_connector_states(network)


def test_collector_down_keeps_the_service_serving_and_exit_bounded(feed: FeedServer, feed_url: str) -> None:
    dead_endpoint = f"http://127.0.0.1:{free_port()}"
    feed.serve(FeedResponse(render_kml(generate_network(30))))
    env = {
        "OTEL_METRICS_EXPORTER": "prometheus,otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": dead_endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    service = ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "0.5"], env=env)
    with service:
        service.wait_for_refreshes("success", 12)
        assert service.sample("chargy_feed_up") == 1
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=10) == 0
    exporter_lines = [line for line in service.logs().splitlines() if "logger=opentelemetry" in line]
    assert exporter_lines, "the failed exports should be visible"
    # 12 refreshes at 0.5 s are > 6 s of export attempts every 0.2 s; the log keeps one line per message.
    assert len(exporter_lines) <= 6


def test_console_exporter_writes_metrics(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(3))))
    env = {"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "1"], env=env) as service:
        wait_until(lambda: '"chargy.connector.state"' in service.logs(), "console output")
        assert service.get("/metrics").status_code == 404


def test_sigterm_flushes_metrics_and_spans(feed: FeedServer, feed_url: str, receiver: OtlpReceiver) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(10))))
    # Nothing would be pushed for a minute: whatever arrives was flushed by the shutdown.
    env = otlp_env(receiver, OTEL_METRIC_EXPORT_INTERVAL="60000", OTEL_BSP_SCHEDULE_DELAY="60000")
    service = ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "60"], env=env)
    with service:
        wait_until(lambda: "refresh finished" in service.logs(), "the first refresh")
        assert receiver.metric_requests == [] and receiver.trace_requests == []
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=10) == 0
    assert receiver.latest_metric("chargy.connector.state") is not None
    assert spans_named(receiver, "chargy.refresh")
