"""The Prometheus endpoint's bytes: the snapshot text a publication rendered once (render.py), then the
feed-health metrics from the SDK's Prometheus reader, both served from memory. A scrape only joins
the two, from the same publication, and the response (and its gzip) is cached until something it
shows changes.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from otel_chargy.metrics import OverflowCounting, ServedFeed
from otel_chargy.render import SnapshotExposition

_OPENMETRICS_MEDIA_TYPE = "application/openmetrics-text"
_GZIP_LEVEL = 4  # a fifth larger than level 6, at under half its cost


class CountingPrometheusReader(OverflowCounting, PrometheusMetricReader):
    """The SDK's Prometheus reader on a registry of its own, counting overflow points as they pass."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # No otel_scope_* labels: the series keep the original exporter's label sets.
        super().__init__(disable_target_info=False, scope_info_enabled=False, registry=self.registry)


# Served while no snapshot is (none yet, or older than the maximum staleness): feed health only.
_NO_SNAPSHOT = SnapshotExposition(b"", b"")


@dataclass(frozen=True)
class Response:
    chunks: Sequence[bytes]
    content_type: str
    gzipped: bool


class Exposition:
    """What /metrics answers: the snapshot text of the publication in service, then the feed-health part
    the SDK's reader renders for that same publication.

    Every metric changes only when a refresh ends, the snapshot goes stale or an export is recorded
    (`changes`), so each response is rendered, and gzipped, once per change."""

    def __init__(
        self, reader: CountingPrometheusReader, feed: ServedFeed, changes: Callable[[], object] = lambda: None
    ) -> None:
        self._reader = reader
        self._feed = feed
        self._changes = changes
        # The reader's collector is not safe for concurrent collections: one render at a time.
        self._lock = threading.Lock()
        self._rendered_version: object = None
        self._responses: dict[tuple[str, bool], Response] = {}

    def render(self, accept: str | None, accept_encoding: str | None) -> Response:
        encoder, content_type = choose_encoder(accept or "")
        gzipped = "gzip" in (accept_encoding or "")
        key = (content_type, gzipped)
        with self._lock:
            served = self._feed.read()
            version = (served.version, self._changes())
            if version != self._rendered_version:
                self._rendered_version = version
                self._responses.clear()
            response = self._responses.get(key)
            if response is None:
                with self._feed.holding(served):
                    live = encoder(self._reader.registry)
                publication = served.publication
                snapshot = publication.exposition if publication and publication.exposition else _NO_SNAPSHOT
                # By the media type alone: prometheus_client adds parameters (`; escaping=underscores`).
                openmetrics = content_type.split(";")[0].strip() == _OPENMETRICS_MEDIA_TYPE
                body = snapshot.openmetrics if openmetrics else snapshot.text
                chunks = (gzip.compress(body + live, _GZIP_LEVEL, mtime=0),) if gzipped else (body, live)
                response = self._responses[key] = Response(chunks, content_type, gzipped)
        return response
