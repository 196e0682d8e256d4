"""A bounded soak: many refreshes of a moving feed with faults interleaved, in one process.

`python -m tests.soak --refreshes 2000` prints RSS, live objects, threads and open files after
the first 100 refreshes and at the end, as JSON, and exits 1 when any of them grew (`leaks`).
CI runs it at that length as a step of its own; the suite runs a short one (tests/test_soak.py).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import random
import sys
import threading
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otel_chargy.events import EventLog
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


SOAK_MAX_EVENTS = 200
"""10 % of the connectors move at each refresh: some 5 events a refresh even at 40 placemarks, so the ring is
full within the first 100 refreshes at any size the soak runs."""


def resources() -> dict[str, Any]:
    gc.collect()
    return {
        "rss_mib": status_kib("VmRSS") / 1024,
        "objects": len(gc.get_objects()),
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
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
    return found


def main() -> None:
    logging.disable(logging.WARNING)  # each fault logs a warning: thousands of lines say nothing here
    parser = argparse.ArgumentParser()
    parser.add_argument("--refreshes", type=int, default=2000)
    parser.add_argument("--placemarks", type=int, default=150)
    parser.add_argument("--collect-every", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(1)
    network = generate_network(args.placemarks, seed=1)
    variants = []
    for _ in range(20):
        network = move_states(network, rng, fraction=0.1)
        variants.append(FeedResponse(render_kml(network)))
    faults = itertools.cycle(FAULTS)
    served_variants = 0

    # The service's wiring for both kinds of reader: the Prometheus endpoint's cached exposition,
    # and a reader that collects every connector through the SDK, as an OTLP reader does.
    push_reader = InMemoryMetricReader()
    wiring = wire_metrics(
        prometheus=CountingPrometheusReader(),
        push_readers=[push_reader],
        resource=build_resource(),
        max_staleness_s=3600,
        # The ring of state changes is full well before the 100th refresh: from there on it must stay
        # flat, so that an event kept past the bound would show as a leak.
        events=EventLog(max_events=SOAK_MAX_EVENTS),
    )
    holder, exposition = wiring.holder, wiring.exposition
    assert exposition is not None
    outcomes: dict[str, int] = {}

    with FeedServer() as feed:
        source = HttpSource(feed.url(), timeout_s=10, max_bytes=50_000_000, tracer=TracerProvider().get_tracer("soak"))
        refresher = Refresher(source, holder, wiring.recorder, TracerProvider().get_tracer("soak"), 60, SizeBounds())
        report: dict[str, Any] = {"connectors": network.connector_count}
        for index in range(1, args.refreshes + 1):
            fault = index % 10 == 0
            feed.serve(next(faults) if fault else variants[served_variants % len(variants)])
            served_variants += not fault
            outcome = refresher.refresh_once().outcome.value
            feed.requests.clear()  # the test server's own record, not the service's memory
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            exposition.render(None, "gzip" if index % 2 else None)
            # Each variant is collected once in the first round: the SDK keeps an attribute set for
            # every detailed state it has seen (OTEL-NOTES), which must not pass for a leak later.
            if index % args.collect_every == 0 or served_variants <= len(variants):
                push_reader.get_metrics_data()
            if index == 100:
                report["after_100"] = resources()
        report["after_all"] = resources()
        source.close()
    for provider in wiring.providers:
        provider.shutdown()
    report["outcomes"] = outcomes
    report["leaks"] = leaks(report, args.refreshes)
    print(json.dumps(report))
    sys.exit(1 if report["leaks"] else 0)


if __name__ == "__main__":
    main()
