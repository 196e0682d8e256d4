"""The service's data path in process: the real HttpSource, Refresher, SnapshotHolder, metrics and
Prometheus exposition, wired as service.py wires them, with spans kept in memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from otel_chargy.config import Config
from otel_chargy.exposition import CountingPrometheusReader, Exposition
from otel_chargy.feeds import open_paired_feed
from otel_chargy.fetch import ACCEPT, MAX_PAGES, FeedSource, HttpSource
from otel_chargy.model import Snapshot
from otel_chargy.paired import PairedFeed
from otel_chargy.parse import SizeBounds
from otel_chargy.refresh import DEFAULT_MAX_SHRINK, Refresher
from otel_chargy.telemetry import build_resource, wire_metrics


class Rig:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        max_bytes: int = 50_000_000,
        max_staleness_s: float = 3600,
        refresh_interval_s: float = 60,
        max_shrink: float = DEFAULT_MAX_SHRINK,
        monotonic: Callable[[], float] | None = None,
        source: FeedSource | None = None,
        propagate_trace_context: bool = False,
        paged: bool = False,
        max_pages: int = MAX_PAGES,
        accept: str = ACCEPT,
        parse: Callable[[bytes], Snapshot] | None = None,
        paired: Config | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`paged`, `max_pages`, `accept`: the HttpSource's, as for an OCPI feed; `parse`: the format's parser.
        `paired`: a datex2 or oicp configuration, whose two parts are read as the service reads them (the
        static part's schedule by `clock`)."""
        self.span_exporter = InMemorySpanExporter()
        self._tracer_provider = TracerProvider()
        self._tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        tracer = self._tracer_provider.get_tracer("otel_chargy")
        self.paired: PairedFeed | None = None
        if paired is not None:
            self.paired = open_paired_feed(paired, tracer, clock=clock) if clock else open_paired_feed(paired, tracer)
        self.source = source or HttpSource(
            url,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
            tracer=tracer,
            propagate_trace_context=propagate_trace_context,
            paged=paged,
            max_pages=max_pages,
            accept=accept,
        )
        holder_arguments: dict[str, Any] = {"monotonic": monotonic} if monotonic else {}
        wiring = wire_metrics(
            prometheus=CountingPrometheusReader(),
            push_readers=(),
            resource=build_resource(),
            max_staleness_s=max_staleness_s,
            **holder_arguments,
        )
        self.holder = wiring.holder
        self._meter_providers = wiring.providers
        self.refresher = Refresher(
            self.paired or self.source,
            self.holder,
            wiring.recorder,
            tracer,
            refresh_interval_s,
            SizeBounds(paired.max_connectors if paired else SizeBounds().connectors),
            max_shrink=max_shrink,
            parse=parse,
        )
        assert wiring.exposition is not None
        self.exposition: Exposition = wiring.exposition

    def metrics_text(self) -> str:
        """What /metrics would answer, byte for byte."""
        return b"".join(self.exposition.render(None, None).chunks).decode()

    def metrics(self) -> dict[str, Metric]:
        return {family.name: family for family in text_string_to_metric_families(self.metrics_text())}

    def sample(self, family: str, **labels: str) -> float | None:
        metrics = self.metrics()
        name = family.removesuffix("_total")
        for sample in metrics[name].samples if name in metrics else []:
            if sample.name == family and sample.labels == labels:
                return float(sample.value)
        return None

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.span_exporter.get_finished_spans() if span.name == name]

    def close(self) -> None:
        self.source.close()
        if self.paired is not None:
            self.paired.close()
        for provider in self._meter_providers:
            provider.shutdown()
        self._tracer_provider.shutdown()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
