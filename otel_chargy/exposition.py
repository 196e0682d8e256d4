"""The Prometheus text of the metrics, rendered once per change and served from memory."""

from __future__ import annotations

import gzip
import threading
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from otel_chargy.holder import SnapshotHolder
from otel_chargy.metrics import OverflowTally, PreparedObservations


class CountingPrometheusReader(PrometheusMetricReader):
    """The SDK's Prometheus reader on a registry of its own, counting overflow points as they pass."""

    def __init__(self, overflow: OverflowTally) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # No otel_scope_* labels: the series keep the original exporter's label sets.
        super().__init__(disable_target_info=False, scope_info_enabled=False, registry=self.registry)
        self._overflow = overflow

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if metrics_data is not None:
            self._overflow.count(metrics_data)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)


class Exposition:
    """Every metric changes only when a refresh ends or the snapshot goes stale, so a scrape in between
    gets the bytes the reader produced for the first scrape after that change."""

    def __init__(self, reader: CountingPrometheusReader, holder: SnapshotHolder[PreparedObservations]) -> None:
        self._reader = reader
        self._holder = holder
        # The reader's collector is not safe for concurrent collections: one render at a time.
        self._lock = threading.Lock()
        self._version: object = None
        self._rendered: dict[tuple[str, bool], bytes] = {}

    def render(self, accept: str | None, accept_encoding: str | None) -> tuple[bytes, str, bool]:
        """(body, content type, gzipped) for a request with these headers."""
        encoder, content_type = choose_encoder(accept or "")
        gzipped = "gzip" in (accept_encoding or "")
        key = (content_type, gzipped)
        with self._lock:
            version = self._holder.version
            if version != self._version:
                self._version = version
                self._rendered.clear()
            body = self._rendered.get(key)
            if body is None:
                plain = self._rendered.get((content_type, False))
                if plain is None:
                    plain = self._rendered[(content_type, False)] = encoder(self._reader.registry)
                body = self._rendered[key] = gzip.compress(plain, compresslevel=6) if gzipped else plain
        return body, content_type, gzipped
