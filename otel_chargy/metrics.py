"""Every metric otel-chargy exports, defined once, and the callbacks that read the holder."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from otel_chargy import __version__
from otel_chargy.holder import RefreshStatus
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import Outcome
from otel_chargy.parse import ISSUE_KINDS

METER_NAME = "otel_chargy"

# Sized for a 100,000-connector network: the SDK never frees the attribute sets of
# asynchronous instruments, so a detailed state that changes adds a set each time
# (100,000 connectors x ~12 states x 3 for renames and unknown states).
SERIES_LIMIT = 4_000_000

REFRESH_DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_CACHED = "From the last successful refresh of the feed (cached: the feed is one file, refreshed every few minutes)."


class Kind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    """The OpenTelemetry name, as OTLP carries it."""
    prometheus_name: str
    """The name Prometheus shows: the compatibility contract."""
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()


CONNECTOR_STATE = MetricSpec(
    "chargy.connector.state",
    "chargy_connector_state",
    Kind.GAUGE,
    "1",
    f"1 for the connector's current simple state (available, charging, unavailable), 0 for the others. {_CACHED}",
    ("station", "device", "connector", "speed", "chargy_connector_state"),
)
CONNECTOR_DETAILED_STATE = MetricSpec(
    "chargy.connector.detailed_state_info",
    "chargy_connector_detailed_state_info",
    Kind.GAUGE,
    "1",
    f"Always 1; `state` holds the connector's state as the feed gives it, upper-cased. {_CACHED}",
    ("station", "device", "connector", "speed", "state"),
)
CONNECTOR_MAX_POWER = MetricSpec(
    "chargy.connector.max_power",
    "chargy_connector_max_power_watts",
    Kind.GAUGE,
    "W",
    f"The connector's maximum charging power. {_CACHED}",
    ("station", "device", "connector"),
)
STATION_INFO = MetricSpec(
    "chargy.station.info",
    "chargy_station_info",
    Kind.GAUGE,
    "1",
    f"Always 1; the station's address and coordinates (WGS 84, empty when unknown). {_CACHED}",
    ("station", "address", "latitude", "longitude"),
)
FEED_UP = MetricSpec(
    "chargy.feed.up",
    "chargy_feed_up",
    Kind.GAUGE,
    "1",
    "1 when the latest refresh of the feed succeeded, else 0.",
)
FEED_LAST_SUCCESS = MetricSpec(
    "chargy.feed.last_success_timestamp",
    "chargy_feed_last_success_timestamp_seconds",
    Kind.GAUGE,
    "s",
    "Unix time of the last successful refresh of the feed.",
)
FEED_REFRESHES = MetricSpec(
    "chargy.feed.refreshes",
    "chargy_feed_refreshes_total",
    Kind.COUNTER,
    "{refresh}",
    "Refreshes of the feed, by how they ended.",
    ("outcome",),
)
FEED_REFRESH_DURATION = MetricSpec(
    "chargy.feed.refresh.duration",
    "chargy_feed_refresh_duration_seconds",
    Kind.HISTOGRAM,
    "s",
    "Time taken by a refresh: fetch, parse and publish.",
)
FEED_STATIONS = MetricSpec(
    "chargy.feed.stations",
    "chargy_feed_stations",
    Kind.GAUGE,
    "{station}",
    "Stations in the snapshot in service (0 when none is served).",
)
FEED_CONNECTORS = MetricSpec(
    "chargy.feed.connectors",
    "chargy_feed_connectors",
    Kind.GAUGE,
    "{connector}",
    "Connectors in the snapshot in service (0 when none is served).",
)
FEED_PARSE_ISSUES = MetricSpec(
    "chargy.feed.parse_issues",
    "chargy_feed_parse_issues_total",
    Kind.COUNTER,
    "{issue}",
    "Parts of the feed that were skipped or guessed while the rest was used, by kind.",
    ("kind",),
)
METRIC_OVERFLOW = MetricSpec(
    "chargy.metric.overflow",
    "chargy_metric_overflow_total",
    Kind.COUNTER,
    "{point}",
    "Data points the SDK folded into an otel_metric_overflow series because a metric passed its series limit; "
    "should stay 0.",
    ("metric",),
)

_USAGE = (
    "Counted at each successful refresh from the states the feed showed at the one before; a gap longer than "
    "--max-staleness counts in no state."
)
STATION_CONNECTOR_TIME = MetricSpec(
    "chargy.station.connector.time",
    "chargy_station_connector_time_seconds_total",
    Kind.COUNTER,
    "s",
    f"Connector-seconds the station's connectors spent in each simple state. {_USAGE}",
    ("station", "chargy_connector_state"),
)
STATION_CHARGING_SESSIONS = MetricSpec(
    "chargy.station.charging_sessions",
    "chargy_station_charging_sessions_total",
    Kind.COUNTER,
    "{session}",
    "Connectors of the station seen charging at a refresh and not charging at the one before "
    "(a session shorter than the refresh interval is not seen).",
    ("station",),
)
NETWORK_CONNECTOR_TIME = MetricSpec(
    "chargy.network.connector.time",
    "chargy_network_connector_time_seconds_total",
    Kind.COUNTER,
    "s",
    f"Connector-seconds the network's connectors spent in each simple state, by speed. {_USAGE}",
    ("speed", "chargy_connector_state"),
)
NETWORK_CHARGING_SESSIONS = MetricSpec(
    "chargy.network.charging_sessions",
    "chargy_network_charging_sessions_total",
    Kind.COUNTER,
    "{session}",
    "Connectors seen charging at a refresh and not charging at the one before, by speed "
    "(a session shorter than the refresh interval is not seen).",
    ("speed",),
)

SNAPSHOT_METRICS = (CONNECTOR_STATE, CONNECTOR_DETAILED_STATE, CONNECTOR_MAX_POWER, STATION_INFO)
"""The metrics whose size grows with the network."""

METRICS: tuple[MetricSpec, ...] = (
    CONNECTOR_STATE,
    CONNECTOR_DETAILED_STATE,
    CONNECTOR_MAX_POWER,
    STATION_INFO,
    FEED_UP,
    FEED_LAST_SUCCESS,
    FEED_REFRESHES,
    FEED_REFRESH_DURATION,
    FEED_STATIONS,
    FEED_CONNECTORS,
    FEED_PARSE_ISSUES,
    METRIC_OVERFLOW,
    STATION_CONNECTOR_TIME,
    STATION_CHARGING_SESSIONS,
    NETWORK_CONNECTOR_TIME,
    NETWORK_CHARGING_SESSIONS,
)


def metrics_table_markdown() -> str:
    """The README's metric table, generated from METRICS."""
    lines = [
        "| Prometheus name | OpenTelemetry name | type | unit | labels / attributes | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for spec in METRICS:
        labels = ", ".join(f"`{name}`" for name in spec.attributes)
        lines.append(
            f"| `{spec.prometheus_name}` | `{spec.name}` | {spec.kind.value} | `{spec.unit}` | {labels} "
            f"| {spec.description} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class PreparedObservations:
    """One snapshot's observations, built once at refresh time and returned as they are by every collection."""

    connector_state: Sequence[Observation]
    connector_detailed_state: Sequence[Observation]
    connector_max_power: Sequence[Observation]
    station_info: Sequence[Observation]


def prepare_observations(snapshot: Snapshot) -> PreparedObservations:
    states: list[Observation] = []
    detailed: list[Observation] = []
    power: list[Observation] = []
    for station, device, connector in snapshot.connectors():
        labels = {"station": station.name, "device": device.name, "connector": connector.name}
        with_speed = {**labels, "speed": connector.speed}
        for state in SimpleState:
            states.append(
                Observation(int(state is connector.state), {**with_speed, "chargy_connector_state": state.value})
            )
        detailed.append(Observation(1, {**with_speed, "state": connector.raw_state}))
        power.append(Observation(connector.max_power_kw * 1000.0, labels))
    stations = [
        Observation(
            1,
            {
                "station": station.name,
                "address": station.address,
                "latitude": "" if station.latitude is None else f"{station.latitude}",
                "longitude": "" if station.longitude is None else f"{station.longitude}",
            },
        )
        for station in snapshot.stations
    ]
    return PreparedObservations(states, detailed, power, stations)


class OverflowTally:
    """Counts data points the SDK folded into overflow series; fed by the readers after each collection."""

    def __init__(self, metric_names: Sequence[str]) -> None:
        # Present at 0 from the start, so that an alert on it works before the first overflow.
        self._points: dict[str, int] = dict.fromkeys(metric_names, 0)

    def count(self, metrics_data: MetricsData) -> None:
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    overflowing = sum(
                        1
                        for point in metric.data.data_points
                        if point.attributes and point.attributes.get("otel.metric.overflow")
                    )
                    if overflowing:
                        self._points[metric.name] = self._points.get(metric.name, 0) + overflowing

    def observations(self) -> list[Observation]:
        return [Observation(count, {"metric": name}) for name, count in self._points.items()]


class OverflowCounting(MetricReader):
    """Mixed into a reader: counts the overflow points of each collection before the reader handles it."""

    overflow: OverflowTally

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if metrics_data is not None:
            self.overflow.count(metrics_data)
        # The mixin always stands before a concrete reader in the MRO, whose method this reaches.
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)  # type: ignore[safe-super]


class RefreshRecorder:
    """The synchronous instruments a refresh updates, on every MeterProvider that exports them."""

    def __init__(self, providers: Sequence[MeterProvider]) -> None:
        meters = [provider.get_meter(METER_NAME, __version__) for provider in providers]
        self._refreshes = [
            meter.create_counter(FEED_REFRESHES.name, FEED_REFRESHES.unit, FEED_REFRESHES.description)
            for meter in meters
        ]
        self._durations = [
            meter.create_histogram(
                FEED_REFRESH_DURATION.name, FEED_REFRESH_DURATION.unit, FEED_REFRESH_DURATION.description
            )
            for meter in meters
        ]
        self._issues = [
            meter.create_counter(FEED_PARSE_ISSUES.name, FEED_PARSE_ISSUES.unit, FEED_PARSE_ISSUES.description)
            for meter in meters
        ]
        # Every label value is exported from the start, as Prometheus practice wants for counters.
        for refreshes, issues in zip(self._refreshes, self._issues, strict=True):
            for outcome in Outcome:
                refreshes.add(0, {"outcome": outcome.value})
            for kind in ISSUE_KINDS:
                issues.add(0, {"kind": kind})

    def record_refresh(self, outcome: Outcome, duration_s: float, issues: Mapping[str, int]) -> None:
        for refreshes, durations, issue_counter in zip(self._refreshes, self._durations, self._issues, strict=True):
            refreshes.add(1, {"outcome": outcome.value})
            durations.record(duration_s)
            for kind, count in issues.items():
                issue_counter.add(count, {"kind": kind})


def _views() -> list[View]:
    # One view per instrument: an instrument matched by two views would be exported twice.
    return [
        View(
            instrument_name=spec.name,
            aggregation=(
                ExplicitBucketHistogramAggregation(REFRESH_DURATION_BUCKETS_S) if spec.kind is Kind.HISTOGRAM else None
            ),
            aggregation_cardinality_limit=SERIES_LIMIT,
        )
        for spec in METRICS
    ]


@dataclass(frozen=True)
class ServedFeed:
    """What the callbacks read: accessors over the holder, so that a callback only returns what is ready."""

    status: Callable[[], RefreshStatus]
    counts: Callable[[], tuple[int, int]]
    """(stations, connectors) of the snapshot in service; (0, 0) when none is."""
    observations: Callable[[], PreparedObservations | None] | None = None
    """The snapshot's prepared observations; None leaves the snapshot-sized metrics out of this provider."""


def build_meter_provider(
    readers: Sequence[MetricReader], resource: Resource, overflow: OverflowTally, served: ServedFeed
) -> MeterProvider:
    """A MeterProvider with the feed-health instruments, and the snapshot-sized ones when `served` has them."""
    # Shut down by the service, within a bound; not again at exit.
    provider = MeterProvider(metric_readers=readers, resource=resource, views=_views(), shutdown_on_exit=False)
    meter = provider.get_meter(METER_NAME, __version__)

    def feed_observation(value: Callable[[], float | None]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            observed = value()
            return () if observed is None else (Observation(observed),)

        return callback

    def up() -> int:
        outcome = served.status().outcome
        return int(outcome is not None and outcome.succeeded)

    gauges: dict[MetricSpec, Callable[[CallbackOptions], Iterable[Observation]]] = {
        FEED_UP: feed_observation(up),
        FEED_LAST_SUCCESS: feed_observation(lambda: served.status().last_success_at),
        FEED_STATIONS: feed_observation(lambda: served.counts()[0]),
        FEED_CONNECTORS: feed_observation(lambda: served.counts()[1]),
    }
    if served.observations is not None:
        prepared = served.observations

        def snapshot_observations(
            select: Callable[[PreparedObservations], Sequence[Observation]],
        ) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def callback(_: CallbackOptions) -> Iterable[Observation]:
                observations = prepared()
                return select(observations) if observations is not None else ()

            return callback

        gauges |= {
            CONNECTOR_STATE: snapshot_observations(lambda ready: ready.connector_state),
            CONNECTOR_DETAILED_STATE: snapshot_observations(lambda ready: ready.connector_detailed_state),
            CONNECTOR_MAX_POWER: snapshot_observations(lambda ready: ready.connector_max_power),
            STATION_INFO: snapshot_observations(lambda ready: ready.station_info),
        }
    for spec, callback in gauges.items():
        meter.create_observable_gauge(spec.name, [callback], spec.unit, spec.description)
    meter.create_observable_counter(
        METRIC_OVERFLOW.name, [lambda _: overflow.observations()], METRIC_OVERFLOW.unit, METRIC_OVERFLOW.description
    )
    return provider


if __name__ == "__main__":
    print(metrics_table_markdown(), end="")
