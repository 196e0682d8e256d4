"""The OpenTelemetry plumbing: resource, metric readers, span and log exporters chosen by configuration,
OTLP exports kept within the receiver's limits and counted, and the one wiring of the metrics.

The logs SDK is still marked as in development in Python (its modules are underscored): this is the
one module that imports it, tested on the wire (tests/test_events.py) at the versions pyproject.toml pins.

Endpoints, headers, compression, timeouts, TLS and temporality come from the SDK's own
`OTEL_EXPORTER_OTLP_*` handling: the exporters are built without arguments for them.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import Attributes, AttributeValue

from otel_chargy import __version__
from otel_chargy.catalog import DETAIL_METRICS, SNAPSHOT_METRICS, Detail
from otel_chargy.config import Config
from otel_chargy.events import Event, EventLog, EventName
from otel_chargy.exposition import CountingPrometheusReader, Exposition
from otel_chargy.holder import SnapshotHolder
from otel_chargy.metrics import (
    OverflowCounting,
    OverflowTally,
    PushCollections,
    PushHealth,
    RefreshRecorder,
    ServedFeed,
    build_meter_provider,
)
from otel_chargy.parse import DEFAULT_MAX_CONNECTORS, ISSUE_KINDS
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor

logger = logging.getLogger(__name__)

# The OTLP receiver's defaults in the OpenTelemetry Collector: a gRPC message of at most 4 MiB,
# an HTTP body of at most 20 MiB, both counted after decompression.
MAX_REQUEST_BYTES = {"grpc": 4 * 1024 * 1024, "http/protobuf": 20 * 1024 * 1024}


def build_resource() -> Resource:
    """otel-chargy's identity, which OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override."""
    defaults = {"service.name": "otel-chargy", "service.version": __version__, "service.instance.id": str(uuid.uuid4())}
    return Resource.create(defaults).merge(OTELResourceDetector().detect())


class CountingPeriodicReader(OverflowCounting, PushCollections, PeriodicExportingMetricReader):
    """The SDK's push reader, counting overflow points as they pass and releasing the attribute sets
    each collection did not observe."""

    def __init__(self, exporter: MetricExporter, export_interval_s: float, export_timeout_s: float) -> None:
        super().__init__(
            exporter, export_interval_millis=export_interval_s * 1000, export_timeout_millis=export_timeout_s * 1000
        )


# Upper bounds of the protobuf encoding (OTLP metrics.proto), so that a request estimated under the
# limit is under it. A data point: its tag and length, three fixed64 (times, value), flags.
_POINT_BYTES = 40
_HISTOGRAM_BYTES = 64  # count, sum, min, max, and the tags and lengths of the packed buckets and bounds
_NON_TEXT_VALUE_BYTES = 10
_HEADER_BYTES = 64


def _text_bytes(text: str | None) -> int:
    if not text:
        return 0
    return len(text) if text.isascii() else len(text.encode())


def _attributes_bytes(attributes: Mapping[str, Any] | None) -> int:
    if not attributes:
        return 0
    total = 0
    for key, value in attributes.items():
        size = _text_bytes(key) + (_text_bytes(value) if isinstance(value, str) else _NON_TEXT_VALUE_BYTES)
        # Four tags and four length prefixes (KeyValue, key, AnyValue, string): a byte each while the
        # attribute is short, at most three bytes below 2 MiB, five beyond.
        total += size + (8 if size < 100 else 16 if size < 2**21 - 64 else 24)
    return total


def _point_bytes(point: Any) -> int:
    size = _POINT_BYTES + _attributes_bytes(point.attributes)
    if isinstance(point, HistogramDataPoint):
        size += _HISTOGRAM_BYTES + 8 * (len(point.bucket_counts) + len(point.explicit_bounds))
    return size


