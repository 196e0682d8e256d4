"""Where otel-chargy's memory goes, by component, at one network size (tracemalloc, in process).

    python benchmarks/memory.py                     # 10,000 placemarks (~28,600 connectors)
    python benchmarks/memory.py --placemarks 1000

Each figure is what one component holds once built (Python allocations still referenced, in MiB),
measured apart from the others: the snapshot, the usage counters' state, the snapshot's families as
Prometheus text and OpenMetrics, the counters' families, their gzip copies (what the /metrics cache
keeps for gzip clients), the observations for push readers, the page's and the API's documents and
the SDK's state after one collection by a push reader. `refresh_peak` is the most a refresh holds at
once on top of the publication in service: the new one is built before the old one is let go.
Then the bytes of each family of /metrics per connector, in OpenMetrics with and without `_created`
(PROMETHEUS_DISABLE_CREATED_SERIES). Writes benchmarks/memory.json.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import platform
import random
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.sdk.metrics.export import MetricReader, MetricsData

from otel_chargy.api import StationDocuments
from otel_chargy.catalog import DETAIL_METRICS, Detail
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.holder import SnapshotHolder
from otel_chargy.observe import observe_snapshot, observe_usage
from otel_chargy.parse import SizeBounds, parse_kml
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor
from otel_chargy.render import render_snapshot, render_usage
from otel_chargy.status_page import StationView
from otel_chargy.telemetry import build_resource, wire_metrics
from otel_chargy.usage import UsageTracker

HERE = Path(__file__).parent
MIB = 1024 * 1024
Built = TypeVar("Built")


class DroppingReader(MetricReader):
    """A push reader that collects and keeps nothing: what stays is the SDK's own state."""

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        pass

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def held(build: Callable[[], Built]) -> tuple[Built, float]:
    """What `build` returns, and the MiB it still holds once built."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    return built, (tracemalloc.get_traced_memory()[0] - before) / MIB


def measure(placemarks: int) -> dict[str, Any]:
    network = generate_network(placemarks, seed=1)
    moved = move_states(network, random.Random(2), fraction=0.05)
    bodies = render_kml(network), render_kml(moved)
    bounds = SizeBounds(max(40_000, 4 * network.connector_count))
    tracemalloc.start()
    figures: dict[str, float] = {}
    snapshot, figures["snapshot"] = held(lambda: parse_kml(bodies[0], bounds))
    later = parse_kml(bodies[1], bounds)

    def counted() -> UsageTracker:
        tracker = UsageTracker(3600)
        tracker.observe(snapshot, 0.0, 0.0)
        tracker.observe(later, 300.0, 300.0)
        return tracker

    tracker, figures["usage_state"] = held(counted)
    view = tracker.view
    families, figures["exposition_snapshot"] = held(lambda: render_snapshot(snapshot))
    counters, figures["exposition_counters"] = held(lambda: render_usage(view))
    _, figures["gzip_copies"] = held(
        lambda: [
            gzip.compress(families.text + counters.text, 4),
            gzip.compress(families.openmetrics + counters.openmetrics, 4),
        ]
    )
    observed = DETAIL_METRICS[Detail.CONNECTOR]
    _, figures["observations_connector_detail"] = held(
        lambda: (observe_snapshot(snapshot, observed), observe_usage(view, observed))
    )
    redactor = Redactor(["secret-key"])
    _, figures["page_documents"] = held(lambda: StationView(snapshot, redactor))
    _, figures["api_documents"] = held(lambda: StationDocuments.render(snapshot, redactor))

    reader = DroppingReader()
    wiring = wire_metrics(prometheus=None, push_readers=[reader], resource=build_resource(), max_staleness_s=3600)
    wiring.holder.publish(snapshot, fetched_at=time.time())
    _, figures["sdk_state_connector_detail"] = held(lambda: reader.collect(timeout_millis=3_600_000))
    for provider in wiring.providers:
        provider.shutdown()

    # A refresh with /metrics on (the default): the publication in service, then the next one built beside it.
    holder = SnapshotHolder(Outputs(exposition=True), 3600)
    _, figures["publication_prometheus"] = held(lambda: holder.publish(snapshot, 0.0))
    gc.collect()
    tracemalloc.reset_peak()
    in_service = tracemalloc.get_traced_memory()[0]
    holder.publish(later, 300.0)
    figures["refresh_peak"] = (tracemalloc.get_traced_memory()[1] - in_service) / MIB
    tracemalloc.stop()
    return {
        "placemarks": placemarks,
        "connectors": network.connector_count,
        "feed_mib": round(len(bodies[0]) / MIB, 1),
        "mib": {name: round(value, 1) for name, value in figures.items()},
        "family_bytes": family_bytes(render_snapshot(later).openmetrics + render_usage(view).openmetrics),
    }


def family_bytes(openmetrics: bytes) -> dict[str, dict[str, int]]:
    """Bytes of each family's lines (heads included), with and without its `_created` lines."""
    families: dict[str, dict[str, int]] = {}
    name = ""
    for line in openmetrics.splitlines(keepends=True):
        if line.startswith(b"# HELP "):
            name = line.split(b" ", 3)[2].decode()
            families[name] = {"openmetrics": 0, "created_lines": 0}
        families[name]["openmetrics"] += len(line)
        if line.startswith(f"{name}_created".encode()):
            families[name]["created_lines"] += len(line)
    return families


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--placemarks", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=HERE / "memory.json")
    args = parser.parse_args()
    report = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        **measure(args.placemarks),
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['placemarks']} placemarks, {report['connectors']} connectors; MiB held:\n")
    print("| component | MiB |\n| --- | ---: |")
    for name, value in report["mib"].items():
        print(f"| {name} | {value:.1f} |")
    connectors = report["connectors"]
    print("\nOpenMetrics bytes per connector, by family:\n")
    print("| family | with `_created` | without |\n| --- | ---: | ---: |")
    for family, sizes in report["family_bytes"].items():
        with_created, created = sizes["openmetrics"], sizes["created_lines"]
        print(f"| `{family}` | {with_created / connectors:.1f} | {(with_created - created) / connectors:.1f} |")
    total = sum(sizes["openmetrics"] for sizes in report["family_bytes"].values())
    created = sum(sizes["created_lines"] for sizes in report["family_bytes"].values())
    without = total - created
    megabytes = f"({total / 1e6:.1f} MB) | {without / connectors:.1f} ({without / 1e6:.1f} MB)"
    print(f"| all | {total / connectors:.1f} {megabytes} |")


if __name__ == "__main__":
    main()
