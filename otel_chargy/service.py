"""Wiring: the parts of the data path, built from the configuration and run together."""

from __future__ import annotations

import logging
import threading
import uuid
from http.server import ThreadingHTTPServer

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_chargy import __version__
from otel_chargy.config import Config
from otel_chargy.exposition import CountingPrometheusReader, Exposition
from otel_chargy.fetch import DemoSource, FeedSource, open_source
from otel_chargy.holder import SnapshotHolder
from otel_chargy.metrics import (
    SNAPSHOT_METRICS,
    OverflowTally,
    build_meter_provider,
    prepare_observations,
)
from otel_chargy.redact import Redactor
from otel_chargy.refresh import Refresher
from otel_chargy.server import Pages, make_server

logger = logging.getLogger(__name__)

# A refresh still running at shutdown is abandoned after this long: the process must end promptly.
_SHUTDOWN_GRACE_S = 2.0


def build_resource() -> Resource:
    """otel-chargy's identity, which OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override."""
    defaults = {"service.name": "otel-chargy", "service.version": __version__, "service.instance.id": str(uuid.uuid4())}
    return Resource.create(defaults).merge(OTELResourceDetector().detect())


class Service:
    def __init__(self, config: Config, redactor: Redactor) -> None:
        self._config = config
        resource = build_resource()
        self._tracer_provider = TracerProvider(resource=resource)
        tracer = self._tracer_provider.get_tracer("otel_chargy", __version__)
        self._source: FeedSource = (
            DemoSource()
            if config.demo
            else open_source(
                config.kml_url, timeout_s=config.fetch_timeout_s, max_bytes=config.max_bytes, tracer=tracer
            )
        )
        self.holder = SnapshotHolder(prepare_observations, config.max_staleness_s)
        overflow = OverflowTally([spec.name for spec in SNAPSHOT_METRICS])
        reader = CountingPrometheusReader(overflow)
        self._meter_provider, recorder = build_meter_provider(self.holder, [reader], resource, overflow)
        self._refresher = Refresher(self._source, self.holder, recorder, tracer, config.refresh_interval_s)
        pages = Pages(
            self.holder, Exposition(reader, self.holder), config.telemetry_path, self._source.description, redactor
        )
        self._server: ThreadingHTTPServer = make_server(config.listen_address, pages)
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
                "telemetry_path": self._config.telemetry_path,
                "feed": self._source.description,
                "refresh_interval_s": self._config.refresh_interval_s,
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
        self._meter_provider.shutdown()
        self._tracer_provider.shutdown()
        logger.info("otel-chargy stopped")
