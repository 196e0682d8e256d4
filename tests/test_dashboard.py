"""The seed's "Station View" dashboard, unchanged, against a real Prometheus scraping otel-chargy."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from otel_chargy.generator import generate_network, render_kml
from otel_chargy.model import SimpleState, Snapshot
from tests.dashboard_queries import panel_queries
from tests.feedserver import FeedResponse, FeedServer
from tests.prometheus import PrometheusServer
from tests.service import ServiceProcess, wait_until

# The original exporter's dashboard as users have it: its queries are the compatibility contract.
SEED_DASHBOARD = Path(__file__).parent / "data" / "station-view-dashboard.json"


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    yield from panel_queries(dashboard)
    for variable in dashboard["templating"]["list"]:
        yield variable["query"]["query"]


def normalise(expression: str) -> str:
    return re.sub(r"\s+", " ", expression).replace("( ", "(").replace(" )", ")").strip()


def by_state(network: Snapshot, station: str | None) -> dict[str, float]:
    counts = dict.fromkeys((state.value for state in SimpleState), 0.0)
    for s, _, connector in network.connectors():
        if station is None or s.name == station:
            counts[connector.state.value] += 1
    return counts


def fully_booked_ratio(network: Snapshot) -> float:
    booked = [
        all(c.state is not SimpleState.AVAILABLE for d in s.devices for c in d.connectors) for s in network.stations
    ]
    return sum(booked) / len(booked)


def test_every_dashboard_query_matches_the_truth(feed: FeedServer, feed_url: str, prometheus: PrometheusServer) -> None:
    network = generate_network(80, seed=11)
    station = max(network.stations, key=lambda s: len({c.state for d in s.devices for c in d.connectors})).name
    feed.serve(FeedResponse(render_kml(network)))
    dashboard = json.loads(SEED_DASHBOARD.read_text())
    by_station = normalise('sum by (chargy_connector_state) (chargy_connector_state{station="${chargy_station}"})')
    truths: dict[str, Callable[[list[dict[str, Any]]], None]] = {
        by_station: lambda result: check_by_state(result, by_state(network, station)),
        normalise("sum by (chargy_connector_state) (chargy_connector_state)"): lambda result: check_by_state(
            result, by_state(network, None)
        ),
        normalise(
            'count(sum by (station) (chargy_connector_state{chargy_connector_state="available"}) == 0)'
            " / count(sum by (station) (chargy_connector_state))"
        ): lambda result: check_scalar(result, fully_booked_ratio(network)),
    }
    with ServiceProcess(["--kml-url", feed_url]) as service, prometheus.scraping([f"127.0.0.1:{service.port}"]):
        wait_until(
            lambda: (
                prometheus.query("count(chargy_connector_state)")
                and float(prometheus.query("count(chargy_connector_state)")[0]["value"][1])
                == len(SimpleState) * network.connector_count
            ),
            "Prometheus to scrape every connector",
        )
        checked = 0
        for expression in dashboard_queries(dashboard):
            if expression == "label_values(station)":
                assert sorted(prometheus.label_values("station")) == sorted(s.name for s in network.stations)
            else:
                query = normalise(expression)
                assert query in truths, f"a dashboard query with no truth to check it against: {expression}"
                truths[query](prometheus.query(query.replace("${chargy_station}", station)))
            checked += 1
        assert checked == 7  # six panel queries and the station variable


def check_by_state(result: list[dict[str, Any]], expected: dict[str, float]) -> None:
    assert {item["metric"]["chargy_connector_state"]: float(item["value"][1]) for item in result} == expected


def check_scalar(result: list[dict[str, Any]], expected: float) -> None:
    assert len(result) == 1 and abs(float(result[0]["value"][1]) - expected) < 1e-9
