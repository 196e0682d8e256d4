"""otel-chargy against the naive reference exporter, side by side, in one run.

    python benchmarks/run.py                  # 1k, 10k and 50k placemarks (~2.9k, 29k, 143k connectors)
    python benchmarks/run.py --sizes 1000     # one size
    python benchmarks/run.py --compare ../old # also another otel-chargy checkout, side by side

For each size: generates a feed with the project's generator, serves it on 127.0.0.1 (two versions
in turn, 5 % of the connectors in another state, as a live feed moves between refreshes), runs
otel-chargy and benchmarks/naive_exporter.py as subprocesses, and measures refresh time, scrape
latency (sequential and 8 concurrent clients, plain and gzip), response bytes, peak RSS and CPU
per scrape and per refresh; and, in process, the CPU of one collection by a push reader (OTLP) against callbacks that
build their observations at each collection. Then the OTLP figures of each --otlp.detail level, in
process: points and requests per export, the largest request (bytes, uncompressed: what the receiver's
limit counts) under the Collector's default limits (gRPC 4 MiB, HTTP 20 MiB), and CPU per collection.
Prints tables (ratios otel-chargy / naive) and writes them as JSON, with a note when the machine's load
average is above 0.5 (others' work then shares the cores, and absolute figures are slower).
Needs the `bench` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

from otel_chargy.catalog import SNAPSHOT_METRICS, Detail
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.holder import RefreshStatus, Served
from otel_chargy.metrics import OverflowTally, ServedFeed, build_meter_provider
from otel_chargy.model import Snapshot
from otel_chargy.publication import Outputs, build_publication
from otel_chargy.telemetry import MAX_REQUEST_BYTES, build_resource, split_metrics, wire_metrics
from otel_chargy.usage import UsageTracker

sys.path.insert(0, str(Path(__file__).parent.parent))  # the reader lives with the tests' OTLP receiver
from tests.otlp_receiver import KeepingReader

HERE = Path(__file__).parent
# What Prometheus sends: it prefers OpenMetrics.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
CONCURRENT_CLIENTS = 8
MAX_CONNECTORS = 200_000
"""--max-connectors for every size: the largest is beyond the default (a third over ten times today's network)."""
COMPARED = "compared"
"""The kind of the other otel-chargy checkout given with --compare."""


def serve_feed(bodies: list[bytes]) -> tuple[ThreadingHTTPServer, str]:
    """Serves the bodies in turn, one a request."""
    served = itertools.count()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = bodies[next(served) % len(bodies)]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/kml"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


QUIET_LOAD = 0.5


def load_note() -> str | None:
    """A note when the machine is not quiet: the 1-minute load average above QUIET_LOAD."""
    load = os.getloadavg()[0]
    if load <= QUIET_LOAD:
        return None
    return (
        f"load average {load:.2f} (above {QUIET_LOAD}): other work shares the {os.cpu_count()} cores; "
        "absolute figures are slower than on a quiet machine, ratios measured side by side say more"
    )


def start(
    kind: str, feed_url: str, port: int, interval_s: float, log: Path, compare: Path | None = None
) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "CHARGY_"))}
    if kind != "naive":
        command = [sys.executable, "-m", "otel_chargy.main", "--kml-url", feed_url, "--refresh-interval",
                   str(interval_s), "--web.listen-address", f"127.0.0.1:{port}", "--log.format", "json",
                   "--max-connectors", str(MAX_CONNECTORS)]  # fmt: skip
        if kind == COMPARED:
            assert compare is not None
            env["PYTHONPATH"] = str(compare.resolve())  # the other checkout's package comes first
    else:
        command = [sys.executable, str(HERE / "naive_exporter.py"), feed_url, str(port), str(interval_s)]
    # `python -m` puts the working directory first on the path: the compared checkout's own root.
    cwd = compare if kind == COMPARED else None
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=cwd)


def refresh_times(log: Path) -> list[float]:
    times = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "refresh_s" in record:
                times.append(record["refresh_s"])
            elif record.get("msg") == "refresh finished":
                times.append(record["duration_s"])
    return times


