"""What /metrics must say about a generated network, series by series."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric

from otel_chargy.model import SimpleState, Snapshot

Series = dict[frozenset[tuple[str, str]], float]

# The simple state of each raw state, written here from the feed notes' (FEED.md) table and the values
# public parsers of the feed have seen, not read from the product's own table.
SIMPLE_STATE_OF_RAW: dict[str, str] = {
    "AVAILABLE": "available",
    "CHARGING": "charging",
    "PREPARING": "charging",
    "FINISHING": "charging",
    "SUSPENDED_EV": "charging",
    "SUSPENDED_EVSE": "charging",
    "OCCUPIED": "charging",
    "UNAVAILABLE": "unavailable",
    "OFFLINE": "unavailable",
    "FAULT": "unavailable",
    "FAULTED": "unavailable",
    "RESERVED": "unavailable",
}


def series_of(family: Metric) -> Series:
    return {frozenset(sample.labels.items()): sample.value for sample in family.samples}


def _series(rows: Iterable[tuple[dict[str, str], float]]) -> Series:
    return {frozenset(labels.items()): value for labels, value in rows}


def expected_connector_states(network: Snapshot) -> Series:
    return _series(
        (
            {
                "station": s.name,
                "device": d.name,
                "connector": c.name,
                "speed": c.speed,
                "chargy_connector_state": state.value,
            },
            float(state is c.state),
        )
        for s, d, c in network.connectors()
        for state in SimpleState
    )


def expected_detailed_states(network: Snapshot) -> Series:
    return _series(
        ({"station": s.name, "device": d.name, "connector": c.name, "speed": c.speed, "state": c.raw_state}, 1.0)
        for s, d, c in network.connectors()
    )


def expected_max_power(network: Snapshot) -> Series:
    return _series(
        ({"station": s.name, "device": d.name, "connector": c.name}, c.max_power_kw * 1000)
        for s, d, c in network.connectors()
    )


def expected_station_info(network: Snapshot) -> Series:
    return _series(
        (
            {"station": s.name, "address": s.address, "latitude": f"{s.latitude}", "longitude": f"{s.longitude}"},
            1.0,
        )
        for s in network.stations
    )


def assert_serves(metrics: dict[str, Metric], network: Snapshot) -> None:
    """Every connector's series are present and right, and nothing else is."""
    assert series_of(metrics["chargy_connector_state"]) == expected_connector_states(network)
    assert series_of(metrics["chargy_connector_detailed_state_info"]) == expected_detailed_states(network)
    assert series_of(metrics["chargy_connector_max_power_watts"]) == expected_max_power(network)
    assert series_of(metrics["chargy_station_info"]) == expected_station_info(network)
