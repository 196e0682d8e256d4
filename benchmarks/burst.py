"""A burst of simultaneous scrapes against otel-chargy serving today's network.

    python benchmarks/burst.py                 # 100 scrapes at once, 5 bursts
    python benchmarks/burst.py --clients 200

Serves a generated network of today's size (530 placemarks) from a local feed server, starts
otel-chargy as a process, waits for its first refresh, then opens `--clients` connections at once,
each sending one scrape as Prometheus does (its Accept header, gzip), and times each from its
connect to its last byte. The bytes are counted, not inflated or parsed, so that the clients, which
share this process, measure the server rather than themselves. Prints the slowest and the median
answer of each burst, and how many answered whole; writes them as JSON (benchmarks/burst.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent.parent))  # the feed server and the process runner of tests/

from otel_chargy.generator import generate_network, render_kml
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess

HERE = Path(__file__).parent
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def burst(base_url: str, clients: int) -> dict[str, Any]:
    start = threading.Barrier(clients)
    durations_ms: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def scrape() -> None:
        headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
        with httpx.Client(base_url=base_url, timeout=60) as client:
            start.wait()
            started = time.perf_counter()
            try:
                with client.stream("GET", "/metrics", headers=headers) as response:
                    received = sum(len(chunk) for chunk in response.iter_raw())
                whole = response.status_code == 200 and received == int(response.headers["content-length"])
            except httpx.HTTPError as error:
                whole, response = False, None
                with lock:
                    failures.append(type(error).__name__)
            elapsed_ms = (time.perf_counter() - started) * 1000
            with lock:
                if whole:
                    durations_ms.append(elapsed_ms)
                elif response is not None:
                    failures.append(str(response.status_code))

    threads = [threading.Thread(target=scrape) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "answered_whole": len(durations_ms),
        "failures": failures,
        "p50_ms": round(statistics.median(durations_ms), 1) if durations_ms else None,
        "max_ms": round(max(durations_ms), 1) if durations_ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--placemarks", type=int, default=530)
    parser.add_argument("--output", type=Path, default=HERE / "burst.json")
    args = parser.parse_args()
    network = generate_network(args.placemarks, seed=1)
    with FeedServer() as feed:
        feed.serve(FeedResponse(render_kml(network)))
        with ServiceProcess(["--kml-url", feed.url(), "--refresh-interval", "300"]) as service:
            service.wait_for_refreshes("success", 1)
            bursts = [burst(service.base_url, args.clients) for _ in range(args.bursts)]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}",
        "placemarks": args.placemarks,
        "connectors": network.connector_count,
        "clients": args.clients,
        "bursts": bursts,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.clients} simultaneous scrapes, {network.connector_count} connectors ({report['machine']}):")
    print("| burst | answered whole | p50 ms | slowest ms |\n| ---: | ---: | ---: | ---: |")
    for index, result in enumerate(bursts, 1):
        print(f"| {index} | {result['answered_whole']} | {result['p50_ms']} | {result['max_ms']} |")


if __name__ == "__main__":
    main()
