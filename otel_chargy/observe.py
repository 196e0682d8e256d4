"""What a publication shows the push readers (OTLP, console): a snapshot's and its usage counters'
observations, built once at refresh time."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

from opentelemetry.metrics import Observation

from otel_chargy.catalog import (
    CONNECTOR_DETAILED_STATE,
    CONNECTOR_MAX_POWER,
    CONNECTOR_STATE,
    NETWORK_CHARGING_SESSIONS,
    NETWORK_CONNECTOR_TIME,
    NETWORK_CONNECTORS,
    STATION_CHARGING_SESSIONS,
    STATION_CONNECTOR_TIME,
    STATION_CONNECTORS,
    STATION_INFO,
    MetricSpec,
    coordinate_label,
)
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.usage import STATES, UsageTotals, UsageView

SnapshotObservations = Mapping[MetricSpec, Sequence[Observation]]
"""One snapshot's observations, by metric: built once at refresh time, returned as they are by every collection."""


def _connector_states(snapshot: Snapshot) -> Iterator[Observation]:
    for station, device, connector in snapshot.connectors():
        labels = {"station": station.name, "device": device.name, "connector": connector.name, "speed": connector.speed}
        for state in SimpleState:
            yield Observation(int(state is connector.state), {**labels, "chargy_connector_state": state.value})


def _connector_detailed_states(snapshot: Snapshot) -> Iterator[Observation]:
    for station, device, connector in snapshot.connectors():
        labels = {"station": station.name, "device": device.name, "connector": connector.name}
        yield Observation(1, {**labels, "speed": connector.speed, "state": connector.raw_state})


def _connector_max_powers(snapshot: Snapshot) -> Iterator[Observation]:
    for station, device, connector in snapshot.connectors():
        labels = {"station": station.name, "device": device.name, "connector": connector.name}
        yield Observation(connector.max_power_kw * 1000.0, labels)


def _station_info(snapshot: Snapshot) -> Iterator[Observation]:
    for station in snapshot.stations:
        latitude, longitude = coordinate_label(station.latitude), coordinate_label(station.longitude)
        labels = {"station": station.name, "address": station.address, "latitude": latitude, "longitude": longitude}
        yield Observation(1, labels)


def _station_connectors(snapshot: Snapshot) -> Iterator[Observation]:
    for station in snapshot.stations:
        for state, count in station.count_by_state().items():
            yield Observation(count, {"station": station.name, "chargy_connector_state": state.value})


def _network_connectors(snapshot: Snapshot) -> Iterator[Observation]:
    for speed, counts in snapshot.count_by_speed_and_state().items():
        for state, count in counts.items():
            yield Observation(count, {"speed": speed, "chargy_connector_state": state.value})


_OBSERVERS: Mapping[MetricSpec, Callable[[Snapshot], Iterator[Observation]]] = {
    CONNECTOR_STATE: _connector_states,
    CONNECTOR_DETAILED_STATE: _connector_detailed_states,
    CONNECTOR_MAX_POWER: _connector_max_powers,
    STATION_INFO: _station_info,
    STATION_CONNECTORS: _station_connectors,
    NETWORK_CONNECTORS: _network_connectors,
}


def observe_snapshot(snapshot: Snapshot, metrics: Collection[MetricSpec]) -> SnapshotObservations:
    """The observations of the metrics in `metrics` read from the snapshot itself, and only those."""
    return {spec: list(observer(snapshot)) for spec, observer in _OBSERVERS.items() if spec in metrics}


def _connector_time(label: str, totals: Mapping[str, UsageTotals]) -> Iterator[Observation]:
    for key, usage in totals.items():
        for state, seconds in zip(STATES, usage.seconds, strict=True):
            yield Observation(seconds, {label: key, "chargy_connector_state": state.value})


def _charging_sessions(label: str, totals: Mapping[str, UsageTotals]) -> Iterator[Observation]:
    for key, usage in totals.items():
        yield Observation(usage.sessions, {label: key})


_USAGE_OBSERVERS: Mapping[MetricSpec, Callable[[UsageView], Iterator[Observation]]] = {
    STATION_CONNECTOR_TIME: lambda view: _connector_time("station", view.stations),
    STATION_CHARGING_SESSIONS: lambda view: _charging_sessions("station", view.stations),
    NETWORK_CONNECTOR_TIME: lambda view: _connector_time("speed", view.network),
    NETWORK_CHARGING_SESSIONS: lambda view: _charging_sessions("speed", view.network),
}


def observe_usage(usage: UsageView, metrics: Collection[MetricSpec]) -> SnapshotObservations:
    """The observations of the usage counters in `metrics`, and only those."""
    return {spec: list(observer(usage)) for spec, observer in _USAGE_OBSERVERS.items() if spec in metrics}
