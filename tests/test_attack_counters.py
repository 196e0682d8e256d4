"""Issue 17, the series families and the usage counters, played from outside against the real service.

Row 4: a feed whose every label (station, device, connector, speed, state, address, place) changes at every
refresh: no family of /metrics may keep what left the network for longer than --max-staleness. Row 5: a
feed that never changes, whose names collide with the ` (<id>)` suffix the service adds: no duplicate
series, and no charging session counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from otel_chargy.model import SimpleState
from tests.attack import (
    FEED_PATH,
    JSON,
    MAX_METRICS_BYTES,
    MAX_PEAK_RSS_MIB,
    attacked_service,
    evse,
    family_of,
    location,
    metrics_text,
    ocpi_body,
    parsed_series,
    peak_rss_mib,
    play,
    series,
)
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess, wait_until

Attacked = tuple[FeedServer, ServiceProcess]
STATES = len(SimpleState)
REFRESH_INTERVAL_S = 0.5
MAX_STALENESS_S = 1.5
# Refreshes at least REFRESH_INTERVAL_S apart: at most this many lie within the maximum staleness.
REFRESHES_KEPT = int(MAX_STALENESS_S / REFRESH_INTERVAL_S) + 2
CHANGING_REFRESHES = 16
LOCATIONS = 5
CONNECTORS_PER_LOCATION = 2


@pytest.fixture(scope="module")
def counted() -> Iterator[Attacked]:
    with attacked_service(
        "--feed.format", "ocpi", "--max-staleness", str(MAX_STALENESS_S), "--max-shrink", "1"
    ) as attacked:
        yield attacked


def changing_feed(request_number: int) -> FeedResponse:
    """At each request, a new network: every label of every family, and every power, new."""
    n = request_number
    locations = [
        location(
            f"{n}-{index}",
            f"Station {n}-{index}",
            [
                evse(
                    f"{n}-{index}",
                    ("AVAILABLE", "CHARGING", f"STATE-{n}")[n % 3],
                    [f"C{n}-{position}" for position in range(CONNECTORS_PER_LOCATION)],
                    evse_id=f"E{n}-{index}",
                    watts=(100 + n * LOCATIONS + index) * 1000,
                )
            ],
            address=f"{n} rue {index}",
            coordinates={"latitude": f"49.{n:04d}", "longitude": f"6.{index:04d}"},
        )
        for index in range(LOCATIONS)
    ]
    return FeedResponse(ocpi_body(*locations), content_type=JSON)


def test_every_family_stays_bounded_when_every_label_changes_at_every_refresh(counted: Attacked) -> None:
    feed, service = counted
    feed.serve_changing(changing_feed)
    try:
        asked = sum(1 for path, _ in list(feed.requests) if path == FEED_PATH)
        wait_until(
            lambda: sum(1 for path, _ in list(feed.requests) if path == FEED_PATH) >= asked + CHANGING_REFRESHES,
            f"{CHANGING_REFRESHES} refreshes of a changing feed",
        )
        text = metrics_text(service)
    finally:
        feed.serve_changing(None)
    by_family = Counter(family_of(line) for line in series(text))
    # Per refresh: 5 stations and 5 speeds (each a station's two connectors), each in every state.
    per_refresh = {
        "chargy_connector_state": LOCATIONS * CONNECTORS_PER_LOCATION * STATES,
        "chargy_connector_detailed_state_info": LOCATIONS * CONNECTORS_PER_LOCATION,
        "chargy_connector_max_power_watts": LOCATIONS * CONNECTORS_PER_LOCATION,
        "chargy_station_info": LOCATIONS,
        "chargy_station_connectors": LOCATIONS * STATES,
        "chargy_network_connectors": LOCATIONS * STATES,
        "chargy_station_connector_seconds_total": LOCATIONS * STATES,
        "chargy_station_charging_sessions_total": LOCATIONS,
        "chargy_network_connector_seconds_total": LOCATIONS * STATES,
        "chargy_network_charging_sessions_total": LOCATIONS,
    }
    for family, count in per_refresh.items():
        assert 0 < by_family[family] <= REFRESHES_KEPT * count, (family, by_family[family])
    # The others hold the service's own figures, none a label of the feed's: fixed whatever the feed says.
    others = {family: count for family, count in by_family.items() if family not in per_refresh}
    assert sum(others.values()) < 200, others
    assert len(text.encode()) < MAX_METRICS_BYTES
    assert peak_rss_mib(service) < MAX_PEAK_RSS_MIB
    # The feed did change past what is kept: over the run, more speeds than the family keeps were seen.
    assert CHANGING_REFRESHES * LOCATIONS > REFRESHES_KEPT * LOCATIONS


def colliding_feed() -> bytes:
    """Locations named `S`, `S` and `S (1)` (the first two become `S (<id>)`); in one Location, EVSEs
    whose evse_ids collide with the suffixed ones, and two EVSEs that share a uid. Each charging connector
    shares its labels, in the suffix rule of old, with an available one."""
    return ocpi_body(
        location("1", "S", [evse("a", "CHARGING", ["1"], evse_id="E")]),
        location("2", "S", [evse("a", "AVAILABLE", ["1"], evse_id="E")]),
        location("3", "S (1)", [evse("a", "AVAILABLE", ["1"], evse_id="E")]),
        location(
            "4",
            "T",
            [
                evse("c", "AVAILABLE", ["1"], evse_id="E (b)"),
                evse("a", "CHARGING", ["1"], evse_id="E"),
                evse("b", "CHARGING", ["1"], evse_id="E"),
                evse("d", "CHARGING", ["1"], evse_id="F"),
                evse("d", "AVAILABLE", ["1"], evse_id="G"),
            ],
        ),
    )


def test_colliding_names_give_no_duplicate_series_and_no_session(counted: Attacked) -> None:
    feed, service = counted
    play(feed, service, FeedResponse(colliding_feed(), content_type=JSON), "success")
    asked = sum(1 for path, _ in list(feed.requests) if path == FEED_PATH)
    wait_until(lambda: sum(1 for path, _ in list(feed.requests) if path == FEED_PATH) >= asked + 5, "5 refreshes")
    text = metrics_text(service)
    samples = parsed_series(text)
    assert max(samples.values()) == 1, [key for key, count in samples.items() if count > 1]
    stations = {dict(labels)["station"] for name, labels in samples if name == "chargy_station_info" and dict(labels)}
    assert len(stations & {"S (1)", "S (2)", "S (LU*ATK*1)", "T"}) == 4
    connectors = [labels for name, labels in samples if name == "chargy_connector_max_power_watts"]
    assert len(connectors) == 3 + 4  # one per Location of S; four EVSEs in T (the second `d` is left out)
    sessions = {
        (name, labels): value
        for family in ("chargy_station_charging_sessions", "chargy_network_charging_sessions")
        for name, labels, value in _samples(text, family)
    }
    assert sessions and all(value == 0 for value in sessions.values()), sessions


def _samples(text: str, family: str) -> Iterator[tuple[str, tuple[tuple[str, str], ...], float]]:
    lines = "".join(
        line + "\n" for line in text.splitlines() if line.startswith((family, f"# HELP {family}", f"# TYPE {family}"))
    )
    for metric in text_string_to_metric_families(lines):
        for sample in metric.samples:
            yield sample.name, tuple(sorted(sample.labels.items())), float(sample.value)
