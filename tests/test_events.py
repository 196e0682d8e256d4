"""State changes as events: a feed that moves through a known sequence of states gives exactly the
events written out here by hand, in /api/v1/events, on the page (Chromium), and as OTLP log records
decoded from the wire by the test receiver, over gRPC and over HTTP."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from bs4 import BeautifulSoup

from otel_chargy.events import EventLog, EventName, StationCondition, station_state
from otel_chargy.generator import generate_network, render_kml
from otel_chargy.holder import SnapshotHolder
from otel_chargy.model import Connector, Device, SimpleState, Snapshot, Station, normalise_raw_state, simple_state_of
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor
from otel_chargy.server import Pages
from tests.browser import Browser
from tests.feedserver import FeedResponse, FeedServer
from tests.network import HOSTILE_NAME, page_network
from tests.otlp_receiver import OtlpReceiver, attributes_of, value_of
from tests.service import ServiceProcess, wait_until

# --- the sequence: each step is the feed's raw states, by (station, device, connector) --------------

ALPHA, BETA, GAMMA = "Alpha - Gare", "Beta - Mairie", "Gamma - P+R"
STEPS: list[dict[tuple[str, str, str], str]] = [
    {  # 0: the first refresh: no event
        (ALPHA, "CP1", "CP1 - 1"): "AVAILABLE",
        (ALPHA, "CP1", "CP1 - 2"): "CHARGING",
        (BETA, "CP2", "CP2 - 1"): "AVAILABLE",
        (GAMMA, "CP3", "CP3 - 1"): "CHARGING",
        (GAMMA, "CP3", "CP3 - 2"): "AVAILABLE",
    },
    {  # 1: a session starts at Alpha; Beta's only connector fails: Beta is down
        (ALPHA, "CP1", "CP1 - 1"): "CHARGING",
        (ALPHA, "CP1", "CP1 - 2"): "CHARGING",
        (BETA, "CP2", "CP2 - 1"): "FAULTED",
        (GAMMA, "CP3", "CP3 - 1"): "CHARGING",
        (GAMMA, "CP3", "CP3 - 2"): "AVAILABLE",
    },
    {  # 2: raw states move within their simple states (no event); Gamma's 2nd connector is replaced by a 3rd
        (ALPHA, "CP1", "CP1 - 1"): "CHARGING",
        (ALPHA, "CP1", "CP1 - 2"): "FINISHING",
        (BETA, "CP2", "CP2 - 1"): "OFFLINE",
        (GAMMA, "CP3", "CP3 - 1"): "CHARGING",
        (GAMMA, "CP3", "CP3 - 3"): "AVAILABLE",
    },
    {  # 3: Beta is back
        (ALPHA, "CP1", "CP1 - 1"): "CHARGING",
        (ALPHA, "CP1", "CP1 - 2"): "FINISHING",
        (BETA, "CP2", "CP2 - 1"): "AVAILABLE",
        (GAMMA, "CP3", "CP3 - 1"): "CHARGING",
        (GAMMA, "CP3", "CP3 - 3"): "AVAILABLE",
    },
    {  # 4: Gamma's operator sends a state no table maps, for both its connectors: Gamma is unknown
        (ALPHA, "CP1", "CP1 - 1"): "CHARGING",
        (ALPHA, "CP1", "CP1 - 2"): "FINISHING",
        (BETA, "CP2", "CP2 - 1"): "AVAILABLE",
        (GAMMA, "CP3", "CP3 - 1"): "WORKING",
        (GAMMA, "CP3", "CP3 - 3"): "WORKING",
    },
]

# (step, event, station, device, connector, from, to, from raw, to raw), in the order they happen.
EXPECTED: list[tuple[int, str, str, str | None, str | None, str | None, str | None, str | None, str | None]] = [
    (1, "chargy.connector.state_change", ALPHA, "CP1", "CP1 - 1", "available", "charging", "AVAILABLE", "CHARGING"),
    (1, "chargy.connector.state_change", BETA, "CP2", "CP2 - 1", "available", "unavailable", "AVAILABLE", "FAULTED"),
    (1, "chargy.station.down", BETA, None, None, "free", "all unavailable", None, None),
    (2, "chargy.connector.appeared", GAMMA, "CP3", "CP3 - 3", None, "available", None, "AVAILABLE"),
    (2, "chargy.connector.left", GAMMA, "CP3", "CP3 - 2", "available", None, "AVAILABLE", None),
    (3, "chargy.connector.state_change", BETA, "CP2", "CP2 - 1", "unavailable", "available", "OFFLINE", "AVAILABLE"),
    (3, "chargy.station.recovered", BETA, None, None, "all unavailable", "free", None, None),
    (4, "chargy.connector.state_change", GAMMA, "CP3", "CP3 - 1", "charging", "unknown", "CHARGING", "WORKING"),
    (4, "chargy.connector.state_change", GAMMA, "CP3", "CP3 - 3", "available", "unknown", "AVAILABLE", "WORKING"),
    (4, "chargy.station.unknown", GAMMA, None, None, "free", "unknown", None, None),
]
# Severity by the new state: a problem is a warning, a station down an error, the rest information.
EXPECTED_SEVERITY = ["INFO", "WARN", "ERROR", "INFO", "WARN", "INFO", "INFO", "WARN", "WARN", "WARN"]


def network(step: int) -> Snapshot:
    stations = []
    for index, station in enumerate((ALPHA, BETA, GAMMA)):
        by_device: dict[str, list[Connector]] = {}
        for (name, device, connector), raw in STEPS[step].items():
            if name == station:
                state = simple_state_of(normalise_raw_state(raw)) or SimpleState.UNKNOWN  # as the parser reads it
                position = int(connector.rsplit(" ", 1)[1])
                by_device.setdefault(device, []).append(Connector(connector, position, 22.0, raw, state))
        devices = tuple(Device(name, tuple(connectors)) for name, connectors in by_device.items())
        stations.append(Station(station, f"{index} Rue, L-1000 Luxembourg", 49.6 + index / 20, 6.1, devices))
    return Snapshot(tuple(stations))


def _as_tuple(document: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        document[key] for key in ("event", "station", "device", "connector", "from", "to", "from_raw", "to_raw")
    )


# --- in process: the diff itself ----------------------------------------------------------------


def test_the_sequence_gives_exactly_the_events_it_implies() -> None:
    events = EventLog()
    seen = []
    for step in range(len(STEPS)):
        made = events.observe(network(step), at=1000.0 + step)
        seen += [
            (step, e.name.value, e.station, e.device, e.connector, e.from_state, e.to_state, e.from_raw, e.to_raw)
            for e in made
        ]
        assert all(event.at == 1000.0 + step for event in made)
    assert seen == EXPECTED
    assert [(e.station, e.name) for e in events.newest(limit=2)] == [
        (GAMMA, EventName.STATION_UNKNOWN),
        (GAMMA, EventName.CONNECTOR_STATE),
    ]
    assert [(c.name, c.state.value) for c in events.problems] == [(GAMMA, "unknown")]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["available", "unavailable"], "free"),
        (["charging", "unavailable", "unknown"], "busy"),
        (["unavailable", "unavailable"], "all unavailable"),
        (["unavailable", "unknown"], "all unavailable"),
        (["unknown", "unknown"], "unknown"),
        ([], "unknown"),
    ],
)
def test_a_station_is_free_busy_down_or_unknown_by_its_connectors(states: list[str], expected: str) -> None:
    assert station_state(states).value == expected


def _problems(events: EventLog) -> list[StationCondition]:
    return list(events.problems)


def test_a_station_is_down_since_the_refresh_that_saw_it_and_the_first_refresh_says_at_least() -> None:
    events = EventLog()
    down_from_the_start = network(1)
    events.observe(down_from_the_start, at=50.0)
    (condition,) = events.problems
    assert (condition.name, condition.state.value, condition.since, condition.since_start) == (
        BETA, "all unavailable", 50.0, True,
    )  # fmt: skip
    events.observe(network(0), at=60.0)
    assert _problems(events) == []
    events.observe(network(1), at=70.0)
    assert [(c.since, c.since_start) for c in _problems(events)] == [(70.0, False)]
    events.observe(network(2), at=80.0)  # still down, other raw state: still since 70
    assert [c.since for c in _problems(events)] == [70.0]


def test_events_are_kept_within_the_bound_newest_first() -> None:
    events = EventLog(max_events=100)
    events.observe(network(0), at=0.0)
    for step in range(1, 200):
        events.observe(network(step % 2), at=float(step))  # Alpha's and Beta's connectors change every time
    assert len(events) == 100
    newest = events.newest()
    assert newest[0].at == 199.0 and newest[-1].at < newest[0].at
    assert len(events.newest(limit=7)) == 7
    assert {event.at for event in events.newest(since=190.0)} == {float(step) for step in range(190, 200)}


def test_an_output_that_fails_loses_no_event_and_stops_no_refresh(caplog: pytest.LogCaptureFixture) -> None:
    holder = SnapshotHolder(Outputs(), 600)
    given: list[int] = []

    def broken(events: object) -> None:
        raise RuntimeError("the exporter broke")

    holder.events.subscribe(broken)
    holder.events.subscribe(lambda events: given.append(len(events)))
    holder.publish(network(0), 10.0)
    holder.publish(network(1), 20.0)
    assert holder.latest is not None and holder.latest.snapshot.stations == network(1).stations
    assert len(holder.events) == 3 and given == [3]
    assert "passing on the state-change events failed" in caplog.text


# --- the service, for real -------------------------------------------------------------------------


@dataclass
class Run:
    feed: FeedServer
    receiver: OtlpReceiver
    services: dict[str, ServiceProcess]
    """By OTLP protocol: grpc, http/protobuf."""
    step_times: list[float]


def _successes(service: ServiceProcess) -> float:
    return service.sample("chargy_feed_refreshes_total", outcome="success") or 0


def _wait_for_successes(service: ServiceProcess, count: float, what: str) -> None:
    wait_until(lambda: _successes(service) >= count, what)


@pytest.fixture(scope="module")
def run(chromium: Browser) -> Iterator[Run]:
    """Two services (logs over gRPC and over HTTP) on one feed that moves through STEPS."""
    with FeedServer() as feed, OtlpReceiver() as receiver:
        feed.serve(FeedResponse(render_kml(network(0))))
        services: dict[str, ServiceProcess] = {}
        try:
            for protocol, endpoint in (("grpc", receiver.grpc_endpoint), ("http/protobuf", receiver.http_endpoint)):
                env = {
                    "OTEL_LOGS_EXPORTER": "otlp",
                    "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": endpoint + ("/v1/logs" if protocol != "grpc" else ""),
                    "OTEL_SERVICE_NAME": f"chargy-{protocol.replace('/', '-')}",
                    "OTEL_BLRP_SCHEDULE_DELAY": "200",
                }
                # Refreshes often, and keeps its snapshot in service however slowly a loaded machine refreshes.
                services[protocol] = ServiceProcess(
                    ["--kml-url", feed.url(), "--refresh-interval", "0.5", "--max-staleness", "600"], env
                )
                services[protocol].__enter__()
            step_times = []
            for step in range(len(STEPS)):
                before = {protocol: _successes(service) for protocol, service in services.items()}
                if step:
                    feed.serve(FeedResponse(render_kml(network(step))))
                # Two more refreshes: the second one began after the feed changed.
                for protocol, service in services.items():
                    _wait_for_successes(service, before[protocol] + 2, f"step {step} on {protocol}")
                step_times.append(time.time())
            yield Run(feed, receiver, services, step_times)
        finally:
            for service in services.values():
                service.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_api_lists_exactly_the_events_newest_first(run: Run, protocol: str) -> None:
    document = run.services[protocol].get("/api/v1/events").json()
    assert [_as_tuple(event) for event in document["events"]] == [expected[1:] for expected in reversed(EXPECTED)]
    times = [event["at"] for event in document["events"]]
    assert times == sorted(times, reverse=True) and all(at.endswith("Z") for at in times)
    assert document["kept"] == len(EXPECTED) and document["max_kept"] == 100_000


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_each_event_is_an_otlp_log_record_on_the_wire(run: Run, protocol: str) -> None:
    service_name = f"chargy-{protocol.replace('/', '-')}"

    def records() -> list[Any]:
        found = [
            record
            for resource, scope, record in run.receiver.log_records()
            if resource.get("service.name") == service_name and scope == "otel_chargy.events"
        ]
        return found if len(found) >= len(EXPECTED) else []

    received = wait_until(records, f"{len(EXPECTED)} log records over {protocol}")
    assert len(received) == len(EXPECTED)
    decoded = [
        (
            record.event_name,
            *(
                attributes_of(record.attributes).get(key)
                for key in (
                    "station",
                    "device",
                    "connector",
                    "state.from",
                    "state.to",
                    "raw_state.from",
                    "raw_state.to",
                )
            ),
        )
        for record in received
    ]
    assert decoded == [expected[1:] for expected in EXPECTED]
    assert [record.severity_text for record in received] == EXPECTED_SEVERITY
    assert value_of(received[2].body) == f"{BETA}: free -> all unavailable"
    # Each record carries the time of the refresh that saw it, not of its export.
    first_steps = [expected[0] for expected in EXPECTED]
    for record, step in zip(received, first_steps, strict=True):
        assert run.step_times[step - 1] - 1 <= record.time_unix_nano / 1e9 <= run.step_times[step]
    exports = run.services[protocol].sample("chargy_otlp_exports_total", signal="logs", outcome="success")
    assert exports is not None and exports >= 1


def test_the_page_shows_the_last_changes_and_reloads_itself_after_a_refresh(run: Run, chromium: Browser) -> None:
    service = run.services["grpc"]
    tab = chromium.open(f"{service.base_url}/")
    rows = [row for row in tab.dom().select("#changes tbody tr")]
    texts = [" ".join(row.get_text(" ").split()) for row in rows]
    assert len(texts) == len(EXPECTED)
    assert GAMMA in texts[0] and "no connector's state can be read" in texts[0]
    assert "CP3 - 3: available → unknown (AVAILABLE → WORKING)" in texts[1]
    assert BETA in texts[3] and "recovered: free" in texts[3]
    assert "CP2 - 1: unavailable → available (OFFLINE → AVAILABLE)" in texts[4]
    assert "CP3 - 2 left the feed (was available)" in texts[5]
    assert "CP3 - 3 appeared: available (AVAILABLE)" in texts[6]
    assert "every connector became unavailable" in texts[7]
    problems = tab.dom().find(id="problems")
    assert problems is not None and problems.h2 is not None
    assert problems.h2.get_text() == "Stations with a problem: 1 of unknown state"
    assert [" ".join(item.get_text(" ").split()).split(" for ")[0] for item in problems.select("li")] == [
        f"{GAMMA} unknown"
    ]
    # The page reloads itself after the next refresh: a mark set in this page is gone, the page is whole.
    tab.evaluate("window.loadedOnce = true")
    wait_until(lambda: tab.evaluate("window.loadedOnce === undefined && document.readyState === 'complete'"),
               "the page to reload itself")  # fmt: skip
    assert tab.dom().find(id="changes") is not None
    tab.close()


def test_a_station_has_its_own_page_at_a_stable_url_in_any_case(run: Run, chromium: Browser) -> None:
    service = run.services["grpc"]
    tab = chromium.open(f"{service.base_url}/station/{quote(BETA.upper(), safe='')}")
    soup: BeautifulSoup = tab.dom()
    tab.close()
    assert soup.h1 is not None and soup.h1.get_text() == BETA
    state = soup.find(id="station-state")
    assert state is not None and state.h2 is not None and state.h2.get_text().startswith("free for ")
    connectors = [[cell.get_text() for cell in row.find_all("td")] for row in soup.select("#connectors tbody tr")]
    assert [row[:4] for row in connectors] == [["CP2", "CP2 - 1", "available", "AVAILABLE"]]
    changes = [" ".join(row.get_text(" ").split()) for row in soup.select("#changes tbody tr")]
    assert len(changes) == 4 and "recovered" in changes[0] and "became unavailable" in changes[2]
    missing = service.get("/station/" + quote("Beta - Mairi"))
    assert missing.status_code == 404 and BETA in missing.text


# --- the API's edges ----------------------------------------------------------------------------------


def test_the_events_of_one_station_in_any_case_since_a_time_and_limited(run: Run) -> None:
    service = run.services["grpc"]
    beta = service.get("/api/v1/events?" + urlencode({"station": BETA.lower()})).json()["events"]
    assert [_as_tuple(event) for event in beta] == [e[1:] for e in reversed(EXPECTED) if e[2] == BETA]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.step_times[1] + 1))
    recent = service.get("/api/v1/events?" + urlencode({"since": since})).json()["events"]
    assert all(event["at"] >= since for event in recent) and len(recent) < len(EXPECTED)
    assert len(service.get("/api/v1/events?limit=2").json()["events"]) == 2


def test_the_docs_show_the_events_as_the_api_answers_them(run: Run) -> None:
    page = (Path(__file__).parent.parent / "docs" / "status-page.md").read_text()
    section = page.split("## State changes (events)", 1)[1]
    example = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    answer = run.services["grpc"].get("/api/v1/events").json()
    assert set(example) == set(answer) and set(example["events"][0]) == set(answer["events"][0])


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("limit=0", 400, "limit must be"),
        ("limit=abc", 400, "limit must be"),
        ("limit=99999999", 400, "limit must be"),
        ("since=yesterday", 400, "not a time"),
        ("colour=red", 400, "unknown query parameter"),
        ("station=Beta%20-%20Mairi", 404, "no such station"),
    ],
)
def test_a_bad_events_query_is_a_json_error(run: Run, query: str, status: int, error: str) -> None:
    response = run.services["grpc"].get(f"/api/v1/events?{query}")
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    assert error in response.json()["error"]


def test_a_station_in_another_case_is_found_and_a_misspelt_one_gets_the_closest_names(run: Run) -> None:
    service = run.services["grpc"]
    found = service.get("/api/v1/stations/" + quote(GAMMA.swapcase(), safe=""))
    assert found.status_code == 200 and found.json()["name"] == GAMMA and found.json()["state"] == "unknown"
    missing = service.get("/api/v1/stations/" + quote("Gama - P+R", safe=""))
    assert missing.status_code == 404 and missing.json()["closest"][0] == GAMMA


@pytest.mark.parametrize("path", ["/api", "/api/", "/api/v2/stations", "/api/v1/nothing", "/api/v1/events/x"])
def test_every_unknown_api_path_answers_json(run: Run, path: str) -> None:
    response = run.services["grpc"].get(path)
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "no such endpoint" and "/api/v1/events" in response.json()["endpoints"]


@pytest.mark.parametrize(
    "path", ["/api/v1/stations", "/api/v1/stations/" + quote(HOSTILE_NAME, safe=""), "/api/v1/events"]
)
def test_large_answers_are_gzip_compressed_when_the_client_accepts_it(path: str) -> None:
    holder = SnapshotHolder(Outputs(), 600)
    holder.publish(page_network(), time.time())
    holder.publish(generate_network(530, seed=13), time.time())  # another network: every station changes
    pages = Pages(holder, None, "/metrics", "test feed", Redactor([]))
    plain = pages.page(path, "identity")
    compressed = pages.page(path, "br;q=1.0, gzip;q=0.5")
    refused = pages.page(path, "gzip;q=0")
    assert plain is not None and compressed is not None and refused is not None
    body = b"".join(plain.chunks)
    assert "Content-Encoding" not in plain.headers and "Content-Encoding" not in refused.headers
    if len(body) >= 1400:
        assert compressed.headers["Content-Encoding"] == "gzip" and compressed.headers["Vary"] == "Accept-Encoding"
        assert gzip.decompress(b"".join(compressed.chunks)) == body
    assert path != "/api/v1/stations" or len(b"".join(compressed.chunks)) < len(body) / 3
