"""The OpenTelemetry metrics SDK wiring: the meter provider, callbacks that return what the holder serves
(one publication pinned per collection), overflow counting and the push health of OTLP exports."""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.metrics import Asynchronous, CallbackOptions, Observation
from opentelemetry.sdk.metrics import Exemplar, ExemplarReservoir, MeterProvider
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
from otel_chargy.model import SimpleState
from otel_chargy.outcome import Outcome, SignalHealth
from otel_chargy.parse import DEFAULT_MAX_CONNECTORS, ISSUE_KINDS

if TYPE_CHECKING:
    from otel_chargy.holder import Served

logger = logging.getLogger(__name__)

METER_NAME = "otel_chargy"


def series_limit(max_connectors: int) -> int:
    """The attribute sets one metric may hold in the SDK before it folds points into an overflow series.

    The widest family is a connector's state set (one series per simple state); every other one has a
    series per connector or fewer, or per station (at most half as many stations as connectors, parse.py).
    Twice that: the sets of one collection are released only after the next collection has observed its
    own (PushCollections), so a feed that renames every connector holds both for a moment."""
    return 2 * max_connectors * len(SimpleState)


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


_SDK_VERSION = importlib.metadata.version("opentelemetry-sdk")


class _CyclicGcPause:
    """Pauses Python's cyclic garbage collector while any collection of a push reader runs (concurrent ones
    counted), and gives it back as it was found."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._was_enabled = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            if self._running == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0 and self._was_enabled:
                    gc.enable()


_GC_PAUSE = _CyclicGcPause()


class PushCollections(MetricReader):
    """Mixed into a push reader: what otel-chargy adds to the SDK's collections, written against
    opentelemetry-sdk 1.45.2 and checked by tests/test_metrics.py (which fails if an upgrade changes
    what they rely on).

    - After each collection, what the SDK holds for an attribute set the collection did not observe is
      released, so that memory follows the network in service, not every label value a feed ever
      showed. The SDK keeps the aggregation of every set an asynchronous instrument ever observed under
      cumulative temporality (`MetricReaderStorage._new_view_instrument_match` resets only synchronous
      instruments under delta) and has no setting to release them: this keeps, in the reader's storage
      (`_ViewInstrumentMatch._attributes_aggregation`), the aggregations whose data point the collection
      exported.
    - The cyclic garbage collector pauses while the SDK collects (the callbacks and the data points, not
      the export). The SDK allocates some fifteen objects a data point; at ten times today's network,
      millions, which set off full passes over the million objects the SDK and the publication hold: a
      fifth of the collection's CPU (benchmarks/README.md). None of them forms a cycle: reference
      counting frees them; cycles other threads leave meanwhile wait for the next pass."""

    _release_warned = False
    _consumer: Any = None
    """The provider's measurement consumer, whose `collect` this reader's collections call."""

    def _set_collect_callback(self, func: Any) -> None:  # type: ignore[misc]
        self._consumer = getattr(func, "__self__", None)
        if func is None:
            super()._set_collect_callback(None)
            return

        def collect_with_gc_paused(reader: MetricReader, *args: Any, **kwargs: Any) -> Any:
            with _GC_PAUSE.paused():
                return func(reader, *args, **kwargs)

        super()._set_collect_callback(collect_with_gc_paused)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if metrics_data is not None:
            self._release_unobserved(metrics_data)
        # The mixin always stands before a concrete reader in the MRO, whose method this reaches.
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)  # type: ignore[safe-super]

    def _release_unobserved(self, metrics_data: MetricsData) -> None:
        exported: dict[str, Sequence[Any]] = {
            metric.name: metric.data.data_points
            for resource_metrics in metrics_data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        }
        try:
            consumer = self._consumer
            storage = consumer._reader_storages[self]
            with consumer._lock:  # no collection of this provider's readers meanwhile
                for instrument, matches in list(storage._instrument_view_instrument_matches.items()):
                    if not isinstance(instrument, Asynchronous):
                        continue
                    for match in matches:
                        points = exported.get(match._name, ())
                        # Every exported point has its aggregation: as many held as exported, none to release.
                        if len(match._attributes_aggregation) <= len(points):
                            continue
                        observed = {id(point.attributes) for point in points}
                        with match._lock:
                            # A new dict: a dict does not shrink when entries are deleted.
                            match._attributes_aggregation = {
                                key: aggregation
                                for key, aggregation in match._attributes_aggregation.items()
                                if id(aggregation._attributes) in observed
                            }
        except (AttributeError, KeyError, TypeError) as error:
            if not PushCollections._release_warned:
                PushCollections._release_warned = True
                logger.warning(
                    "attribute sets no longer observed cannot be released: memory grows with every label value the "
                    "feed shows",
                    extra={"opentelemetry_sdk": _SDK_VERSION, "error": repr(error)},
                )


def held_attribute_sets_by_metric(reader: MetricReader) -> dict[str, int]:
    """How many attribute sets the SDK holds for `reader`, by metric (for the soak and the tests)."""
    consumer = reader._consumer if isinstance(reader, PushCollections) else reader._collect.__self__  # type: ignore[union-attr]
    storage = consumer._reader_storages[reader]
    return {
        match._name: len(match._attributes_aggregation)
        for matches in storage._instrument_view_instrument_matches.values()
        for match in matches
    }


_NONE: list[Exemplar] = []  # shared: nothing adds to a point's exemplars once collected


class _NoExemplars(ExemplarReservoir):
    """The exemplar reservoir of the observable instruments, one for all their attribute sets: a callback
    runs outside any trace, so there is no exemplar to keep, while the SDK's default reservoir costs
    memory for every attribute set and CPU for every point of every collection."""

    def offer(self, value: int | float, time_unix_nano: int, attributes: Any, context: Context) -> None:
        pass

    def collect(self, point_attributes: Any) -> list[Exemplar]:
        return _NONE


_NO_EXEMPLARS = _NoExemplars()


def _no_exemplars(_: Any) -> Callable[..., ExemplarReservoir]:
    return lambda **_: _NO_EXEMPLARS


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


_SYNCHRONOUS = (FEED_REFRESHES, FEED_REFRESH_DURATION, FEED_PARSE_ISSUES)
"""Recorded by RefreshRecorder, inside the refresh's span; every other metric is observed by a callback."""


def _views(max_connectors: int) -> list[View]:
    # One view per instrument: an instrument matched by two views would be exported twice.
    return [
        View(
            instrument_name=spec.name,
            aggregation=(
                ExplicitBucketHistogramAggregation(REFRESH_DURATION_BUCKETS_S) if spec.kind is Kind.HISTOGRAM else None
            ),
            exemplar_reservoir_factory=None if spec in _SYNCHRONOUS else _no_exemplars,
            aggregation_cardinality_limit=series_limit(max_connectors),
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
    max_connectors: int = DEFAULT_MAX_CONNECTORS,
) -> MeterProvider:
    """A MeterProvider with the feed-health instruments and the snapshot metrics in `snapshot_metrics`;
    each metric holds at most series_limit(max_connectors) attribute sets."""
    # Shut down by the service, within a bound; not again at exit.
    provider = MeterProvider(
        metric_readers=readers, resource=resource, views=_views(max_connectors), shutdown_on_exit=False
    )
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
