"""What the usage counters add to a refresh, and to the first scrape after it, in process.

    python benchmarks/usage.py                 # 1k and 10k placemarks
    python benchmarks/usage.py --sizes 1000    # one size

For each size: a generated network whose states move between refreshes as the demo's do (10 % of
the connectors), and for context what a refresh already spends on the same snapshot (parse, the
snapshot's Prometheus text). Each figure is the median of the repeats, in CPU milliseconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otel_chargy.exposition import render_snapshot
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.parse import SizeBounds, parse_kml
from otel_chargy.usage import UsageTracker
from otel_chargy.usage_metrics import join_sections, prepare_usage_observations, render_usage


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
    snapshot_section = render_snapshot(network)
    figures |= {
        "render_usage_ms": cpu_ms(lambda: render_usage(view), repeats),
        "prepare_otlp_observations_ms": cpu_ms(lambda: prepare_usage_observations(view), repeats),
        "join_at_first_scrape_ms": cpu_ms(lambda: join_sections(snapshot_section, usage_section), repeats),
        "usage_text_bytes": sum(map(len, usage_section.text)),
        "usage_openmetrics_bytes": sum(map(len, usage_section.openmetrics)),
        "usage_gzip_bytes": len(usage_section.openmetrics_deflated.data),
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
    report = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "sizes": {str(size): measure(size, args.repeats) for size in args.sizes},
    }
    names = list(next(iter(report["sizes"].values())))
    print(f"Machine: {report['machine']}. CPU ms, median of {args.repeats}.\n")
    print("| figure | " + " | ".join(f"{size} placemarks" for size in report["sizes"]) + " |")
    print("| --- |" + " ---: |" * len(report["sizes"]))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{figures[name]:.4g}" for figures in report["sizes"].values()) + " |")
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
