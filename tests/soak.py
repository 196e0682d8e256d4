"""A bounded soak: many refreshes of a moving feed with faults interleaved, in one process.

The feed's states move, and at every refresh it renames stations, issues new device ids, shows new
powers and raw states never seen before (generator.relabel); the service's wiring serves /metrics
and pushes metrics (OTLP/HTTP and gRPC), spans and the state-change events as log records
(OTLP/HTTP) to the tests' receiver, run in a process of its own. Time is the service's as if it
refreshed every minute (usage counters forget a station or a speed by time).

`python -m tests.soak --refreshes 2000` prints RSS, live objects, threads, open files and the
attribute sets the SDK holds after the first 100 refreshes and at the end, as JSON, and exits 1 when
any of them grew (`leaks`) or an export failed. CI runs it at that length as a step of its own; the
suite runs a short one (tests/test_soak.py).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import math
import os
import random
import subprocess
import sys
import threading
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_chargy.events import EventLog
from otel_chargy.exposition import CountingPrometheusReader
from otel_chargy.fetch import HttpSource
from otel_chargy.generator import generate_network, move_states, relabel, render_kml
from otel_chargy.metrics import PushHealth, held_attribute_sets_by_metric
from otel_chargy.parse import SizeBounds
from otel_chargy.refresh import Refresher
from otel_chargy.telemetry import (
    MAX_REQUEST_BYTES,
    BoundedMetricExporter,
    CountedLogExporter,
    CountedSpanExporter,
    CountingPeriodicReader,
    EventEmitter,
    build_resource,
    wire_metrics,
)
from tests.feedserver import FeedResponse, FeedServer
from tests.process_status import status_kib

FAULTS = [
    FeedResponse(b"busy", status=503),
    FeedResponse(b"<kml><Document><Placemark>"),
    FeedResponse(b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY a "x">]><kml/>'),
    FeedResponse(b"<html><body>maintenance</body></html>"),
    FeedResponse(b"<kml><Document/></kml>"),
]


SOAK_MAX_EVENTS = 200
"""10 % of the connectors move at each refresh: some 5 events a refresh even at 40 placemarks, so the ring is
full within the first 100 refreshes at any size the soak runs."""

REFRESH_INTERVAL_S = 60.0
"""The service's time between two refreshes, as the holder and the usage counters see it."""


class ServiceClock:
    """The holder's monotonic clock: a minute passes at each refresh."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def resources(
    push_readers: list[MetricReader], tracer_provider: TracerProvider, logger_provider: LoggerProvider
) -> dict[str, Any]:
    # The spans and log records waiting in the batch processors' (bounded) queues go first: what is left
    # is what stays.
    tracer_provider.force_flush()
    logger_provider.force_flush()
    # A collection stops tracking a tuple of untracked items: one nesting level a pass, and the SDK's keys
    # of attribute sets nest four deep. Counted after as many passes, churned keys count as settled ones.
    for _ in range(5):
        gc.collect()
    return {
        "rss_mib": status_kib("VmRSS") / 1024,
        "objects": len(gc.get_objects()),
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "attribute_sets": max(sum(held_attribute_sets_by_metric(reader).values()) for reader in push_readers),
    }


def leaks(report: dict[str, Any], refreshes: int) -> list[str]:
    """What grew between the 100th refresh and the last: a leak of even one object a refresh shows in
    the object count; RSS is allowed the allocator's noise."""
    early, late = report["after_100"], report["after_all"]
    found = []
    if late["objects"] - early["objects"] > (refreshes - 100) // 2:
        found.append(f"live objects grew from {early['objects']} to {late['objects']}")
    if late["rss_mib"] > early["rss_mib"] * 1.10:
        found.append(f"RSS grew from {early['rss_mib']:.1f} MiB to {late['rss_mib']:.1f} MiB")
    for resource in ("threads", "fds"):
        if late[resource] != early[resource]:
            found.append(f"{resource} went from {early[resource]} to {late[resource]}")
    # What the SDK holds is what the last collection observed: about the same network each time.
    if late["attribute_sets"] > early["attribute_sets"] * 1.10:
        found.append(f"the SDK's attribute sets grew from {early['attribute_sets']} to {late['attribute_sets']}")
    return found


def start_receiver() -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The OTLP receiver in a process of its own: its threads, files and memory are not the service's."""
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.otlp_receiver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    endpoints: dict[str, str] = json.loads(receiver.stdout.readline())
    return receiver, endpoints


