"""What /metrics must say about a generated network, series by series."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from otel_chargy.model import SimpleState, Snapshot

Series = dict[frozenset[tuple[str, str]], float]


def series_of(family: Metric) -> Series:
    return {frozenset(sample.labels.items()): sample.value for sample in family.samples}


def expected_connector_states(network: Snapshot) -> Series:
    return {
        frozenset(
            {
                "station": station.name,
                "device": device.name,
                "connector": connector.name,
                "speed": connector.speed,
                "chargy_connector_state": state.value,
            }.items()
        ): float(state is connector.state)
        for station, device, connector in network.connectors()
        for state in SimpleState
    }


def expected_detailed_states(network: Snapshot) -> Series:
    return {
        frozenset(
            {
                "station": station.name,
                "device": device.name,
                "connector": connector.name,
                "speed": connector.speed,
                "state": connector.raw_state,
            }.items()
        ): 1.0
        for station, device, connector in network.connectors()
    }


def expected_max_power(network: Snapshot) -> Series:
    return {
        frozenset({"station": station.name, "device": device.name, "connector": connector.name}.items()): (
            connector.max_power_kw * 1000
        )
        for station, device, connector in network.connectors()
    }


def expected_station_info(network: Snapshot) -> Series:
    return {
        frozenset(
            {
                "station": station.name,
                "address": station.address,
                "latitude": f"{station.latitude}",
                "longitude": f"{station.longitude}",
            }.items()
        ): 1.0
        for station in network.stations
    }


def assert_serves(metrics: dict[str, Metric], network: Snapshot) -> None:
    """Every connector's series are present and right, and nothing else is."""
    assert series_of(metrics["chargy_connector_state"]) == expected_connector_states(network)
    assert series_of(metrics["chargy_connector_detailed_state_info"]) == expected_detailed_states(network)
    assert series_of(metrics["chargy_connector_max_power_watts"]) == expected_max_power(network)
    assert series_of(metrics["chargy_station_info"]) == expected_station_info(network)