def wait(condition: Callable[[], bool], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(f"gave up waiting for {what}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def scrape_ms(client: httpx.Client, gzip: bool) -> tuple[float, int]:
    headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip" if gzip else "identity"}
    started = time.perf_counter()
    with client.stream("GET", "/metrics", headers=headers) as response:
        size = sum(len(chunk) for chunk in response.iter_raw())
    assert response.status_code == 200
    return (time.perf_counter() - started) * 1000, size


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(kind: str, feed_url: str, repeats: int, workdir: Path, compare: Path | None) -> dict[str, float]:
    result: dict[str, float] = {}
    # Refresh: back to back (an interval shorter than a refresh), at least `repeats` of them.
    log = workdir / f"{kind}-refresh.log"
    process = start(kind, feed_url, free_port(), 0.5, log, compare)
    try:
        wait(lambda: len(refresh_times(log)) >= 1, 3600, f"{kind} first refresh")
        # CPU per refresh: on a shared machine, what a refresh costs whoever else runs; the wall-clock
        # time stretches with the load.
        cpu_before, counted_before = cpu_seconds(process.pid), len(refresh_times(log))
        wait(lambda: len(refresh_times(log)) >= counted_before + repeats, 3600, f"{kind} refreshes")
        cpu_after, counted_after = cpu_seconds(process.pid), len(refresh_times(log))
    finally:
        process.terminate()
        process.wait()
    result["refresh_s"] = statistics.median(refresh_times(log)[1:])  # the first one warms up
    result["refresh_cpu_s"] = (cpu_after - cpu_before) / (counted_after - counted_before)
    # Scrapes: one refresh, then none while measuring.
    port = free_port()
    log = workdir / f"{kind}-scrape.log"
    process = start(kind, feed_url, port, 3600, log, compare)
    try:
        wait(lambda: len(refresh_times(log)) >= 1, 3600, f"{kind} first refresh")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            scrape_ms(client, gzip=False)  # warm up (otel-chargy renders its feed-health part once per change)
            cpu_before = cpu_seconds(process.pid)
            plain = [scrape_ms(client, gzip=False) for _ in range(repeats)]
            result["cpu_ms_per_scrape"] = (cpu_seconds(process.pid) - cpu_before) / repeats * 1000
            gzipped = [scrape_ms(client, gzip=True) for _ in range(repeats)]
        result["scrape_p50_ms"] = statistics.median(ms for ms, _ in plain)
        result["scrape_p99_ms"] = percentile([ms for ms, _ in plain], 0.99)
        result["gzip_scrape_p50_ms"] = statistics.median(ms for ms, _ in gzipped)
        result["response_bytes"] = plain[-1][1]
        result["gzip_response_bytes"] = gzipped[-1][1]

        def client_run(_: int) -> list[float]:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                return [scrape_ms(client, gzip=True)[0] for _ in range(repeats)]

        with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
            concurrent = [ms for run in pool.map(client_run, range(CONCURRENT_CLIENTS)) for ms in run]
        result["concurrent_p50_ms"] = statistics.median(concurrent)
        result["concurrent_p99_ms"] = percentile(concurrent, 0.99)
        result["peak_rss_mib"] = peak_rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait()
    return result


def collection_cpu_ms(reader: KeepingReader, repeats: int) -> float:
    reader.collect(timeout_millis=3_600_000)  # the first collection creates the attribute sets
    times = []
    for _ in range(repeats):
        started = time.process_time()
        reader.collect(timeout_millis=3_600_000)
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def otlp_collection_ms(network: Snapshot, repeats: int) -> dict[str, float]:
    """CPU of one collection by a push reader (what an OTLP export collects), in process: otel-chargy's
    callbacks return observations prepared at refresh time; the baseline's build them from the snapshot
    at each collection, as a plain SDK program would."""
    ours = KeepingReader()
    wire_metrics(
        prometheus=None,
        push_readers=[ours],
        resource=build_resource(),
        max_staleness_s=3600,
        max_connectors=MAX_CONNECTORS,
    ).holder.publish(network, fetched_at=0)
    baseline = KeepingReader()
    outputs = Outputs(observed=SNAPSHOT_METRICS)
    usage = UsageTracker(3600).observe(network, 0, 0)
    # Every collection reads the holder once: a publication built per read is the observations built per collection.
    rebuilt = ServedFeed(lambda: Served(build_publication(network, usage, outputs, 0, 0), RefreshStatus(), 0))
    build_meter_provider(
        [baseline], build_resource(), rebuilt, OverflowTally([]), SNAPSHOT_METRICS, max_connectors=MAX_CONNECTORS
    )
    return {"otel-chargy": collection_cpu_ms(ours, repeats), "naive": collection_cpu_ms(baseline, repeats)}


def otlp_figures(network: Snapshot, repeats: int) -> dict[str, dict[str, float]]:
    """Per --otlp.detail level: points, requests and largest request of one export, CPU per collection."""
    figures = {}
    for detail in Detail:
        reader = KeepingReader()
        wiring = wire_metrics(
            prometheus=None,
            push_readers=[reader],
            resource=build_resource(),
            max_staleness_s=3600,
            detail=detail,
            max_connectors=MAX_CONNECTORS,
        )
        wiring.holder.publish(network, fetched_at=0)
        cpu_ms = collection_cpu_ms(reader, repeats)
        assert reader.metrics_data is not None
        points = sum(
            len(metric.data.data_points)
            for resource_metrics in reader.metrics_data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        )
        level: dict[str, float] = {"points_per_export": points, "collect_cpu_ms": cpu_ms}
        for protocol, limit in MAX_REQUEST_BYTES.items():
            started = time.process_time()
            requests = split_metrics(reader.metrics_data, limit)
            level[f"{protocol}_split_cpu_ms"] = (time.process_time() - started) * 1000
            level[f"{protocol}_requests_per_export"] = len(requests)
            level[f"{protocol}_largest_request_bytes"] = max(encode_metrics(request).ByteSize() for request in requests)
        figures[detail.value] = level
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000], help="placemarks per feed")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per figure, median taken (>= 5)")
    parser.add_argument("--output", type=Path, default=HERE / "latest.json")
    parser.add_argument(
        "--compare", type=Path, help="another otel-chargy checkout (its root) to run side by side, as `compared`"
    )
    parser.add_argument("--skip-otlp", action="store_true", help="leave out the in-process OTLP figures")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "load_notes": [],
        "sizes": [],
    }
    kinds = ("otel-chargy", "naive", *([COMPARED] if args.compare else []))
    with tempfile.TemporaryDirectory() as directory:
        for placemarks in args.sizes:
            network = generate_network(placemarks, seed=1)
            moved = move_states(network, random.Random(2), fraction=0.05)
            server, url = serve_feed([render_kml(network), render_kml(moved)])
            try:
                figures = {}
                for kind in kinds:
                    if (note := load_note()) is not None:
                        report["load_notes"].append(f"{placemarks} placemarks, {kind}: {note}")
                    figures[kind] = measure(kind, url, args.repeats, Path(directory), args.compare)
            finally:
                server.shutdown()
            if not args.skip_otlp:
                for kind, milliseconds in otlp_collection_ms(network, args.repeats).items():
                    figures[kind]["otlp_collect_cpu_ms"] = milliseconds
            size = {"placemarks": placemarks, "connectors": network.connector_count, **figures}
            size["otlp"] = {} if args.skip_otlp else otlp_figures(network, args.repeats)
            report["sizes"].append(size)
    if (note := load_note()) is not None:
        report["load_notes"].append(f"at the end: {note}")
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))


