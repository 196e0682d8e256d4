"""otel-chargy as a subprocess against a real local feed server: the contract on /metrics."""

from __future__ import annotations

import gzip
import random
import re

import httpx

from otel_chargy.catalog import METRICS
from otel_chargy.generator import generate_network, move_states, render_kml
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess, wait_until
from tests.truth import assert_serves, expected_detailed_states, series_of

FAST = ["--refresh-interval", "0.5"]
# A refresh of a large network can take longer than the default staleness (3 x 0.5 s) on a loaded
# machine; tests that do not speak of staleness keep their snapshot in service.
FAST_KEPT = [*FAST, "--max-staleness", "3600"]


def test_large_network_is_exported_exactly_with_no_overflow(feed: FeedServer, feed_url: str) -> None:
    network = generate_network(1200, seed=7)
    assert network.connector_count > 3000  # over the SDK's default cap of 2,000 series per metric
    feed.serve(FeedResponse(render_kml(network)))
    with ServiceProcess(["--kml-url", feed_url, *FAST_KEPT]) as service:
        service.wait_for_refreshes("success", 2)
        assert_serves(service.metrics(), network)
        text = service.get("/metrics").text
        assert "otel_metric_overflow=" not in text
        assert service.sample("chargy_metric_overflow_total", metric="chargy.connector.state") == 0
        assert service.sample("chargy_feed_connectors") == network.connector_count
        assert service.sample("chargy_feed_stations") == len(network.stations)


def test_states_that_move_between_refreshes_are_followed(feed: FeedServer, feed_url: str) -> None:
    network = generate_network(100, seed=1)
    feed.serve(FeedResponse(render_kml(network)))
    with ServiceProcess(["--kml-url", feed_url, *FAST]) as service:
        service.wait_for_refreshes("success", 1)
        assert_serves(service.metrics(), network)
        moved = move_states(network, random.Random(5), fraction=0.5)
        assert moved.stations != network.stations
        feed.serve(FeedResponse(render_kml(moved)))
        wait_until(
            lambda: (
                series_of(service.metrics()["chargy_connector_detailed_state_info"]) == expected_detailed_states(moved)
            ),
            "the moved states to be served",
        )
        assert_serves(service.metrics(), moved)


def test_failed_refresh_keeps_last_good_snapshot_and_shows_the_failure(feed: FeedServer, feed_url: str) -> None:
    network = generate_network(50, seed=2)
    feed.serve(FeedResponse(render_kml(network)))
    with ServiceProcess(["--kml-url", feed_url, *FAST, "--max-staleness", "3600"]) as service:
        service.wait_for_refreshes("success", 1)
        assert service.sample("chargy_feed_up") == 1
        feed.serve(FeedResponse(b"upstream broke", status=503))
        service.wait_for_refreshes("http_error", 1)
        assert service.sample("chargy_feed_up") == 0
        assert_serves(service.metrics(), network)
        assert service.get("/readyz").status_code == 200
        last_success = service.sample("chargy_feed_last_success_timestamp_seconds")
        assert last_success is not None and last_success > 1.7e9
        warnings = [line for line in service.logs().splitlines() if "level=warn" in line]
        assert any("outcome=http_error" in line and "HTTP 503" in line for line in warnings)
        feed.serve(FeedResponse(render_kml(network)))
        service.wait_for_refreshes("success", 2)
        assert service.sample("chargy_feed_up") == 1
    assert TEST_API_KEY not in service.logs()


def test_snapshot_older_than_max_staleness_is_withdrawn(feed: FeedServer, feed_url: str) -> None:
    network = generate_network(20, seed=2)
    feed.serve(FeedResponse(render_kml(network)))
    with ServiceProcess(["--kml-url", feed_url, *FAST, "--max-staleness", "1"]) as service:
        service.wait_for_refreshes("success", 1)
        feed.serve(FeedResponse(b"", status=500))
        wait_until(lambda: not service.samples("chargy_connector_state"), "the connector series to go")
        for family in (
            "chargy_connector_detailed_state_info",
            "chargy_connector_max_power_watts",
            "chargy_station_info",
        ):
            assert service.samples(family) == []
        assert service.sample("chargy_feed_up") == 0
        assert service.sample("chargy_feed_stations") == 0
        assert service.sample("chargy_feed_refreshes_total", outcome="success") == 1
        readiness = service.get("/readyz")
        assert readiness.status_code == 503
        assert "older than the maximum staleness" in readiness.text and "http_error" in readiness.text


