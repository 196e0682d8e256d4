"""OTLP push and refresh traces, received by a real OTLP receiver over gRPC and HTTP/protobuf with the
Collector's default limits."""

from __future__ import annotations

import itertools
import random
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult

from otel_chargy.generator import generate_network, move_states, relabel, render_kml
from otel_chargy.metrics import PushHealth
from otel_chargy.model import SimpleState, Snapshot, Station
from otel_chargy.telemetry import MAX_REQUEST_BYTES, BoundedMetricExporter, build_resource, split_metrics, wire_metrics
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.otlp_receiver import KeepingReader, OtlpReceiver, attributes_of, point_values, points_of
from tests.service import WAIT_LIMIT_S, ServiceProcess, free_port, wait_until
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
        assert state.unit == "{connector}" and state.description.startswith(
            "1 for the connector's current simple state"
        )
        assert resource["service.name"] == "otel-chargy"
        assert resource["service.version"] and len(resource["service.instance.id"]) == 36
        assert (resource["deployment.environment"], resource["region"]) == ("test", "lu")
        _, up = wait_until(lambda: receiver.latest_metric("chargy.feed.up"), "chargy.feed.up")
        assert point_values(up) == {frozenset(): 1.0}
        assert service.get("/metrics").status_code == 404  # the Prometheus reader is off
    assert TEST_API_KEY.encode() not in receiver.all_bytes()


def connectors_of(metric: Any) -> set[frozenset[tuple[str, Any]]]:
    """The connectors a connector-state metric carries: its points' attributes but the state."""
    return {
        frozenset(
            (key, value) for key, value in attributes_of(point.attributes).items() if key != "chargy_connector_state"
        )
        for point in points_of(metric)
    }


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_a_feed_that_changes_its_labels_is_pushed_as_it_is_now(
    protocol: str, feed: FeedServer, feed_url: str, receiver: OtlpReceiver
) -> None:
    """Stations renamed, new device ids, new powers and raw states at each version of the feed: each export
    carries every connector of the snapshot in service, with its labels of now, and none of a former one."""
    base = generate_network(150, seed=23)
    env = otlp_env(receiver, protocol)
    feed.serve(FeedResponse(render_kml(relabel(base, 1))))
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "1"], env=env):
        former: set[frozenset[tuple[str, Any]]] = set()
        for generation in (1, 2, 3):
            network = relabel(base, generation)
            feed.serve(FeedResponse(render_kml(network)))
            expected = {
                frozenset({"station": s.name, "device": d.name, "connector": c.name, "speed": c.speed}.items())
                for s, d, c in network.connectors()
            }
            _, states = wait_until(
                lambda expected=expected: (  # type: ignore[misc]
                    found
                    if (found := receiver.latest_metric("chargy.connector.state"))
                    and connectors_of(found[1]) == expected
                    else None
                ),
                f"the connectors of version {generation}",
            )
            assert len(points_of(states)) == len(expected) * len(SimpleState)
            assert generation == 1 or former - expected, "each version renames some connectors"
            former = expected
            request = receiver.metric_requests[-1]
            exported = {
                metric.name: point_values(metric)
                for resource_metrics in request.resource_metrics
                for scope_metrics in resource_metrics.scope_metrics
                for metric in scope_metrics.metrics
                if metric.name.startswith(("chargy.connector.", "chargy.station.info"))
            }
            assert exported["chargy.connector.detailed_state_info"] == expected_detailed_states(network)
            assert exported["chargy.connector.max_power"] == expected_max_power(network)
            assert exported["chargy.station.info"] == expected_station_info(network)


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
        assert service.process.wait(timeout=WAIT_LIMIT_S) == 0
    failure_lines = [line for line in service.logs().splitlines() if "metrics export failed" in line]
    assert failure_lines, "the failed exports should be visible"
    # 12 refreshes at 0.5 s are > 6 s of export attempts every 0.2 s; the log keeps one line per reason.
    assert len(failure_lines) <= 3
    assert "logger=opentelemetry" not in service.logs()  # the exporter's own lines are otel-chargy's one line


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
        assert service.process.wait(timeout=WAIT_LIMIT_S) == 0
    assert receiver.latest_metric("chargy.connector.state") is not None
    assert spans_named(receiver, "chargy.refresh")


def collected(metrics_data: Any) -> list[tuple[str, Any]]:
    return [
        (metric.name, point)
        for resource_metrics in metrics_data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        for point in metric.data.data_points
    ]


