"""A DATEX II v3 (AFIR) pair the size of Germany's (about 150,000 refill points), read whole and filtered
to one city, with the static part cached between refreshes.

    python benchmarks/afir.py                          # ~150,000 refill points
    python benchmarks/afir.py --refill-points 3000     # a smoke run

Generates the table and two status publications (the second with a quarter of the statuses changed)
with the project's generator, serves them on 127.0.0.1, and runs each case in a fresh process through
the real path (PairedFeed over HttpSource, the DATEX II parsers, Refresher, SnapshotHolder with the
Prometheus exposition prepared): a first refresh reads both parts; the process's peak RSS is then reset
(/proc/self/clear_refs) and a second refresh reads the status part only, the table staying cached.
Reports both refreshes' times and the peaks, beside a naive reference that loads both parts whole with
json.loads and joins them in dicts at every refresh. Writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
# Berlin, about: ~0.3 % of the generated country's area.
CITY_BBOX = "13.09,52.34,13.76,52.68"


def serve(static: Path, statuses: list[Path]) -> tuple[ThreadingHTTPServer, str]:
    """/static, and /status answering each status document in turn (the last one from then on)."""
    bodies = {"/static": [static.read_bytes()], "/status": [path.read_bytes() for path in statuses]}
    served = {"/static": 0, "/status": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            with lock:
                documents = bodies[path]
                body = documents[min(served[path], len(documents) - 1)]
                served[path] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _peak_mib() -> float:
    # This process's own high-water mark: wait4's ru_maxrss would carry the parent's over the fork.
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def refresh_twice(argv: list[str], exposition: bool = True) -> dict[str, Any]:
    """In the child: two refreshes through the service's parts, configured by otel-chargy's own flags.
    `exposition`: the Prometheus endpoint's text is prepared, as the service does by default; without it,
    what is left is this feed's own cost (fetch, parse, join) and the usage counters."""
    from opentelemetry import trace

    from otel_chargy.config import load_config
    from otel_chargy.feeds import open_paired_feed
    from otel_chargy.holder import SnapshotHolder
    from otel_chargy.metrics import RefreshRecorder
    from otel_chargy.model import Snapshot
    from otel_chargy.parse import SizeBounds
    from otel_chargy.publication import Outputs
    from otel_chargy.refresh import Refresher

    config = load_config(argv, {})
    holder = SnapshotHolder(Outputs(exposition=exposition), config.max_staleness_s)
    # The publication (usage counters, Prometheus text) is every format's: its share is timed apart.
    publish_cpu_s = [0.0]
    publish = holder.publish

    def timed_publish(snapshot: Snapshot, fetched_at: float) -> None:
        started = _cpu_s()
        publish(snapshot, fetched_at)
        publish_cpu_s[0] += _cpu_s() - started

    holder.publish = timed_publish  # type: ignore[method-assign]
    refresher = Refresher(
        open_paired_feed(config, trace.NoOpTracer()),
        holder,
        RefreshRecorder([]),
        trace.NoOpTracer(),
        config.refresh_interval_s,
        SizeBounds(config.max_connectors),
        max_shrink=1,
    )
    figures: dict[str, Any] = {}
    for name in ("first (both parts)", "status only (table cached)"):
        started, cpu_started, publish_cpu_s[0] = time.perf_counter(), _cpu_s(), 0.0
        result = refresher.refresh_once()
        refresh_s = time.perf_counter() - started
        snapshot = result.snapshot
        figures[name] = {
            "outcome": result.outcome.value,
            "reason": result.reason,
            "refresh_s": round(refresh_s, 2),
            "cpu_s": round(_cpu_s() - cpu_started, 2),
            "publish_cpu_s": round(publish_cpu_s[0], 2),
            "peak_rss_mib": round(_peak_mib(), 1),
            "stations": len(snapshot.stations) if snapshot else 0,
            "connectors": snapshot.connector_count if snapshot else 0,
        }
        _reset_peak()
    return figures


