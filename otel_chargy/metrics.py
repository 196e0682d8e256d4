"""Every metric otel-chargy exports, defined once, and the callbacks that read the holder."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from otel_chargy import __version__
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import Outcome
from otel_chargy.parse import ISSUE_KINDS
from otel_chargy.usage import STATES, UsageTotals, UsageView

if TYPE_CHECKING:
    from otel_chargy.holder import Served

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
    "{connector}",
    f"1 for the connector's current simple state (available, charging, unavailable), 0 for the others. {_CACHED}",
    ("station", "device", "connector", "speed", "chargy_connector_state"),
)
CONNECTOR_DETAILED_STATE = MetricSpec(
    "chargy.connector.detailed_state_info",
    "chargy_connector_detailed_state_info",
    Kind.GAUGE,
    "{connector}",
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
    "{station}",
    f"Always 1; the station's address and coordinates (WGS 84, empty when unknown). {_CACHED}",
    ("station", "address", "latitude", "longitude"),
)
STATION_CONNECTORS = MetricSpec(
    "chargy.station.connectors",
    "chargy_station_connectors",
    Kind.GAUGE,
    "{connector}",
    f"Connectors of the station in each simple state (available, charging, unavailable). {_CACHED}",
    ("station", "chargy_connector_state"),
)
NETWORK_CONNECTORS = MetricSpec(
    "chargy.network.connectors",
    "chargy_network_connectors",
    Kind.GAUGE,
    "{connector}",
    f"Connectors of the whole network by speed and simple state. {_CACHED}",
    ("speed", "chargy_connector_state"),
)
FEED_UP = MetricSpec(
    "chargy.feed.up",
    "chargy_feed_up",
    Kind.GAUGE,
    "{feed}",
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

OTLP_EXPORTS = MetricSpec(
    "chargy.otlp.exports",
    "chargy_otlp_exports_total",
    Kind.COUNTER,
    "{export}",
    "OTLP exports by signal (metrics, traces) and how they ended (success, failure); "
    "a failed export's data is lost. 0 for a signal that is not pushed over OTLP.",
    ("signal", "outcome"),
)

_USAGE = (
    "Counted at each successful refresh from the states the feed showed at the one before; a gap longer than "
    "--max-staleness counts in no state."
)
STATION_CONNECTOR_TIME = MetricSpec(
    "chargy.station.connector",
    "chargy_station_connector_seconds_total",
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
    "chargy.network.connector",
    "chargy_network_connector_seconds_total",
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

USAGE_METRICS = (STATION_CONNECTOR_TIME, STATION_CHARGING_SESSIONS, NETWORK_CONNECTOR_TIME, NETWORK_CHARGING_SESSIONS)
"""The usage counters: kept across refreshes (usage.py), published with each snapshot."""

SNAPSHOT_METRICS = (
    CONNECTOR_STATE,
    CONNECTOR_DETAILED_STATE,
    CONNECTOR_MAX_POWER,
    STATION_INFO,
    STATION_CONNECTORS,
    NETWORK_CONNECTORS,
    *USAGE_METRICS,
)
"""The metrics read from the publication in service, in the order they are registered and rendered."""

METRICS: tuple[MetricSpec, ...] = (
    *SNAPSHOT_METRICS,
    FEED_UP,
    FEED_LAST_SUCCESS,
    FEED_REFRESHES,
    FEED_REFRESH_DURATION,
    FEED_STATIONS,
    FEED_CONNECTORS,
    FEED_PARSE_ISSUES,
    METRIC_OVERFLOW,
    OTLP_EXPORTS,
)


class Detail(StrEnum):
    """What OTLP pushes (--otlp.detail); each level holds the next one's metrics, and the feed health."""

    CONNECTOR = "connector"
    STATION = "station"
    NETWORK = "network"