def test_requests_stay_under_the_limit_and_carry_every_point() -> None:
    """Hostile label sizes included: station names of 30 kB, multi-byte text."""
    network = generate_network(300, seed=5)
    long_named = Station("Ä" * 15_000, "é" * 20_000, None, None, network.stations[0].devices)
    network = Snapshot((long_named, *network.stations[1:]))
    reader = InMemoryMetricReader()
    wiring = wire_metrics(prometheus=None, push_readers=[reader], resource=build_resource(), max_staleness_s=600)
    wiring.holder.publish(network, fetched_at=0)
    metrics_data = reader.get_metrics_data()
    assert metrics_data is not None
    limit = 256 * 1024
    requests = split_metrics(metrics_data, limit)
    assert len(requests) > 2
    for request in requests:
        assert encode_metrics(request).ByteSize() <= limit
    sent = [(name, id(point)) for request in requests for name, point in collected(request)]
    assert sent == [(name, id(point)) for name, point in collected(metrics_data)]


def test_ten_times_the_network_reaches_collectors_with_default_limits(receiver: OtlpReceiver) -> None:
    """One collection of ~28,000 connectors, exported over gRPC (4 MiB a message) and HTTP (20 MiB a body)."""
    network = generate_network(10_000, seed=10)
    reader = KeepingReader()
    wiring = wire_metrics(prometheus=None, push_readers=[reader], resource=build_resource(), max_staleness_s=600)
    wiring.holder.publish(network, fetched_at=0)
    reader.collect(timeout_millis=600_000)  # ~170,000 points: past the SDK's 30 s on a busy 2-core host
    assert reader.metrics_data is not None
    health = PushHealth(["metrics"])
    exporters = {
        "grpc": GrpcMetricExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=60),
        "http/protobuf": HttpMetricExporter(endpoint=f"{receiver.http_endpoint}/v1/metrics", timeout=60),
    }
    for protocol, exporter in exporters.items():
        bounded = BoundedMetricExporter(exporter, MAX_REQUEST_BYTES[protocol], health)
        before = len(receiver.metric_requests)
        assert bounded.export(reader.metrics_data, timeout_millis=60_000) is MetricExportResult.SUCCESS
        requests = receiver.metric_requests[before:]
        assert len(requests) > 1 and max(receiver.metric_request_sizes[before:]) <= MAX_REQUEST_BYTES[protocol]
        states = [
            point
            for request in requests
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == "chargy.connector.state"
            for point in points_of(metric)
        ]
        received = {frozenset(attributes_of(point.attributes).items()): float(point.as_int) for point in states}
        assert len(states) == len(received) == len(SimpleState) * network.connector_count, protocol
        assert received == expected_connector_states(network), protocol
        exporter.shutdown()
    assert receiver.refused_http_bodies == []
    (metrics_health,) = health.status()
    assert (metrics_health.exports, metrics_health.failed_exports) == (2, 0)


def moving_feed(feed: FeedServer, stop: threading.Event) -> None:
    """A feed that changes all the time: networks of different sizes whose states move."""
    rng = random.Random(4)
    networks = [generate_network(size, seed=size) for size in (150, 170, 190, 210)]
    for network in itertools.cycle(networks):
        if stop.is_set():
            return
        feed.serve(FeedResponse(render_kml(move_states(network, rng, fraction=0.3))))
        stop.wait(0.1)


def test_no_export_mixes_two_snapshots(feed: FeedServer, feed_url: str, receiver: OtlpReceiver) -> None:
    stop = threading.Event()
    mover = threading.Thread(target=moving_feed, args=(feed, stop))
    mover.start()
    env = otlp_env(receiver, OTEL_METRIC_EXPORT_INTERVAL="1000")
    try:
        with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "0.5"], env=env):
            wait_until(lambda: len(receiver.metric_requests) >= 8, "eight exports")
    finally:
        stop.set()
        mover.join()
    by_collection: dict[int, dict[str, list[Any]]] = {}
    for name, point in receiver.metric_points():
        by_collection.setdefault(point.time_unix_nano, {}).setdefault(name, []).append(point)
    sizes = set()
    for metrics in by_collection.values():
        if "chargy.connector.state" not in metrics:
            continue
        states = metrics["chargy.connector.state"]
        connectors = len(states) // len(SimpleState)
        sizes.add(connectors)
        assert sum(point.as_int for point in states) == connectors  # one state a connector
        state_of = {
            frozenset(attributes_of(point.attributes).items() - {("chargy_connector_state", "")}): point
            for point in states
        }
        assert len(state_of) == len(states)
        assert len(metrics["chargy.connector.detailed_state_info"]) == connectors
        (feed_connectors,) = metrics["chargy.feed.connectors"]
        assert feed_connectors.as_int == connectors
        station_totals: Counter[str] = Counter()
        for point in metrics["chargy.station.connectors"]:
            attributes = attributes_of(point.attributes)
            station_totals[attributes["chargy_connector_state"]] += point.as_int
        set_states: Counter[str] = Counter(
            attributes_of(point.attributes)["chargy_connector_state"] for point in states if point.as_int
        )
        assert station_totals == set_states  # the station aggregates count the same states
    assert len(sizes) >= 2, "the exports should have seen several snapshots"


