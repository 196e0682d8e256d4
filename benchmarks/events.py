"""What the state-change events and the page's new parts add to a refresh, the page's server time, and
the events' memory at the default bound, in process.

    python benchmarks/events.py                  # 1k and 10k placemarks (today's network and 10x)
    python benchmarks/events.py --sizes 10000    # one size

For each size: a generated network whose states move between refreshes as the demo's do (10 % of the
connectors change, so about 2,700 events a refresh at 10x). A refresh is what the refresh loop does
with a new body: parse it and publish the snapshot (the events are diffed there), for the
Prometheus endpoint. "page additions" is what this issue added to the page's per-snapshot rendering
(the country outline and the problem stations moved apart), measured as the rendering with and
without them. The page's server time is `Pages.page("/")` on a prepared snapshot, with and without a
filter. Timings are medians of the repeats: CPU milliseconds for the refresh parts, wall-clock for the
page. The memory of an event is measured with tracemalloc, with events made from parsed feeds, as the
service makes them (each parse brings its own strings).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from otel_chargy import status_page
from otel_chargy.events import DEFAULT_MAX_EVENTS, EventLog
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.holder import SnapshotHolder
from otel_chargy.parse import SizeBounds, parse_kml
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor
from otel_chargy.server import Pages
from otel_chargy.status_page import StationView


def cpu_ms(action: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        action()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def wall_ms(action: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)


def _bodies(placemarks: int, count: int) -> list[bytes]:
    rng = random.Random(1)
    network = generate_network(placemarks, seed=1)
    bodies = [render_kml(network)]
    for _ in range(count):
        network = move_states(network, rng)
        bodies.append(render_kml(network))
    return bodies


def measure(placemarks: int, repeats: int) -> dict[str, Any]:
    bodies = _bodies(placemarks, 2 * repeats + 2)
    bounds = SizeBounds(max(100_000, placemarks * 10))
    snapshots = [parse_kml(body, bounds) for body in bodies]
    holder = SnapshotHolder(Outputs(exposition=True), 3600)
    holder.publish(snapshots[0], 0.0)
    refreshes = iter(bodies[1 : repeats + 1])

    def refresh() -> None:
        holder.publish(parse_kml(next(refreshes), bounds), time.time())

    figures: dict[str, Any] = {"connectors": snapshots[0].connector_count, "refresh_ms": cpu_ms(refresh, repeats)}
    events = EventLog()
    events.observe(snapshots[0], 0.0)
    changed = iter(snapshots[repeats + 1 :])
    made: list[int] = []

    def observe() -> object:
        made.append(len(events.observe(next(changed), time.time())))
        return None

    figures["events_observe_ms"] = cpu_ms(observe, repeats)
    figures["events_per_refresh"] = statistics.median(made)
    # The page's per-snapshot rendering, with and without what this issue added to it.
    latest = snapshots[-1]
    figures["page_render_ms"] = cpu_ms(lambda: StationView(latest, Redactor([])), repeats)
    with (
        mock.patch.object(status_page, "_outline", lambda frame, places: ""),  # whose paths are cached by extent
        mock.patch.object(status_page._Spots, "free_near", lambda self, x, y: (x, y)),
    ):
        figures["page_render_before_ms"] = cpu_ms(lambda: StationView(latest, Redactor([])), repeats)
    additions_ms = figures["events_observe_ms"] + max(0.0, figures["page_render_ms"] - figures["page_render_before_ms"])
    figures["added_share_of_refresh"] = additions_ms / (figures["refresh_ms"] - figures["events_observe_ms"])
    # The page's server time, on a prepared snapshot (as the refresh thread leaves it).
    pages = Pages(holder, None, "/metrics", "benchmark feed", Redactor([]))
    served = holder.current
    assert served is not None
    pages.prepare(served.snapshot)
    for name, target in (("page", "/"), ("page_filtered", "/?q=gare"), ("station_page", "/station/kayl%20-%20gare")):
        samples = wall_ms(lambda target=target: pages.page(target), max(repeats, 11))  # type: ignore[misc]
        figures[f"{name}_p50_ms"] = statistics.median(samples)
        figures[f"{name}_max_ms"] = samples[-1]
    reply = pages.page("/")
    assert reply is not None
    figures["page_bytes"] = sum(len(chunk) for chunk in reply.chunks)
    return figures


def _traced(build: Callable[[], object]) -> int:
    """Bytes still allocated by `build` once what it returns is all that is kept."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del kept
    return size


def event_memory(placemarks: int, count: int) -> dict[str, float]:
    """Memory per kept event, from parsed feeds until `count` events are kept, and apart from it what the
    log keeps of the last refresh (each connector's state and since), which does not grow with events."""
    bodies = _bodies(placemarks, 4)
    bounds = SizeBounds(max(100_000, placemarks * 10))

    def filled() -> EventLog:
        events = EventLog(max_events=count)
        turn = 0
        while len(events) < count:
            events.observe(parse_kml(bodies[turn % len(bodies)], bounds), float(turn))
            turn += 1
        return events

    def state_only() -> EventLog:
        events = EventLog(max_events=count)
        events.observe(parse_kml(bodies[0], bounds), 0.0)
        return events

    with_events, state = _traced(filled), _traced(state_only)
    connectors = parse_kml(bodies[0], bounds).connector_count
    return {
        "events": count,
        "bytes_per_event": round((with_events - state) / count),
        "mib_at_bound": round((with_events - state) / 2**20, 1),
        "state_bytes_per_connector": round(state / connectors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="placemarks per network")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per figure, median taken")
    parser.add_argument("--events", type=int, default=DEFAULT_MAX_EVENTS, help="events kept for the memory figure")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    sizes = {str(size): measure(size, args.repeats) for size in args.sizes}
    names = list(next(iter(sizes.values())))
    print(f"Machine: {machine}. Median of {args.repeats}: CPU ms for the refresh parts, wall ms for the page.\n")
    print("| figure | " + " | ".join(f"{size} placemarks" for size in sizes) + " |")
    print("| --- |" + " ---: |" * len(sizes))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{figures[name]:.4g}" for figures in sizes.values()) + " |")
    memory = event_memory(min(args.sizes), args.events)  # today's network by default
    print(
        f"\nEvents' memory: {memory['bytes_per_event']:.0f} bytes an event, {memory['mib_at_bound']} MiB for "
        f"{args.events} events; and {memory['state_bytes_per_connector']:.0f} bytes a connector for the states "
        "the next refresh is compared with."
    )
    if args.output:
        report = {"machine": machine, "sizes": sizes, "memory": memory}
        args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
