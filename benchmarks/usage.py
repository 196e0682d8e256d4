"""What the usage counters add to a refresh, and to the first scrape after it, in process.

    python benchmarks/usage.py                 # 1k and 10k placemarks
    python benchmarks/usage.py --sizes 1000    # one size

For each size: a generated network whose states move between refreshes as the demo's do (10 % of
the connectors), and for context what a refresh already spends on the same snapshot (parse, the
snapshot's Prometheus text). Each figure is the median of the repeats, in CPU milliseconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otel_chargy.catalog import SNAPSHOT_METRICS, USAGE_METRICS
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.holder import SnapshotHolder
from otel_chargy.observe import observe_usage
from otel_chargy.parse import SizeBounds, parse_kml
from otel_chargy.publication import Outputs
from otel_chargy.render import render_snapshot, render_usage
from otel_chargy.usage import UsageTracker


def cpu_ms(action: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        action()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def measure(placemarks: int, repeats: int) -> dict[str, Any]:
    rng = random.Random(1)
    network = generate_network(placemarks, seed=1)
    snapshots = [network]
    for _ in range(repeats + 1):
        snapshots.append(move_states(snapshots[-1], rng))
    kml = render_kml(network)
    tracker = UsageTracker(max_staleness_s=900)
    tracker.observe(snapshots[0], 0.0, 0.0)
    moments = iter(range(1, 10 * repeats + 10))
    changed = iter(snapshots[1:])

    def observe_changed() -> object:
        at = float(next(moments)) * 300
        return tracker.observe(next(changed), at, at)

    def observe_unchanged() -> object:
        at = float(next(moments)) * 300
        return tracker.observe(snapshots[-1], at, at)

    figures = {
        "connectors": network.connector_count,
        "observe_changed_ms": cpu_ms(observe_changed, repeats),
        "observe_not_modified_ms": cpu_ms(observe_unchanged, repeats),
    }
    view = tracker.view
    usage_section = render_usage(view)
    # A 304 as the service takes it: the counters counted, rendered and observed again, the snapshot's
    # families copied ahead of them.
    clock = iter(range(1, 10 * repeats + 10))
    holder = SnapshotHolder(Outputs(SNAPSHOT_METRICS, exposition=True), 900, monotonic=lambda: next(clock) * 300.0)
    holder.publish(network, 0.0)
    figures |= {
        "render_usage_ms": cpu_ms(lambda: render_usage(view), repeats),
        "observe_otlp_ms": cpu_ms(lambda: observe_usage(view, USAGE_METRICS), repeats),
        "publish_304_ms": cpu_ms(lambda: holder.confirm(0.0), repeats),
        "usage_text_bytes": len(usage_section.text),
        "usage_openmetrics_bytes": len(usage_section.openmetrics),
        "usage_gzip_bytes": len(gzip.compress(usage_section.openmetrics, 4)),
        "context_parse_ms": cpu_ms(lambda: parse_kml(kml, SizeBounds()), repeats),
        "context_render_snapshot_ms": cpu_ms(lambda: render_snapshot(network), repeats),
    }
    counters_ms = figures["observe_changed_ms"] + figures["render_usage_ms"]
    figures["counters_share_of_refresh"] = counters_ms / (
        counters_ms + figures["context_parse_ms"] + figures["context_render_snapshot_ms"]
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="placemarks per network")
    parser.add_argument("--repeats", type=int, default=7, help="measurements per figure, median taken")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    sizes = {str(size): measure(size, args.repeats) for size in args.sizes}
    names = list(next(iter(sizes.values())))
    print(f"Machine: {machine}. CPU ms, median of {args.repeats}.\n")
    print("| figure | " + " | ".join(f"{size} placemarks" for size in sizes) + " |")
    print("| --- |" + " ---: |" * len(sizes))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{figures[name]:.4g}" for figures in sizes.values()) + " |")
    if args.output:
        args.output.write_text(json.dumps({"machine": machine, "sizes": sizes}, indent=2) + "\n")


if __name__ == "__main__":
    main()