def _metric_header_bytes(resource_metrics: ResourceMetrics, scope_metrics: ScopeMetrics, metric: Metric) -> int:
    """A metric, with its scope and resource as if it were the only one of them in the request."""
    scope = scope_metrics.scope
    return (
        3 * _HEADER_BYTES
        + _attributes_bytes(resource_metrics.resource.attributes)
        + _text_bytes(resource_metrics.schema_url)
        + _text_bytes(scope.name)
        + _text_bytes(scope.version)
        + _text_bytes(scope_metrics.schema_url)
        + _text_bytes(metric.name)
        + _text_bytes(metric.description)
        + _text_bytes(metric.unit)
    )


_Point = tuple[ResourceMetrics, ScopeMetrics, Metric, Any]


def split_metrics(metrics_data: MetricsData, max_request_bytes: int) -> list[MetricsData]:
    """`metrics_data` as requests whose encoding stays under `max_request_bytes` (a single data point
    larger than that goes alone). Points keep their order; metrics, scopes and the resource repeat."""
    requests: list[list[_Point]] = [[]]
    size = 0
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                header = _metric_header_bytes(resource_metrics, scope_metrics, metric)
                in_request = False
                for point in metric.data.data_points:
                    cost = _point_bytes(point) + (0 if in_request else header)
                    if requests[-1] and size + cost > max_request_bytes:
                        requests.append([])
                        size, cost = 0, _point_bytes(point) + header
                    requests[-1].append((resource_metrics, scope_metrics, metric, point))
                    size += cost
                    in_request = True
    if not requests[-1]:
        return [metrics_data]
    return [_assemble(points) for points in requests]


def _assemble(points: list[_Point]) -> MetricsData:
    def grouped(items: list[_Point], level: int) -> Iterator[tuple[Any, list[_Point]]]:
        for _, group in itertools.groupby(items, key=lambda item: id(item[level])):
            members = list(group)
            yield members[0][level], members

    return MetricsData(
        [
            replace(
                resource_metrics,
                scope_metrics=[
                    replace(
                        scope_metrics,
                        metrics=[
                            replace(metric, data=replace(metric.data, data_points=[item[3] for item in items]))
                            for metric, items in grouped(scope_items, 2)
                        ],
                    )
                    for scope_metrics, scope_items in grouped(resource_items, 1)
                ],
            )
            for resource_metrics, resource_items in grouped(points, 0)
        ]
    )


class _ExporterFailures(logging.Handler):
    """Takes the OTLP exporters' own log records: each failure is logged once by otel-chargy, with
    the exporter's last word on it as the reason (see _failure_reason)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._last = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        self._last.message = record.getMessage()

    def take(self) -> str | None:
        message: str | None = getattr(self._last, "message", None)
        self._last.message = None
        return message


_FAILURES = _ExporterFailures()
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp"


def _capture_exporter_logs() -> None:
    """Call once the exporters are imported. Their loggers also drop a message that repeats the last
    one within 20 s: the traces exporter's failure would hide the metrics exporter's reason, and the
    repeats are limited in otel-chargy's log anyway."""
    exporter_logger = logging.getLogger(_EXPORTER_LOGGER)
    if _FAILURES not in exporter_logger.handlers:
        exporter_logger.addHandler(_FAILURES)
        exporter_logger.propagate = False
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(_EXPORTER_LOGGER):
            logging.getLogger(name).filters.clear()


def _failure_reason(message: str | None) -> str:
    """The part of the exporter's message that says why: the gRPC details or the HTTP reason."""
    if message is None:
        return "the exporter gave no reason"
    lowered = message.lower()
    for marker in ("error details: ", "reason: "):
        start = lowered.rfind(marker)
        if start >= 0 and message[start + len(marker) :].strip():
            return message[start + len(marker) :].strip()
    return message


