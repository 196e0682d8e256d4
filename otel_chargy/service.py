"""Wiring: the parts of the data path, built from the configuration and run together."""

from __future__ import annotations

import logging
import threading
from http.server import ThreadingHTTPServer

from otel_chargy import __version__
from otel_chargy.config import Config
from otel_chargy.exposition import Exposition, SnapshotExposition
from otel_chargy.feeds import feed_parser, open_feed
from otel_chargy.fetch import DemoSource, FeedSource
from otel_chargy.history import RefreshHistory
from otel_chargy.holder import RefreshStatus, SnapshotHolder
from otel_chargy.metrics import (
    SNAPSHOT_METRICS,
    OverflowTally,
    PreparedObservations,
    RefreshRecorder,
    ServedFeed,
    build_meter_provider,
)
from otel_chargy.parse import SizeBounds
from otel_chargy.publication import publisher
from otel_chargy.redact import Redactor
from otel_chargy.refresh import Refresher
from otel_chargy.server import ClientLimits, Pages, make_server
from otel_chargy.telemetry import build_metric_readers, build_resource, build_tracer_provider, shut_down

logger = logging.getLogger(__name__)

# A refresh still running at shutdown is abandoned after this long, and a flush of telemetry
# after the next: the process must end promptly, within 10 s of SIGTERM even with the collector down.
_SHUTDOWN_GRACE_S = 2.0
_TELEMETRY_FLUSH_LIMIT_S = 5.0


class Service:
    def __init__(self, config: Config, redactor: Redactor) -> None:
        self._config = config
        resource = build_resource()
        self._tracer_provider = build_tracer_provider(config, resource)
        tracer = self._tracer_provider.get_tracer("otel_chargy", __version__)
        self._source: FeedSource = (
            DemoSource()
            if config.demo
            # The feed is a third party: it learns a trace context only when the traces go somewhere.
            else open_feed(config, config.feed_url, tracer, propagate_trace_context=bool(config.traces_exporters))
        )
        overflow = OverflowTally([spec.name for spec in SNAPSHOT_METRICS])
        prometheus_reader, push_readers = build_metric_readers(config, overflow)
        self.holder = SnapshotHolder(
            publisher(observations=bool(push_readers), exposition=prometheus_reader is not None),
            config.max_staleness_s,
        )
        # Two providers, so that the Prometheus reader never collects the snapshot-sized metrics,
        # which are rendered once per snapshot instead (exposition.py); the push readers collect all.
        self._meter_providers = []
        if prometheus_reader is not None:
            served = ServedFeed(self._status, self._served_counts)
            self._meter_providers.append(build_meter_provider([prometheus_reader], resource, overflow, served))
        if push_readers:
            served = ServedFeed(self._status, self._served_counts, self._served_observations)
            self._meter_providers.append(build_meter_provider(push_readers, resource, overflow, served))
        recorder = RefreshRecorder(self._meter_providers)
        history = RefreshHistory()
        self._refresher = Refresher(
            self._source,
            self.holder,
            recorder,
            tracer,
            config.refresh_interval_s,
            SizeBounds(config.max_connectors),
            config.max_shrink,
            history,
            parse=feed_parser(config),
        )
        exposition = None
        if prometheus_reader is not None:
            exposition = Exposition(prometheus_reader, self._served_exposition, lambda: self.holder.version)
        pages = Pages(
            self.holder,
            exposition,
            config.telemetry_path,
            self._source.description,
            redactor,
            history,
            grafana_url=config.grafana_url,
        )
        self._server: ThreadingHTTPServer = make_server(
            config.listen_address, pages, config.web_config, ClientLimits(max_connections=config.web_max_connections)
        )
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="http", daemon=True),
            threading.Thread(target=self._refresher.run, args=(self._stop,), name="refresh", daemon=True),
        ]

    def _status(self) -> RefreshStatus:
        return self.holder.status

    def _served_counts(self) -> tuple[int, int]:
        published = self.holder.current
        return (published.prepared.station_count, published.prepared.connector_count) if published else (0, 0)

    def _served_observations(self) -> PreparedObservations | None:
        published = self.holder.current
        return published.prepared.observations if published else None

    def _served_exposition(self) -> SnapshotExposition | None:
        published = self.holder.current
        return published.prepared.exposition if published else None

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        logger.info(
            "otel-chargy started",
            extra={
                "version": __version__,
                "listen_address": str(self._config.listen_address),
                "tls": self._config.web_config.tls is not None,
                "basic_auth": bool(self._config.web_config.basic_auth_users),
                "telemetry_path": self._config.telemetry_path,
                "feed": self._source.description,
                "refresh_interval_s": self._config.refresh_interval_s,
                "metrics_exporters": ",".join(self._config.metrics_exporters) or "none",
                "traces_exporters": ",".join(self._config.traces_exporters) or "none",
            },
        )

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        refresh_thread = self._threads[1]
        refresh_thread.join(_SHUTDOWN_GRACE_S)
        if not refresh_thread.is_alive():
            self._source.close()
        shut_down(self._meter_providers, self._tracer_provider, _TELEMETRY_FLUSH_LIMIT_S)
        logger.info("otel-chargy stopped")