DETAIL_METRICS: Mapping[Detail, tuple[MetricSpec, ...]] = {
    Detail.CONNECTOR: SNAPSHOT_METRICS,
    Detail.STATION: (STATION_INFO, STATION_CONNECTORS, NETWORK_CONNECTORS, *USAGE_METRICS),
    Detail.NETWORK: (NETWORK_CONNECTORS, NETWORK_CONNECTOR_TIME, NETWORK_CHARGING_SESSIONS),
}
"""The snapshot metrics pushed at each level."""

# The OTLP -> Prometheus translation of the Collector's Prometheus exporter (contrib 0.114.0):
# a unit becomes a suffix, `1` on a gauge `_ratio`, a `{...}` annotation nothing; counters gain `_total`.
_COLLECTOR_UNIT_SUFFIXES = {"s": "_seconds", "W": "_watts"}


def collector_prometheus_name(spec: MetricSpec) -> str:
    """The name the Collector's Prometheus exporter gives `spec` (before its namespace)."""
    name = spec.name.replace(".", "_")
    if spec.unit == "1" and spec.kind is Kind.GAUGE:
        name += "_ratio"
    name += _COLLECTOR_UNIT_SUFFIXES.get(spec.unit, "")
    return name + "_total" if spec.kind is Kind.COUNTER else name


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


def coordinate_label(degrees: float | None) -> str:
    """A latitude or longitude as the `chargy_station_info` label shows it: empty when unknown."""
    return "" if degrees is None else f"{degrees}"


def network_state_counts(snapshot: Snapshot) -> dict[str, dict[SimpleState, int]]:
    """Connectors by speed (slowest first) and simple state; every state of a speed present, 0 or not."""
    by_speed = Counter((connector.speed, connector.state) for _, _, connector in snapshot.connectors())
    speeds = sorted({speed for speed, _ in by_speed}, key=int)
    return {speed: {state: by_speed[speed, state] for state in SimpleState} for speed in speeds}


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
    for speed, counts in network_state_counts(snapshot).items():
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

    overflow: OverflowTally | None = None
    """Set by the wiring (telemetry.wire_metrics), which has one tally for all readers."""

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if metrics_data is not None and self.overflow is not None:
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


@dataclass(frozen=True, slots=True)
class SignalHealth:
    """How the OTLP exports of one signal went, for the log, /metrics and the landing page."""

    signal: str
    """`metrics` or `traces`."""
    exports: int = 0
    failed_exports: int = 0
    last_success_at: float | None = None
    last_failure_at: float | None = None
    last_failure_reason: str | None = None
    """What the exporter said about the last failure, e.g. `Received message larger than max (...)`."""


SIGNALS = ("metrics", "traces")


class PushHealth:
    """Export outcomes of each signal pushed over OTLP, recorded by the exporters' wrappers (telemetry.py)."""

    def __init__(self, pushed: Iterable[str]) -> None:
        self._pushed = tuple(pushed)
        # Every signal is counted from 0, so that an alert on failures works before the first export.
        self._signals = {signal: SignalHealth(signal) for signal in SIGNALS}
        self._generation = 0
        self._lock = threading.Lock()

    def record(self, signal: str, failure_reason: str | None, at: float | None = None) -> None:
        """One export ended: with `failure_reason` None it succeeded."""
        at = time.time() if at is None else at
        with self._lock:
            health = self._signals.get(signal, SignalHealth(signal))
            if failure_reason is None:
                health = replace(health, exports=health.exports + 1, last_success_at=at)
            else:
                health = replace(
                    health,
                    exports=health.exports + 1,
                    failed_exports=health.failed_exports + 1,
                    last_failure_at=at,
                    last_failure_reason=failure_reason,
                )
            self._signals[signal] = health
            self._generation += 1

    def status(self) -> tuple[SignalHealth, ...]:
        """One entry per signal pushed over OTLP (none when nothing is)."""
        with self._lock:
            return tuple(self._signals[signal] for signal in self._pushed)

    @property
    def generation(self) -> int:
        """Changes with every recorded export."""
        return self._generation

    def observations(self) -> list[Observation]:
        with self._lock:
            signals = list(self._signals.values())
        return [
            Observation(count, {"signal": health.signal, "outcome": outcome})
            for health in signals
            for outcome, count in (
                ("success", health.exports - health.failed_exports),
                ("failure", health.failed_exports),
            )
        ]


