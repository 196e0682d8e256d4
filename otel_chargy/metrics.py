"""The OpenTelemetry metrics SDK wiring: the meter provider, callbacks that return what the holder serves
(one publication pinned per collection), overflow counting and the push health of OTLP exports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from otel_chargy import __version__
from otel_chargy.catalog import (
    FEED_CONNECTORS,
    FEED_LAST_SUCCESS,
    FEED_PARSE_ISSUES,
    FEED_REFRESH_DURATION,
    FEED_REFRESHES,
    FEED_STATIONS,
    FEED_UP,
    METRIC_OVERFLOW,
    METRICS,
    OTLP_EXPORTS,
    SNAPSHOT_METRICS,
    Kind,
    MetricSpec,
)
from otel_chargy.outcome import Outcome, SignalHealth
from otel_chargy.parse import ISSUE_KINDS

if TYPE_CHECKING:
    from otel_chargy.holder import Served

METER_NAME = "otel_chargy"

# Sized for a 100,000-connector network: the SDK never frees the attribute sets of
# asynchronous instruments, so a detailed state that changes adds a set each time
# (100,000 connectors x ~12 states x 3 for renames and unknown states).
SERIES_LIMIT = 4_000_000

REFRESH_DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


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

    def __init__(self, providers: Sequence[MeterProvider], issue_kinds: Iterable[str] = ISSUE_KINDS) -> None:
        """`issue_kinds`: the parse issues of the feed's format, each exported at 0 from the start."""
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
        kinds = tuple(issue_kinds)
        for refreshes, issues in zip(self._refreshes, self._issues, strict=True):
            for outcome in Outcome:
                refreshes.add(0, {"outcome": outcome.value})
            for kind in kinds:
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


SIGNALS = ("metrics", "traces", "logs")


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
