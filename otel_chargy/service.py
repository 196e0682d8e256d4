"""Wiring: the parts of the data path, built from the configuration and run together."""

from __future__ import annotations

import logging
import resource
import threading
import time
from http.server import ThreadingHTTPServer

from otel_chargy import __version__
from otel_chargy.catalog import Detail
from otel_chargy.config import PAIRED_FORMATS, Config
from otel_chargy.events import EventLog
from otel_chargy.feeds import feed_parser, open_feed, open_paired_feed, parse_issue_kinds
from otel_chargy.fetch import DemoSource, FeedSource
from otel_chargy.health import push_health_of
from otel_chargy.history import RefreshHistory
from otel_chargy.metrics import PushHealth
from otel_chargy.model import Snapshot
from otel_chargy.paired import PairedFeed
from otel_chargy.parse import SizeBounds
from otel_chargy.redact import Redactor, redact_snapshot
from otel_chargy.refresh import Refresher
from otel_chargy.server import ClientLimits, Pages, make_server
from otel_chargy.telemetry import (
    EventEmitter,
    build_logger_provider,
    build_metric_readers,
    build_resource,
    build_tracer_provider,
    pushed_signals,
    shut_down,
    wire_metrics,
)

logger = logging.getLogger(__name__)

# A refresh still running at shutdown is abandoned after this long, and a flush of telemetry
# after the next: the process must end promptly, within 10 s of SIGTERM even with the collector down.
_SHUTDOWN_GRACE_S = 2.0
_TELEMETRY_FLUSH_LIMIT_S = 5.0
# Descriptors beyond one per client connection: the listening socket, the feed's connection and its watched
# duplicate, OTLP channels, the interpreter's own; measured at 5 to 10 (docs/security.md), doubled.
_DESCRIPTORS_BESIDE_CLIENTS = 20


def ensure_descriptors(max_connections: int) -> None:
    """Raises the soft limit on open files to what --web.max-connections needs, as far as the hard limit
    allows (Go programs such as node_exporter do the same); warns when the hard limit is short."""
    needed = max_connections + _DESCRIPTORS_BESIDE_CLIENTS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    if raised < needed:
        logger.warning(
            "the open-file limit is below what --web.max-connections needs: connections past it wait",
            extra={"limit": raised, "needed": needed, "web_max_connections": max_connections},
        )


class Service:
    def __init__(self, config: Config, redactor: Redactor) -> None:
        self._config = config
        resource = build_resource()
        self.push_health = PushHealth(pushed_signals(config))
        """How the OTLP exports of each signal went: for the landing page."""
        self._tracer_provider = build_tracer_provider(config, resource, self.push_health, redactor)
        tracer = self._tracer_provider.get_tracer("otel_chargy", __version__)
        # The feed is a third party: it learns a trace context only when the traces go somewhere.
        propagate = bool(config.traces_exporters)
        self._source: FeedSource | PairedFeed
        if config.demo:
            self._source = DemoSource()
        elif config.feed_format in PAIRED_FORMATS:
            self._source = open_paired_feed(config, tracer, propagate_trace_context=propagate)
        else:
            self._source = open_feed(config, config.feed_url, tracer, propagate_trace_context=propagate)
        events = EventLog(config.events_max)
        self._logger_provider = build_logger_provider(config, resource, self.push_health)
        if self._logger_provider is not None:
            events.subscribe(EventEmitter(self._logger_provider))
        prometheus_reader, push_readers = build_metric_readers(config, self.push_health)
        wiring = wire_metrics(
            prometheus=prometheus_reader,
            push_readers=push_readers,
            resource=resource,
            max_staleness_s=config.max_staleness_s,
            detail=Detail(config.otlp_detail),
            push_health=self.push_health,
            events=events,
            created_series=config.created_series,
            issue_kinds=parse_issue_kinds(config),
            max_connectors=config.max_connectors,
        )
        self.holder = wiring.holder
        self._meter_providers = wiring.providers
        history = RefreshHistory()

        # Redacted once as it is read, whatever the format: every output of the snapshot shows no secret a
        # feed echoed. The demo's generated network has no feed to echo one (75 ms a refresh for nothing).
        def redacted(snapshot: Snapshot) -> Snapshot:
            return snapshot if config.demo else redact_snapshot(snapshot, redactor)

        self._refresher = Refresher(
            self._source,
            self.holder,
            wiring.recorder,
            tracer,
            config.refresh_interval_s,
            SizeBounds(config.max_connectors),
            config.max_shrink,
            history,
            parse=feed_parser(config),
            prepare=redacted,
        )
        pages = Pages(
            self.holder,
            wiring.exposition,
            config.telemetry_path,
            self._source.description,
            redactor,
            history,
            grafana_url=config.grafana_url,
            push_health=lambda: push_health_of(self.push_health.status(), time.time()),
        )
        ensure_descriptors(config.web_max_connections)
        self._server: ThreadingHTTPServer = make_server(
            config.listen_address, pages, config.web_config, ClientLimits(max_connections=config.web_max_connections)
        )
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="http", daemon=True),
            threading.Thread(target=self._refresher.run, args=(self._stop,), name="refresh", daemon=True),
        ]

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
                "logs_exporters": ",".join(self._config.logs_exporters) or "none",
                "otlp_detail": self._config.otlp_detail,
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
        shut_down(self._meter_providers, self._tracer_provider, _TELEMETRY_FLUSH_LIMIT_S, self._logger_provider)
        logger.info("otel-chargy stopped")