def test_server_answers_before_the_first_refresh_ends(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(5)), delay_s=3))
    with ServiceProcess(["--kml-url", feed_url]) as service:
        readiness = service.get("/readyz")
        assert readiness.status_code == 503
        assert "no snapshot yet" in readiness.text
        assert service.sample("chargy_feed_up") == 0
        assert service.get("/healthz").status_code == 200
        wait_until(lambda: service.get("/readyz").status_code == 200, "the first refresh")


def test_landing_page_shows_state_without_the_key(feed: FeedServer, feed_url: str) -> None:
    network = generate_network(30, seed=4)
    feed.serve(FeedResponse(render_kml(network)))
    with ServiceProcess(["--kml-url", feed_url]) as service:
        service.wait_for_refreshes("success", 1)
        page = service.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "API-KEY=REDACTED" in page.text
        assert TEST_API_KEY not in page.text
        assert "success" in page.text and f"{len(network.stations)} stations" in page.text
        counts = network.count_by_state()
        for state, count in counts.items():
            assert f"{count} {state.value}" in page.text
        assert 'href="/metrics"' in page.text and 'href="/healthz"' in page.text and 'href="/readyz"' in page.text


def test_unknown_paths_and_methods(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(5))))
    with ServiceProcess(["--kml-url", feed_url]) as service:
        assert service.get("/nope").status_code == 404
        assert service.get("/metrics/extra").status_code == 404
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = service.client.request(method, "/metrics", content=b"x")
            assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
        head = service.client.head("/metrics")
        assert head.status_code == 200 and head.content == b""


def test_openmetrics_and_gzip_when_asked(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(40, seed=9))))
    with ServiceProcess(["--kml-url", feed_url]) as service:
        service.wait_for_refreshes("success", 1)
        openmetrics = service.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.endswith("# EOF\n")
        plain = service.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.headers["content-type"].startswith("text/plain")
        with httpx.stream("GET", f"{service.base_url}/metrics", headers={"Accept-Encoding": "gzip"}) as compressed:
            assert compressed.headers["content-encoding"] == "gzip"
            assert gzip.decompress(b"".join(compressed.iter_raw())) == plain.content


def test_custom_telemetry_path(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(5))))
    with ServiceProcess(["--kml-url", feed_url, "--web.telemetry-path", "/probe"]) as service:
        wait_until(lambda: "chargy_feed_up 1.0" in service.get("/probe").text, "a successful refresh on /probe")
        assert service.get("/metrics").status_code == 404
        assert 'href="/probe"' in service.get("/").text


def test_every_metric_of_the_table_is_served_with_clean_labels(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(10))))
    with ServiceProcess(
        ["--kml-url", feed_url], env={"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test"}
    ) as service:
        service.wait_for_refreshes("success", 1)
        text = service.get("/metrics").text
        metrics = service.metrics()
        for spec in METRICS:
            family = spec.prometheus_name.removesuffix("_total")
            assert family in metrics, spec.prometheus_name
            assert metrics[family].documentation == spec.description
            for sample in metrics[family].samples:
                assert set(sample.labels) - {"le"} == set(spec.attributes), spec.prometheus_name
        assert "otel_scope_" not in text
        (target,) = metrics["target_info"].samples
        assert target.labels["service_name"] == "otel-chargy"
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", target.labels["service_version"])
        assert re.fullmatch(r"[0-9a-f-]{36}", target.labels["service_instance_id"])
        assert target.labels["deployment_environment"] == "test"
        assert "last successful refresh" in metrics["chargy_connector_state"].documentation
        buckets = [s.labels["le"] for s in metrics["chargy_feed_refresh_duration_seconds"].samples if "le" in s.labels]
        assert buckets[0] == "0.005" and buckets[-2] == "60.0"


def test_service_name_can_be_overridden(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(3))))
    with ServiceProcess(["--kml-url", feed_url], env={"OTEL_SERVICE_NAME": "chargy-east"}) as service:
        (target,) = service.metrics()["target_info"].samples
        assert target.labels["service_name"] == "chargy-east"


def test_demo_serves_a_realistic_network_whose_states_move() -> None:
    with ServiceProcess(["--demo", *FAST_KEPT]) as service:
        service.wait_for_refreshes("success", 1)
        first = series_of(
            service.metrics(only="chargy_connector_detailed_state_info")["chargy_connector_detailed_state_info"]
        )
        assert 900 <= service.sample("chargy_feed_stations") <= 1100  # type: ignore[operator]
        assert service.sample("chargy_feed_connectors") > 2000  # type: ignore[operator]
        wait_until(
            lambda: (
                series_of(
                    service.metrics(only="chargy_connector_detailed_state_info")["chargy_connector_detailed_state_info"]
                )
                != first
            ),
            "the demo states to move",
        )