class _Outcomes:
    """Records one export's outcome in the push health and, on failure, logs it: the log's repeat
    limiter (logs.py) lets one line a minute through per signal."""

    def __init__(self, signal: str, health: PushHealth) -> None:
        self._signal = signal
        self._health = health
        self._last_reason: str | None = None

    def record(self, succeeded: bool, requests: int = 1) -> None:
        message = _FAILURES.take()
        if succeeded:
            self._health.record(self._signal, None)
            return
        # The SDK drops repeats of a message within 20 s before any handler sees them: keep the last reason.
        reason = _failure_reason(message) if message is not None or self._last_reason is None else self._last_reason
        self._last_reason = reason
        self._health.record(self._signal, reason)
        # The reason is a field, not the message: the limiter then lets one line a minute through per signal,
        # carrying the latest reason, however the exporter words its retries and timeouts.
        logger.warning(f"{self._signal} export failed", extra={"reason": reason, "requests": requests})


class BoundedMetricExporter(MetricExporter):
    """An OTLP metric exporter whose exports go as requests under the receiver's size limit, counted
    in the push health. A collection is one export whatever its size; its requests go one after
    another, and the first failure ends the export (the receiver is likely to refuse the rest too)."""

    def __init__(self, exporter: MetricExporter, max_request_bytes: int, health: PushHealth) -> None:
        # The reader asks the exporter for its temporality (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE).
        super().__init__(
            preferred_temporality=getattr(exporter, "_preferred_temporality", None),
            preferred_aggregation=getattr(exporter, "_preferred_aggregation", None),
        )
        self._exporter = exporter
        self._max_request_bytes = max_request_bytes
        self._outcomes = _Outcomes("metrics", health)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        requests = split_metrics(metrics_data, self._max_request_bytes)
        sent = 0
        result = MetricExportResult.SUCCESS
        for request in requests:
            result = self._exporter.export(request, timeout_millis=timeout_millis)
            sent += 1
            if result is not MetricExportResult.SUCCESS:
                break
        self._outcomes.record(result is MetricExportResult.SUCCESS, sent)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._exporter.shutdown(timeout_millis=timeout_millis)


class RedactingSpanExporter(SpanExporter):
    """Every span leaves with its texts redacted: name, attributes, status description and events (an
    exception's message and stack trace), whatever put a secret there (a feed that echoes its key)."""

    def __init__(self, exporter: SpanExporter, redactor: Redactor) -> None:
        self._exporter = exporter
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export([self._redacted(span) for span in spans])

    def _redacted(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, self._redactor(status.description))
        return ReadableSpan(
            name=self._redactor(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=[
                SpanEvent(self._redactor(event.name), self._attributes(event.attributes), event.timestamp)
                for event in span.events
            ],
            links=[Link(link.context, self._attributes(link.attributes)) for link in span.links],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes: Attributes) -> dict[str, AttributeValue]:
        redacted: dict[str, AttributeValue] = {}
        for name, value in (attributes or {}).items():
            if isinstance(value, str):
                redacted[name] = self._redactor(value)
            elif isinstance(value, Sequence) and not isinstance(value, bytes):
                redacted[name] = [self._redactor(item) if isinstance(item, str) else item for item in value]
            else:
                redacted[name] = value
        return redacted

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._exporter.shutdown()


class CountedSpanExporter(SpanExporter):
    """An OTLP span exporter whose exports are counted in the push health."""

    def __init__(self, exporter: SpanExporter, health: PushHealth) -> None:
        self._exporter = exporter
        self._outcomes = _Outcomes("traces", health)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._exporter.export(spans)
        self._outcomes.record(result is SpanExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._exporter.shutdown()


class CountedLogExporter(LogRecordExporter):
    """An OTLP log exporter whose exports are counted in the push health."""

    def __init__(self, exporter: LogRecordExporter, health: PushHealth) -> None:
        self._exporter = exporter
        self._outcomes = _Outcomes("logs", health)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self._exporter.export(batch)
        self._outcomes.record(result is LogRecordExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]


def _otlp_metric_exporter(protocol: str) -> MetricExporter:
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        # Requests are sized by BoundedMetricExporter; the SDK's own cap (64 MiB, drop) stays as a backstop.
        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

    return GrpcExporter()


def _otlp_span_exporter(protocol: str) -> SpanExporter:
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter()


def _otlp_log_exporter(protocol: str) -> LogRecordExporter:
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

    return GrpcExporter()


def pushed_signals(config: Config) -> list[str]:
    """The signals that go out over OTLP: those whose exports are counted."""
    exporters = {"metrics": config.metrics_exporters, "traces": config.traces_exporters, "logs": config.logs_exporters}
    return [signal for signal, names in exporters.items() if "otlp" in names]


def build_metric_readers(
    config: Config, health: PushHealth
) -> tuple[CountingPrometheusReader | None, list[MetricReader]]:
    """The readers of OTEL_METRICS_EXPORTER: the Prometheus one (if chosen) and the push readers, whose
    OTLP requests stay under --otlp.max-request-bytes, by default the Collector's limit for the protocol."""
    prometheus: CountingPrometheusReader | None = None
    readers: list[MetricReader] = []
    for name in config.metrics_exporters:
        if name == "prometheus":
            prometheus = CountingPrometheusReader()
        elif name == "otlp":
            protocol = config.otlp_metrics_protocol
            exporter = BoundedMetricExporter(
                _otlp_metric_exporter(protocol), config.otlp_max_request_bytes or MAX_REQUEST_BYTES[protocol], health
            )
            _capture_exporter_logs()
            readers.append(
                CountingPeriodicReader(exporter, config.metric_export_interval_s, config.metric_export_timeout_s)
            )
        elif name == "console":
            readers.append(
                CountingPeriodicReader(
                    ConsoleMetricExporter(), config.metric_export_interval_s, config.metric_export_timeout_s
                )
            )
    return prometheus, readers


def build_tracer_provider(
    config: Config, resource: Resource, health: PushHealth, redactor: Redactor | None = None
) -> TracerProvider:
    """Spans are always made; exported as configured, every text in them redacted."""
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for name in config.traces_exporters:
        exporter: SpanExporter
        if name == "otlp":
            exporter = CountedSpanExporter(_otlp_span_exporter(config.otlp_traces_protocol), health)
            _capture_exporter_logs()
        else:
            exporter = ConsoleSpanExporter()
        # The batch processor's queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE): a collector that is down costs no memory.
        provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exporter, redactor or Redactor([]))))
    return provider