def push_readers(endpoints: dict[str, str], health: PushHealth) -> list[MetricReader]:
    """The service's OTLP readers, one per protocol, collected by the soak itself (no export thread)."""
    exporters = {
        "http/protobuf": HttpMetricExporter(endpoint=f"{endpoints['http']}/v1/metrics", timeout=10),
        "grpc": GrpcMetricExporter(endpoint=endpoints["grpc"], insecure=True, timeout=10),
    }
    return [
        CountingPeriodicReader(BoundedMetricExporter(exporter, MAX_REQUEST_BYTES[protocol], health), math.inf, 10)
        for protocol, exporter in exporters.items()
    ]


def main() -> None:
    logging.disable(logging.WARNING)  # each fault logs a warning: thousands of lines say nothing here
    parser = argparse.ArgumentParser()
    parser.add_argument("--refreshes", type=int, default=2000)
    parser.add_argument("--placemarks", type=int, default=150)
    parser.add_argument("--collect-every", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(1)
    base = generate_network(args.placemarks, seed=1)
    faults = itertools.cycle(FAULTS)

    receiver, endpoints = start_receiver()
    health = PushHealth(["metrics", "traces", "logs"])
    readers = push_readers(endpoints, health)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        BatchSpanProcessor(CountedSpanExporter(OTLPSpanExporter(f"{endpoints['http']}/v1/traces", timeout=10), health))
    )
    # The state-change events, as the service pushes them: OTel log records through a batch processor.
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(CountedLogExporter(OTLPLogExporter(f"{endpoints['http']}/v1/logs", timeout=10), health))
    )
    events = EventLog(max_events=SOAK_MAX_EVENTS)
    events.subscribe(EventEmitter(logger_provider))
    tracer = tracer_provider.get_tracer("soak")
    clock = ServiceClock()
    # The service's wiring for both kinds of reader: the Prometheus endpoint's cached exposition,
    # and the OTLP readers, which collect every connector through the SDK.
    wiring = wire_metrics(
        prometheus=CountingPrometheusReader(),
        push_readers=readers,
        resource=build_resource(),
        max_staleness_s=3 * REFRESH_INTERVAL_S,
        push_health=health,
        monotonic=clock,
        # The ring of state changes is full well before the 100th refresh: from there on it must stay
        # flat, so that an event kept past the bound would show as a leak.
        events=events,
    )
    holder, exposition = wiring.holder, wiring.exposition
    assert exposition is not None
    outcomes: dict[str, int] = {}

    with FeedServer() as feed:
        source = HttpSource(feed.url(), timeout_s=10, max_bytes=50_000_000, tracer=tracer)
        refresher = Refresher(source, holder, wiring.recorder, tracer, REFRESH_INTERVAL_S, SizeBounds())
        report: dict[str, Any] = {"connectors": base.connector_count}
        for index in range(1, args.refreshes + 1):
            clock.now += REFRESH_INTERVAL_S
            fault = index % 10 == 0
            if fault:
                feed.serve(next(faults))
            else:
                base = move_states(base, rng, fraction=0.1)
                feed.serve(FeedResponse(render_kml(relabel(base, index))))
            outcome = refresher.refresh_once().outcome.value
            feed.requests.clear()  # the test server's own record, not the service's memory
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            exposition.render(None, "gzip" if index % 2 else None)
            if index % args.collect_every == 0:
                for reader in readers:
                    reader.collect()
            if index == 100:
                report["after_100"] = resources(readers, tracer_provider, logger_provider)
        report["after_all"] = resources(readers, tracer_provider, logger_provider)
        source.close()
    for provider in wiring.providers:
        provider.shutdown()
    tracer_provider.shutdown()
    logger_provider.shutdown()
    report["received"] = json.loads(receiver.communicate("")[0])
    report["outcomes"] = outcomes
    report["exports"] = {
        signal.signal: {"exports": signal.exports, "failed": signal.failed_exports} for signal in health.status()
    }
    report["leaks"] = leaks(report, args.refreshes) + [
        f"{signal.failed_exports} {signal.signal} exports failed: {signal.last_failure_reason}"
        for signal in health.status()
        if signal.failed_exports or not signal.exports
    ]
    print(json.dumps(report))
    sys.exit(1 if report["leaks"] else 0)


if __name__ == "__main__":
    main()
