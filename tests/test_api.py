"""The JSON API under /api/v1, served by the real HTTP server from a real refresh of a real feed server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import bcrypt
import httpx
import pytest
from opentelemetry import trace

from otel_chargy.config import ListenAddress
from otel_chargy.fetch import HttpSource
from otel_chargy.generator import render_kml
from otel_chargy.history import RefreshHistory
from otel_chargy.holder import SnapshotHolder
from otel_chargy.metrics import RefreshRecorder
from otel_chargy.model import Snapshot
from otel_chargy.parse import SizeBounds
from otel_chargy.publication import Outputs
from otel_chargy.redact import REDACTED, Redactor, secrets_of_url
from otel_chargy.refresh import Refresher
from otel_chargy.server import Pages, make_server
from otel_chargy.webconfig import WebConfig
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.network import HOSTILE_NAME, KEY_ADDRESS, UNPLACED_NAME, counts_of, page_network
from tests.service import free_port

PASSWORD = "home-assistant-secret"
ROOT = Path(__file__).parent.parent


def readme_example_path() -> str:
    """The path the README's curl example asks for."""
    match = re.search(r"curl -s http://localhost:9000(/api/v1/stations/\S+)", (ROOT / "README.md").read_text())
    assert match, "README.md lacks the API's curl example"
    return match.group(1)


@dataclass
class Served:
    network: Snapshot
    client: httpx.Client


@contextmanager
def _serve(feed_url: str, web_config: WebConfig) -> Iterator[httpx.Client]:
    """otel-chargy's data path and HTTP server in this process, after one refresh of the feed at `feed_url`."""
    source = HttpSource(feed_url, timeout_s=10, max_bytes=50_000_000, tracer=trace.NoOpTracer())
    holder = SnapshotHolder(Outputs(observed=(), exposition=False), 600)
    history = RefreshHistory()
    refresher = Refresher(source, holder, RefreshRecorder([]), trace.NoOpTracer(), 300, SizeBounds(), history=history)
    refresher.refresh_once()
    pages = Pages(holder, None, "/metrics", source.description, Redactor(secrets_of_url(feed_url)), history)
    server = make_server(ListenAddress("127.0.0.1", 0), pages, web_config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}", timeout=30) as client:
        yield client
    server.shutdown()
    server.server_close()
    source.close()


@pytest.fixture(scope="module")
def network() -> Snapshot:
    """Today's size; the first station is named as the README's example."""
    network = page_network()
    stations = list(network.stations)
    stations[0] = replace(stations[0], name=unquote(readme_example_path().removeprefix("/api/v1/stations/")))
    return replace(network, stations=tuple(stations))


@pytest.fixture(scope="module")
def module_feed(network: Snapshot) -> Iterator[FeedServer]:
    with FeedServer() as feed:
        feed.serve(FeedResponse(render_kml(network)))
        yield feed


@pytest.fixture(scope="module")
def served(network: Snapshot, module_feed: FeedServer) -> Iterator[Served]:
    with _serve(module_feed.url(query=f"API-KEY={TEST_API_KEY}"), WebConfig()) as client:
        yield Served(network, client)


def expected_station(station_index: int, network: Snapshot) -> dict[str, object]:
    """What the feed says of one station, written out here rather than borrowed from the code under test."""
    station = network.stations[station_index]
    counts = counts_of(station)
    state = (
        "free"
        if counts["available"]
        else "busy"
        if counts["charging"]
        else "all unavailable"
        if counts["unavailable"]
        else "unknown"
    )
    return {
        "name": station.name,
        "state": state,
        "address": station.address.replace(TEST_API_KEY, REDACTED),
        "latitude": station.latitude,
        "longitude": station.longitude,
        **counts_of(station),
        "max_power_kw": max(c.max_power_kw for d in station.devices for c in d.connectors),
        "devices": [
            {
                "name": device.name,
                "connectors": [
                    {
                        "name": c.name,
                        "position": c.position,
                        "state": c.state.value,
                        "raw_state": c.raw_state,
                        "max_power_kw": c.max_power_kw,
                    }
                    for c in device.connectors
                ],
            }
            for device in station.devices
        ],
    }


def test_stations_equal_the_feed_for_every_station_and_connector(served: Served) -> None:
    response = served.client.get("/api/v1/stations")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["fetched_at"].endswith("Z")
    expected = [expected_station(index, served.network) for index in range(len(served.network.stations))]
    assert document["stations"] == expected