def build_logger_provider(config: Config, resource: Resource, health: PushHealth) -> LoggerProvider | None:
    """The logs pipeline of the state-change events; None when OTEL_LOGS_EXPORTER sends them nowhere."""
    if not config.logs_exporters:
        return None
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for name in config.logs_exporters:
        exporter: LogRecordExporter
        if name == "otlp":
            exporter = CountedLogExporter(_otlp_log_exporter(config.otlp_logs_protocol), health)
            _capture_exporter_logs()
        else:
            exporter = ConsoleLogRecordExporter()
        # The queue is bounded (OTEL_BLRP_MAX_QUEUE_SIZE): a collector that is down costs no memory.
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider


# A problem is a warning, a recovery or a connector free again is news, the rest information.
_SEVERITY = {
    "unavailable": SeverityNumber.WARN,
    "unknown": SeverityNumber.WARN,
    "all unavailable": SeverityNumber.ERROR,
}


def severity_of(event: Event) -> SeverityNumber:
    if event.name is EventName.CONNECTOR_LEFT:
        return SeverityNumber.WARN
    return _SEVERITY.get(event.to_state or "", SeverityNumber.INFO)


def event_attributes(event: Event) -> dict[str, str]:
    """The event's labels, under the names of the metrics' labels (`station`, `device`, `connector`)."""
    attributes = {"station": event.station}
    for key, value in (
        ("device", event.device),
        ("connector", event.connector),
        ("state.from", event.from_state),
        ("state.to", event.to_state),
        ("raw_state.from", event.from_raw),
        ("raw_state.to", event.to_raw),
    ):
        if value is not None:
            attributes[key] = value
    return attributes