class ServedFeed:
    """What the callbacks of one MeterProvider read: one `Served` per collection.

    The SDK runs a provider's callbacks one after another, in registration order, under one lock:
    the first callback of a collection pins what the holder serves and the last one unpins it, so
    that every data point of a collection (and the feed-health gauges with them) comes from the
    same publication, while a refresh that lands meanwhile swaps freely."""

    def __init__(self, read: Callable[[], Served]) -> None:
        self.read = read
        self._given: Served | None = None
        self._pinned: Served | None = None

    def pin(self) -> None:
        self._pinned = self._given or self.read()

    def unpin(self) -> None:
        self._pinned = None

    @property
    def served(self) -> Served:
        return self._pinned or self.read()

    @contextmanager
    def holding(self, served: Served) -> Iterator[None]:
        """Collections inside this block show `served`: /metrics renders its cached snapshot text and the
        SDK's feed-health part from the same publication. The caller serialises the collections."""
        self._given = served
        try:
            yield
        finally:
            self._given = None


Callback = Callable[[CallbackOptions], Iterable[Observation]]


def build_meter_provider(
    readers: Sequence[MetricReader],
    resource: Resource,
    feed: ServedFeed,
    overflow: OverflowTally,
    snapshot_metrics: Sequence[MetricSpec] = (),
    push_health: PushHealth | None = None,
) -> MeterProvider:
    """A MeterProvider with the feed-health instruments and the snapshot metrics in `snapshot_metrics`."""
    # Shut down by the service, within a bound; not again at exit.
    provider = MeterProvider(metric_readers=readers, resource=resource, views=_views(), shutdown_on_exit=False)
    meter = provider.get_meter(METER_NAME, __version__)

    def feed_observation(value: Callable[[Served], float | None]) -> Callback:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            observed = value(feed.served)
            return () if observed is None else (Observation(observed),)

        return callback

    def snapshot_observations(spec: MetricSpec) -> Callback:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            publication = feed.served.publication
            return publication.observations.get(spec, ()) if publication is not None else ()

        return callback

    def up(served: Served) -> int:
        return int(served.status.outcome is not None and served.status.outcome.succeeded)

    def stations(served: Served) -> int:
        return len(served.publication.snapshot.stations) if served.publication else 0

    def connectors(served: Served) -> int:
        return served.publication.snapshot.connector_count if served.publication else 0

    ordered = [spec for spec in SNAPSHOT_METRICS if spec in snapshot_metrics]
    callbacks: list[tuple[MetricSpec, Callback]] = [(spec, snapshot_observations(spec)) for spec in ordered]
    callbacks += [
        (FEED_UP, feed_observation(up)),
        (FEED_LAST_SUCCESS, feed_observation(lambda served: served.status.last_success_at)),
        (FEED_STATIONS, feed_observation(stations)),
        (FEED_CONNECTORS, feed_observation(connectors)),
        (METRIC_OVERFLOW, lambda _: overflow.observations()),
    ]
    if push_health is not None:
        callbacks.append((OTLP_EXPORTS, lambda _: push_health.observations()))
    for index, (spec, callback) in enumerate(callbacks):
        pinned = _pinning(feed, callback, first=index == 0, last=index == len(callbacks) - 1)
        if spec.kind is Kind.COUNTER:
            meter.create_observable_counter(spec.name, [pinned], spec.unit, spec.description)
        else:
            meter.create_observable_gauge(spec.name, [pinned], spec.unit, spec.description)
    return provider


def _pinning(feed: ServedFeed, callback: Callback, *, first: bool, last: bool) -> Callback:
    if not (first or last):
        return callback

    def pinning(options: CallbackOptions) -> Iterable[Observation]:
        if first:
            feed.pin()
        try:
            return callback(options)
        finally:
            if last:
                feed.unpin()

    return pinning


if __name__ == "__main__":
    print(metrics_table_markdown(), end="")