def test_each_station_answers_at_its_url_encoded_name(served: Served) -> None:
    for index, station in enumerate(served.network.stations):
        response = served.client.get(f"/api/v1/stations/{quote(station.name, safe='')}")
        assert response.status_code == 200, station.name
        document = response.json()
        assert document.pop("fetched_at").endswith("Z")
        # One refresh so far: each station is in its state since then (at least), and nothing changed.
        assert document.pop("since").endswith("Z") and document.pop("since_start") is True
        assert document.pop("events") == []
        assert document == expected_station(index, served.network)


def test_the_readme_example_station_and_its_available_count(served: Served) -> None:
    station = served.network.stations[0]
    response = served.client.get(readme_example_path())
    assert response.status_code == 200
    assert response.json()["name"] == station.name
    assert response.json()["available"] == counts_of(station)["available"]


def _keys(document: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    device = document["devices"][0]
    return set(document), set(device), set(device["connectors"][0])


def test_the_status_page_docs_show_a_station_as_the_api_answers_it(served: Served) -> None:
    page = (ROOT / "docs" / "status-page.md").read_text()
    example = re.search(r"```json\n(.*?)```", page, re.S)
    assert example, "docs/status-page.md lacks the API's example answer"
    answer = served.client.get(readme_example_path()).json()
    assert _keys(json.loads(example.group(1))) == _keys(answer)


@pytest.mark.parametrize("name", ["No Such Station", "", HOSTILE_NAME + "x", "%ZZ"])
def test_an_unknown_station_is_404(served: Served, name: str) -> None:
    response = served.client.get(f"/api/v1/stations/{quote(name, safe='%')}")
    assert response.status_code == 404
    assert response.json()["error"] == "no such station"


def test_a_station_named_with_markup_is_a_plain_json_string(served: Served) -> None:
    response = served.client.get(f"/api/v1/stations/{quote(HOSTILE_NAME, safe='')}")
    assert response.status_code == 200
    assert response.json()["name"] == HOSTILE_NAME
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_key_never_appears_in_the_api(served: Served) -> None:
    bodies = [served.client.get(path).text for path in ("/api/v1/stations", "/api/v1/status", "/")]
    bodies.append(served.client.get(f"/api/v1/stations/{quote(served.network.stations[13].name)}").text)
    for body in bodies:
        assert TEST_API_KEY not in body
    assert KEY_ADDRESS.replace(TEST_API_KEY, REDACTED) in bodies[0]
    assert served.client.get("/api/v1/status").json()["feed"].endswith(f"API-KEY={REDACTED}")


def test_status_says_the_feed_is_up_with_its_last_refresh(served: Served) -> None:
    status = served.client.get("/api/v1/status").json()
    assert status["up"] is True and status["outcome"] == "success" and status["cause"] is None
    assert status["snapshot"]["stations"] == len(served.network.stations)
    assert status["snapshot"]["connectors"] == served.network.connector_count
    unknown = sum(counts_of(station)["unknown"] for station in served.network.stations)
    # UNPLACED_NAME, and the station whose every connector's state is unknown
    assert status["snapshot"]["parse_issues"] == {"invalid_coordinates": 1, "unknown_state": unknown}
    assert unknown > 0
    assert [refresh["outcome"] for refresh in status["refreshes"]] == ["success"]
    assert status["refreshes"][0]["stations"] == len(served.network.stations)
    assert UNPLACED_NAME in served.client.get("/api/v1/stations").text


def test_status_names_the_cause_and_next_step_when_the_feed_refuses_connections() -> None:
    closed_url = f"http://127.0.0.1:{free_port()}/kml?API-KEY={TEST_API_KEY}"
    with _serve(closed_url, WebConfig()) as client:
        status = client.get("/api/v1/status").json()
        assert status["up"] is False and status["outcome"] == "network_error"
        assert "connect" in status["cause"] and "refused" in status["cause"]
        assert "--feed.url" in status["next_step"] and "--demo" in status["next_step"]
        assert status["since"] == status["last_refresh_at"]
        # No snapshot yet: the station endpoints say so instead of serving an empty network.
        refused = client.get("/api/v1/stations")
        assert refused.status_code == 503 and refused.json()["error"] == "no snapshot in service"
        assert TEST_API_KEY not in refused.text + str(status)


def test_the_api_is_behind_basic_auth_when_configured(module_feed: FeedServer) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4))
    web_config = WebConfig(basic_auth_users={"home-assistant": hashed})
    with _serve(module_feed.url(query=f"API-KEY={TEST_API_KEY}"), web_config) as client:
        for path in ("/api/v1/stations", f"/api/v1/stations/{quote(UNPLACED_NAME)}", "/api/v1/status", "/"):
            assert client.get(path).status_code == 401
            assert client.get(path, auth=("home-assistant", "wrong")).status_code == 401
            assert client.get(path, auth=("home-assistant", PASSWORD)).status_code == 200