def naive_refresh(base_url: str) -> dict[str, Any]:
    """In the child: the reference, both parts loaded whole and joined in dicts, as a quick script would."""
    import urllib.request

    def load(path: str) -> Any:
        with urllib.request.urlopen(base_url + path) as response:
            return json.loads(response.read())

    figures: dict[str, Any] = {}
    for name in ("first (both parts)", "second (both parts again)"):
        started, cpu_started = time.perf_counter(), _cpu_s()
        table = load("/static")
        status = load("/status")
        states = {
            entry["aegiElectricChargingPointStatus"]["reference"]["idG"]: entry["aegiElectricChargingPointStatus"][
                "status"
            ]["value"]
            for payload in status["messageContainer"]["payload"]
            for site in payload["aegiEnergyInfrastructureStatusPublication"]["energyInfrastructureSiteStatus"]
            for station in site["energyInfrastructureStationStatus"]
            for entry in station["refillPointStatus"]
        }
        connectors = 0
        for site in table["payload"]["aegiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0][
            "energyInfrastructureSite"
        ]:
            for station in site["energyInfrastructureStation"]:
                for point in station["refillPoint"]:
                    point = point["aegiElectricChargingPoint"]
                    states.get(point["idG"], "unknown")
                    connectors += len(point["connector"])
        del table, status
        figures[name] = {
            "refresh_s": round(time.perf_counter() - started, 2),
            "cpu_s": round(_cpu_s() - cpu_started, 2),
            "peak_rss_mib": round(_peak_mib(), 1),
            "connectors": connectors,
        }
        _reset_peak()
    return figures


def run_child(mode: str, argument: str) -> dict[str, Any]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, argument], stdout=subprocess.PIPE, cwd=HERE.parent
    )
    assert child.stdout is not None
    output = child.stdout.read()
    if child.wait() != 0:
        raise SystemExit(f"the refresh process failed with status {child.returncode}")
    figures: dict[str, Any] = json.loads(output)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refill-points", type=int, default=150_000)
    parser.add_argument("--bbox", default=CITY_BBOX, help=f"the city (default {CITY_BBOX})")
    parser.add_argument("--output", type=Path, default=HERE / "afir.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, argument = args.child
        if mode == "naive":
            figures = naive_refresh(argument)
        else:
            figures = refresh_twice(json.loads(argument), exposition=mode == "service")
        print(json.dumps(figures))
        return

    from otel_chargy.generator_afir import (
        generate_two_part_network,
        render_datex2_status_json,
        render_datex2_table_json,
        with_new_statuses,
    )

    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        network = generate_two_part_network(round(args.refill_points / 2.5), seed=1)
        static, first, second = folder / "table.json", folder / "status-1.json", folder / "status-2.json"
        static.write_bytes(render_datex2_table_json(network))
        first.write_bytes(render_datex2_status_json(network))
        second.write_bytes(render_datex2_status_json(with_new_statuses(network, 0.25)))
        feed = {
            "sites": len(network.sites),
            "refill_points": network.refill_points,
            "connectors": sum(point.connectors for site in network.sites for point in site.points),
            "table_bytes": static.stat().st_size,
            "status_bytes": first.stat().st_size,
        }
        del network
        flags = {
            "whole network": ("service", ["--max-connectors", "10000000"]),
            "one city (--feed.bbox)": ("service", ["--feed.bbox", args.bbox]),
            "whole network, no /metrics text (OTLP only)": (
                "service-without-exposition",
                ["--max-connectors", "10000000"],
            ),
            "naive: json.loads of both parts, whole network": ("naive", []),
        }
        cases = {}
        for name, (mode, extra) in flags.items():
            # A server of its own for each case: each sees the first status publication, then the second.
            server, base = serve(static, [first, second])
            common = ["--feed.format", "datex2", "--feed.url", f"{base}/static", "--feed.status-url", f"{base}/status"]
            common += ["--max-bytes", "1000000000", "--fetch-timeout", "600"]
            try:
                cases[name] = run_child(mode, base if mode == "naive" else json.dumps([*common, *extra]))
            finally:
                server.shutdown()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "feed": feed,
        "cases": cases,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))


def table(report: dict[str, Any]) -> str:
    feed = report["feed"]
    lines = [
        f"feed: {feed['sites']:,} sites, {feed['refill_points']:,} refill points, {feed['connectors']:,} connectors;"
        f" table {feed['table_bytes'] / 1e6:.0f} MB, status {feed['status_bytes'] / 1e6:.0f} MB of JSON",
        "",
        "| case | refresh | connectors served | time (s) | CPU (s) | of which publication | peak RSS (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, refreshes in report["cases"].items():
        for refresh, figures in refreshes.items():
            served, seconds, peak = figures["connectors"], figures["refresh_s"], figures["peak_rss_mib"]
            cpu = f"{figures['cpu_s']} | {figures.get('publish_cpu_s', '')}"
            lines.append(f"| {name} | {refresh} | {served:,} | {seconds} | {cpu} | {peak} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
