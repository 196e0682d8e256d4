"""A bounded soak: many refreshes of a moving feed with faults interleaved, in one process.

`python -m tests.soak --refreshes 2000` prints RSS, threads and open files after the first
100 refreshes and at the end, as JSON. The test runs it in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import threading
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otel_chargy.exposition import CountingPrometheusReader
from otel_chargy.fetch import HttpSource
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.parse import SizeBounds
from otel_chargy.refresh import Refresher
from otel_chargy.telemetry import build_resource, wire_metrics
from tests.feedserver import FeedResponse, FeedServer
from tests.process_status import status_kib

FAULTS = [
    FeedResponse(b"busy", status=503),
    FeedResponse(b"<kml><Document><Placemark>"),
    FeedResponse(b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY a "x">]><kml/>'),
    FeedResponse(b"<html><body>maintenance</body></html>"),
    FeedResponse(b"<kml><Document/></kml>"),
]


def resources() -> dict[str, Any]:
    return {
        "rss_mib": status_kib("VmRSS") / 1024,
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
    }


def main() -> None:
    logging.disable(logging.WARNING)  # each fault logs a warning: thousands of lines say nothing here
    parser = argparse.ArgumentParser()
    parser.add_argument("--refreshes", type=int, default=2000)
    parser.add_argument("--placemarks", type=int, default=1100)
    parser.add_argument("--collect-every", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(1)
    network = generate_network(args.placemarks, seed=1)
    variants = []
    for _ in range(20):
        network = move_states(network, rng, fraction=0.1)
        variants.append(FeedResponse(render_kml(network)))
    responses = itertools.cycle(variants)
    faults = itertools.cycle(FAULTS)

    # The service's wiring for both kinds of reader: the Prometheus endpoint's cached exposition,
    # and a reader that collects every connector through the SDK, as an OTLP reader does.
    push_reader = InMemoryMetricReader()
    wiring = wire_metrics(
        prometheus=CountingPrometheusReader(),
        push_readers=[push_reader],
        resource=build_resource(),
        max_staleness_s=3600,
    )
    holder, exposition = wiring.holder, wiring.exposition
    assert exposition is not None
    outcomes: dict[str, int] = {}

    with FeedServer() as feed:
        source = HttpSource(feed.url(), timeout_s=10, max_bytes=50_000_000, tracer=TracerProvider().get_tracer("soak"))
        refresher = Refresher(source, holder, wiring.recorder, TracerProvider().get_tracer("soak"), 60, SizeBounds())
        report: dict[str, Any] = {"connectors": network.connector_count}
        for index in range(1, args.refreshes + 1):
            feed.serve(next(faults) if index % 10 == 0 else next(responses))
            outcome = refresher.refresh_once().outcome.value
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            exposition.render(None, "gzip" if index % 2 else None)
            if index % args.collect_every == 0:
                push_reader.get_metrics_data()
            if index == 100:
                report["after_100"] = resources()
        report["after_all"] = resources()
        source.close()
    for provider in wiring.providers:
        provider.shutdown()
    report["outcomes"] = outcomes
    print(json.dumps(report))


if __name__ == "__main__":
    main()