def network_totals(network: Snapshot) -> dict[tuple[str, str], int]:
    totals: Counter[tuple[str, str]] = Counter()
    for _, _, connector in network.connectors():
        totals[connector.speed, connector.state.value] += 1
    return {(speed, state.value): totals[speed, state.value] for speed, _ in totals for state in SimpleState}


@pytest.mark.parametrize("detail", ["network", "station"])
def test_detail_levels(detail: str, feed: FeedServer, feed_url: str, receiver: OtlpReceiver) -> None:
    network = generate_network(1000, seed=8)
    feed.serve(FeedResponse(render_kml(network)))
    env = otlp_env(receiver, OTEL_METRIC_EXPORT_INTERVAL="500", CHARGY_OTLP_DETAIL=detail)
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "30"], env=env):
        wait_until(lambda: receiver.latest_metric("chargy.network.connectors"), "network totals")
    names = {name for name, _ in receiver.metric_points()}
    assert not any(name.startswith("chargy.connector.") for name in names)
    assert {"chargy.network.connector", "chargy.network.charging_sessions"} <= names  # the usage counters
    _, totals = receiver.latest_metric("chargy.network.connectors")  # type: ignore[misc]
    assert {
        (attributes["speed"], attributes["chargy_connector_state"]): value
        for labels, value in point_values(totals).items()
        for attributes in [dict(labels)]
    } == network_totals(network)
    if detail == "network":
        assert not any(name.startswith("chargy.station.") for name in names)
        per_export = Counter(point.time_unix_nano for _, point in receiver.metric_points())
        # Tens of points whatever the network's size: feed health, the network's totals by speed and state,
        # the usage counters, the OTLP exports by signal (metrics, traces, logs) and outcome.
        assert max(per_export.values()) <= 110
    else:
        _, stations = receiver.latest_metric("chargy.station.connectors")  # type: ignore[misc]
        expected = {
            (station.name, state.value): float(
                sum(c.state is state for device in station.devices for c in device.connectors)
            )
            for station in network.stations
            for state in SimpleState
        }
        assert {
            (dict(labels)["station"], dict(labels)["chargy_connector_state"]): value
            for labels, value in point_values(stations).items()
        } == expected
        assert receiver.latest_metric("chargy.station.info") is not None
        assert {"chargy.station.connector", "chargy.station.charging_sessions"} <= names


def test_refused_exports_show_on_metrics_and_once_a_minute_in_the_log(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(50))))
    # A receiver that takes no message over 64 bytes refuses every export, as a Collector refuses one over 4 MiB.
    with OtlpReceiver(max_grpc_bytes=64) as refusing:
        env = {
            "OTEL_METRICS_EXPORTER": "prometheus,otlp",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": refusing.grpc_endpoint,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "0.5"], env=env) as service:

            def failures(signal_name: str) -> float:
                return service.sample("chargy_otlp_exports_total", signal=signal_name, outcome="failure") or 0

            wait_until(lambda: failures("metrics") >= 3 and failures("traces") >= 3, "three failed exports of each")
            assert service.sample("chargy_otlp_exports_total", signal="metrics", outcome="success") == 0
            logs = service.logs()
    assert refusing.metric_requests == [] and refusing.trace_requests == []
    for signal_name in ("metrics", "traces"):
        lines = [line for line in logs.splitlines() if f"{signal_name} export failed" in line]
        assert len(lines) == 1, lines
        assert "larger than max" in lines[0] or "Deadline" in lines[0]  # the receiver's refusal, or the retries
    assert "logger=opentelemetry" not in logs
