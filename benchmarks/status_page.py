"""Server time of the status page and the JSON API, at today's size and at 10x.

    python benchmarks/status_page.py                  # 530 and 10,000 placemarks
    python benchmarks/status_page.py --sizes 10000

For each size: publishes a generated network into a holder, as a refresh does, and measures
- the work done once per snapshot, in the refresh thread (the page's station part and map, the API's
  documents, the counts), and
- per request, in process: the time from the request target to the reply's bytes (`Pages.page`,
  the chunks joined), which is the server's share of a request;
- per request, over HTTP on 127.0.0.1 with the real server: time to the last byte, sequentially.
Prints a table and writes it as JSON (benchmarks/status_page.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from otel_chargy.config import ListenAddress
from otel_chargy.generator import generate_network
from otel_chargy.history import RefreshHistory
from otel_chargy.holder import SnapshotHolder
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor
from otel_chargy.server import Pages, make_server
from otel_chargy.webconfig import WebConfig

HERE = Path(__file__).parent


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
    }


def _timed(action: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure(placemarks: int, repeats: int) -> dict[str, Any]:
    network = generate_network(placemarks, seed=1)
    holder = SnapshotHolder(Outputs(observed=(), exposition=False), 3600)
    holder.publish(network, time.time())
    pages = Pages(holder, None, "/metrics", "benchmark feed", Redactor(["secret-key"]), RefreshHistory())
    targets = {
        "page": "/",
        "page_filtered": "/?q=steinfort",
        "page_sorted_page_2": "/?sort=power&page=2",
        "api_stations": "/api/v1/stations",
        "api_station": f"/api/v1/stations/{quote(network.stations[-1].name)}",
        "api_status": "/api/v1/status",
    }

    def render(target: str) -> bytes:
        reply = pages.page(target)
        assert reply is not None and reply.status == 200, target
        return b"".join(reply.chunks)

    started = time.perf_counter()
    pages.prepare(network)  # what the first request after a refresh does
    once_per_snapshot_ms = (time.perf_counter() - started) * 1000
    result: dict[str, Any] = {
        "placemarks": placemarks,
        "connectors": network.connector_count,
        "once_per_snapshot_ms": round(once_per_snapshot_ms, 1),
    }
    server = make_server(ListenAddress("127.0.0.1", 0), pages, WebConfig())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}") as client:
            for name, target in targets.items():
                size = len(render(target))
                in_process = _percentiles(_timed(lambda target=target: render(target), repeats))  # type: ignore[misc]
                over_http = _percentiles(_timed(lambda target=target: client.get(target).content, repeats))  # type: ignore[misc]
                result[name] = {
                    "bytes": size,
                    "server_p50_ms": in_process["p50_ms"],
                    "server_p99_ms": in_process["p99_ms"],
                    "http_p50_ms": over_http["p50_ms"],
                    "http_p99_ms": over_http["p99_ms"],
                }
    finally:
        server.shutdown()
        server.server_close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[530, 10_000])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--output", type=Path, default=HERE / "status_page.json")
    args = parser.parse_args()
    sizes = [measure(placemarks, args.repeats) for placemarks in args.sizes]
    report = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "sizes": sizes}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print("| placemarks | request | bytes | server p50 ms | server p99 ms | HTTP p50 ms | HTTP p99 ms |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for size in sizes:
        for name, figures in size.items():
            if isinstance(figures, dict):
                print(
                    f"| {size['placemarks']} | {name} | {figures['bytes']} | {figures['server_p50_ms']} | "
                    f"{figures['server_p99_ms']} | {figures['http_p50_ms']} | {figures['http_p99_ms']} |"
                )
        print(f"| {size['placemarks']} | once per snapshot, at refresh | | {size['once_per_snapshot_ms']} | | | |")


if __name__ == "__main__":
    main()
