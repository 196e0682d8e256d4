"""The OpenTelemetry plumbing: resource, metric readers and span exporters, chosen by configuration.

Endpoints, headers, compression, timeouts, TLS and temporality come from the SDK's own
`OTEL_EXPORTER_OTLP_*` handling: the exporters are built without arguments for them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from otel_chargy import __version__
from otel_chargy.config import Config
from otel_chargy.exposition import CountingPrometheusReader
from otel_chargy.metrics import OverflowCounting, OverflowTally

logger = logging.getLogger(__name__)


def build_resource() -> Resource:
    """otel-chargy's identity, which OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override."""
    defaults = {"service.name": "otel-chargy", "service.version": __version__, "service.instance.id": str(uuid.uuid4())}
    return Resource.create(defaults).merge(OTELResourceDetector().detect())


class CountingPeriodicReader(OverflowCounting, PeriodicExportingMetricReader):
    """The SDK's push reader, counting overflow points as they pass."""

    def __init__(self, overflow: OverflowTally, exporter: MetricExporter, export_interval_s: float) -> None:
        super().__init__(exporter, export_interval_millis=export_interval_s * 1000)
        self.overflow = overflow


def _otlp_metric_exporter(protocol: str) -> MetricExporter:
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

    return GrpcExporter()


def _otlp_span_exporter(protocol: str) -> SpanExporter:
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter()


def build_metric_readers(
    config: Config, overflow: OverflowTally
) -> tuple[CountingPrometheusReader | None, list[MetricReader]]:
    """The readers of OTEL_METRICS_EXPORTER: the Prometheus one (if chosen) and the push readers."""
    prometheus: CountingPrometheusReader | None = None
    readers: list[MetricReader] = []
    for name in config.metrics_exporters:
        if name == "prometheus":
            prometheus = CountingPrometheusReader(overflow)
        elif name == "otlp":
            exporter = _otlp_metric_exporter(config.otlp_metrics_protocol)
            readers.append(CountingPeriodicReader(overflow, exporter, config.metric_export_interval_s))
        elif name == "console":
            readers.append(CountingPeriodicReader(overflow, ConsoleMetricExporter(), config.metric_export_interval_s))
    return prometheus, readers


def build_tracer_provider(config: Config, resource: Resource) -> TracerProvider:
    """Spans are always made (they carry the trace context of the feed request); exported as configured."""
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for name in config.traces_exporters:
        # The batch processor's queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE): a collector that is down costs no memory.
        exporter = _otlp_span_exporter(config.otlp_traces_protocol) if name == "otlp" else ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def shut_down(meter_providers: Sequence[MeterProvider], tracer_provider: TracerProvider, limit_s: float) -> None:
    """Flushes metrics and spans, but gives up after `limit_s`: a collector that is down must not hold the exit."""

    def flush() -> None:
        for meter_provider in meter_providers:
            meter_provider.shutdown(timeout_millis=limit_s * 1000)
        tracer_provider.shutdown()

    flusher = threading.Thread(target=flush, name="telemetry-shutdown", daemon=True)
    flusher.start()
    flusher.join(limit_s)
    if flusher.is_alive():
        logger.warning("telemetry was not flushed in time; exiting without it", extra={"limit_s": limit_s})
