"""An OCPI network the size of the Netherlands' (NDW: ~80,000 Locations, ~200,000 EVSEs), refreshed
whole and filtered to one city.

    python benchmarks/ocpi.py                      # 80,000 Locations
    python benchmarks/ocpi.py --locations 2000     # a smoke run

Generates the network with the project's generator, gzips it as NDW publishes it (a .json.gz file),
serves it on 127.0.0.1, and refreshes it once in a fresh process per case through the real path
(HttpSource, the OCPI parser, Refresher, SnapshotHolder with the Prometheus exposition prepared):
the whole network with a raised --max-connectors, then the same feed through --feed.bbox around
one city. Reports each refresh's time and the process's peak RSS; writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
# Amsterdam, about: 0.5 % of the generated country's area, ~2,000 connectors of a uniform 80,000 Locations.
CITY_BBOX = "4.75,52.28,5.03,52.48"


def serve_file(path: Path) -> tuple[ThreadingHTTPServer, str]:
    body = path.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/charging_point_locations_ocpi.json.gz"


def refresh_once(argv: list[str]) -> dict[str, Any]:
    """In the child: one refresh through the service's parts, configured by otel-chargy's own flags."""
    from opentelemetry import trace

    from otel_chargy.config import load_config
    from otel_chargy.feeds import feed_parser, open_feed
    from otel_chargy.holder import SnapshotHolder
    from otel_chargy.metrics import RefreshRecorder
    from otel_chargy.parse import SizeBounds
    from otel_chargy.publication import Outputs
    from otel_chargy.refresh import Refresher

    config = load_config(argv, {})
    source = open_feed(config, config.feed_url, trace.NoOpTracer())
    holder = SnapshotHolder(Outputs(exposition=True), config.max_staleness_s)
    refresher = Refresher(
        source,
        holder,
        RefreshRecorder([]),
        trace.NoOpTracer(),
        config.refresh_interval_s,
        SizeBounds(config.max_connectors),
        parse=feed_parser(config),
    )
    started = time.perf_counter()
    result = refresher.refresh_once()
    refresh_s = time.perf_counter() - started
    snapshot = result.snapshot
    # This process's own high-water mark: wait4's ru_maxrss would carry the parent's over the fork.
    peak_kib = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])
    return {
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "outcome": result.outcome.value,
        "reason": result.reason,
        "refresh_s": round(refresh_s, 2),
        "stations": len(snapshot.stations) if snapshot else 0,
        "connectors": snapshot.connector_count if snapshot else 0,
    }


def run_case(url: str, flags: list[str]) -> dict[str, Any]:
    argv = ["--feed.format", "ocpi", "--feed.url", url, "--max-bytes", "1000000000", "--fetch-timeout", "600", *flags]
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(argv)], stdout=subprocess.PIPE, cwd=HERE.parent
    )
    assert child.stdout is not None
    output = child.stdout.read()
    if child.wait() != 0:
        raise SystemExit(f"the refresh process failed with status {child.returncode}")
    figures: dict[str, Any] = json.loads(output)
    figures["flags"] = " ".join(flags)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locations", type=int, default=80_000)
    parser.add_argument("--bbox", default=CITY_BBOX, help=f"the city (default {CITY_BBOX})")
    parser.add_argument("--output", type=Path, default=HERE / "ocpi.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(refresh_once(json.loads(args.child))))
        return

    from otel_chargy.generator import generate_ocpi_network, gzipped, render_ocpi

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "locations.json.gz"
        network = generate_ocpi_network(args.locations, seed=1)
        body = render_ocpi(network.locations)
        evses = sum(len(location["evses"]) for location in network.locations)  # type: ignore[arg-type,misc]
        feed = {
            "locations": args.locations,
            "evses": evses,
            "connectors_published": network.truth.connector_count,
            "json_bytes": len(body),
            "gzip_bytes": 0,
        }
        path.write_bytes(gzipped(body))
        feed["gzip_bytes"] = path.stat().st_size
        del network, body
        server, url = serve_file(path)
        try:
            cases = {
                "whole network": run_case(url, ["--max-connectors", "10000000"]),
                "one city (--feed.bbox)": run_case(url, ["--feed.bbox", args.bbox]),
            }
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
        f"feed: {feed['locations']:,} Locations, {feed['evses']:,} EVSEs, {feed['connectors_published']:,} connectors"
        f" published; {feed['json_bytes'] / 1e6:.0f} MB of JSON, {feed['gzip_bytes'] / 1e6:.0f} MB gzipped",
        "",
        "| case | outcome | stations | connectors | refresh (s) | peak RSS (MiB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, case in report["cases"].items():
        lines.append(
            f"| {name} | `{case['outcome']}` | {case['stations']:,} | {case['connectors']:,} | {case['refresh_s']} |"
            f" {case['peak_rss_mib']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
