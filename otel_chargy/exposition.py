"""The Prometheus endpoint's bytes: the snapshot text a publication rendered once (render.py), then the
feed-health metrics from the SDK's Prometheus reader, both served from memory. A scrape only joins
the two, from the same publication, and the response (and its gzip) is cached until something it
shows changes.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from otel_chargy.metrics import OverflowCounting, ServedFeed
from otel_chargy.render import NOTHING

_OPENMETRICS_MEDIA_TYPE = "application/openmetrics-text"
_GZIP_LEVEL = 4  # a fifth larger than level 6, at under half its cost


class CountingPrometheusReader(OverflowCounting, PrometheusMetricReader):
    """The SDK's Prometheus reader on a registry of its own, counting overflow points as they pass."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # No otel_scope_* labels: the series keep the original exporter's label sets.
        super().__init__(disable_target_info=False, scope_info_enabled=False, registry=self.registry)


def _gzip(chunks: Sequence[bytes]) -> bytes:
    """The chunks as one gzip member, compressed one after another: never joined in memory."""
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing, mtime 0
    return b"".join([*(compressor.compress(chunk) for chunk in chunks), compressor.flush()])


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
                # No snapshot (none yet, or older than the maximum staleness): feed health only.
                publication = served.publication
                snapshot = publication.exposition if publication and publication.exposition else NOTHING
                counters = publication.counters if publication and publication.counters else NOTHING
                # By the media type alone: prometheus_client adds parameters (`; escaping=underscores`).
                openmetrics = content_type.split(";")[0].strip() == _OPENMETRICS_MEDIA_TYPE
                chunks = [*snapshot.chunks(openmetrics), *counters.chunks(openmetrics), live]
                if gzipped:
                    chunks = [_gzip(chunks)]
                response = self._responses[key] = Response(chunks, content_type, gzipped)
        return response