def event_body(event: Event) -> str:
    """One line for people, as a log viewer shows it."""
    where = " ".join(part for part in (event.station, event.device, event.connector) if part)
    if event.from_state is None:
        return f"{where}: appeared, {event.to_state}"
    if event.to_state is None:
        return f"{where}: left the feed, was {event.from_state}"
    return f"{where}: {event.from_state} -> {event.to_state}"


class EventEmitter:
    """Each event as an OpenTelemetry log record with its event name, given to the logs pipeline."""

    def __init__(self, provider: LoggerProvider) -> None:
        self._logger = provider.get_logger("otel_chargy.events", __version__)

    def __call__(self, events: Sequence[Event]) -> None:
        for event in events:
            self._logger.emit(
                timestamp=int(event.at * 1e9),
                severity_number=severity_of(event),
                severity_text=severity_of(event).name,
                body=event_body(event),
                attributes=event_attributes(event),
                event_name=event.name.value,
            )


@dataclass(frozen=True)
class MetricsWiring:
    """Everything between a refresh and the readers: the holder it publishes to, the providers whose
    callbacks read it, the recorder of refresh outcomes, and /metrics when Prometheus reads."""

    holder: SnapshotHolder
    providers: tuple[MeterProvider, ...]
    recorder: RefreshRecorder
    exposition: Exposition | None


def wire_metrics(
    *,
    prometheus: CountingPrometheusReader | None,
    push_readers: Sequence[MetricReader],
    resource: Resource,
    max_staleness_s: float,
    detail: Detail = Detail.CONNECTOR,
    push_health: PushHealth | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    events: EventLog | None = None,
    created_series: bool = True,
    issue_kinds: Iterable[str] = ISSUE_KINDS,
    max_connectors: int = DEFAULT_MAX_CONNECTORS,
) -> MetricsWiring:
    """The one wiring of the metrics, for the service, the tests and the benchmarks.

    Two providers, so that the Prometheus reader never collects the snapshot metrics, which are
    rendered once per snapshot instead (exposition.py); the push readers collect those of `detail`,
    each metric within the series limit of the largest network `max_connectors` (--max-connectors) allows."""
    observed = DETAIL_METRICS[detail] if push_readers else ()
    outputs = Outputs(observed=observed, exposition=prometheus is not None, created_series=created_series)
    holder = SnapshotHolder(outputs, max_staleness_s, monotonic, events)
    overflow = OverflowTally([spec.name for spec in SNAPSHOT_METRICS])
    providers: list[MeterProvider] = []
    exposition = None
    if prometheus is not None:
        prometheus.overflow = overflow
        feed = ServedFeed(holder.served)
        providers.append(
            build_meter_provider(
                [prometheus], resource, feed, overflow, push_health=push_health, max_connectors=max_connectors
            )
        )
        exposition = Exposition(prometheus, feed, lambda: push_health.generation if push_health else None)
    if push_readers:
        for reader in push_readers:
            if isinstance(reader, OverflowCounting):
                reader.overflow = overflow
        feed = ServedFeed(holder.served)
        providers.append(
            build_meter_provider(push_readers, resource, feed, overflow, observed, push_health, max_connectors)
        )
    return MetricsWiring(holder, tuple(providers), RefreshRecorder(providers, issue_kinds), exposition)


def shut_down(
    meter_providers: Sequence[MeterProvider],
    tracer_provider: TracerProvider,
    limit_s: float,
    logger_provider: LoggerProvider | None = None,
) -> None:
    """Flushes metrics, spans and events, but gives up after `limit_s`: a collector that is down must not
    hold the exit."""

    def flush() -> None:
        for meter_provider in meter_providers:
            meter_provider.shutdown(timeout_millis=limit_s * 1000)
        tracer_provider.shutdown()
        if logger_provider is not None:
            logger_provider.shutdown()

    flusher = threading.Thread(target=flush, name="telemetry-shutdown", daemon=True)
    flusher.start()
    flusher.join(limit_s)
    if flusher.is_alive():
        logger.warning("telemetry was not flushed in time; exiting without it", extra={"limit_s": limit_s})