def _ratio(ours: float | None, theirs: float) -> str:
    return "-" if ours is None or not theirs else f"{ours / theirs:.3g}"


def table(report: dict[str, Any]) -> str:
    lines = [f"Machine: {report['machine']}; {report['date']}. Ratio: otel-chargy / naive (lower is better).", ""]
    lines += [f"Note: {note}." for note in report.get("load_notes", [])]
    for size in report["sizes"]:
        compared = size.get(COMPARED)
        extra = (" | compared | ratio", " ---: | ---: |") if compared else ("", "")
        lines += [
            "",
            f"{size['placemarks']} placemarks, {size['connectors']} connectors:",
            "",
            f"| figure | otel-chargy | naive | ratio{extra[0]} |",
            "| --- | ---: | ---: | ---: |" + extra[1],
        ]
        for figure, ours in size["otel-chargy"].items():
            theirs = size["naive"][figure]
            row = f"| {figure} | {ours:,.4g} | {theirs:,.4g} | {_ratio(ours, theirs)} |"
            if compared:
                other = compared.get(figure)
                row += f" {'-' if other is None else f'{other:,.4g}'} | {_ratio(other, theirs)} |"
            lines.append(row)
        levels = size["otlp"]
        if not levels:
            continue
        lines += [
            "",
            "OTLP, one export:",
            "",
            "| figure | " + " | ".join(levels) + " |",
            "| --- |" + " ---: |" * len(levels),
        ]
        for figure in next(iter(levels.values())):
            lines.append(f"| {figure} | " + " | ".join(f"{levels[level][figure]:,.4g}" for level in levels) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
