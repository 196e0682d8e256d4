"""OTLP push while every label value keeps changing: the service's memory over time (issue #23's measurement).

    python benchmarks/otlp_memory.py                       # the three cases, 120 s each
    python benchmarks/otlp_memory.py --cases http --seconds 30

A feed of about 1,870 connectors whose every connector shows a new maximum power (so a new `speed`
label) at each request, refreshed every 0.5 s by otel-chargy run as a subprocess, its metrics and
traces pushed every second to the tests' OTLP receiver (tests/otlp_receiver.py) on 127.0.0.1. The
service's RSS is sampled every 0.5 s from the first export (from the first feed request without OTLP):
the figures at 10 s, at half time and at the end are the medians of the samples within 5 s of them
(of the last 10 s for the end). The receiver counts the
connectors of each request. Cases: OTLP/HTTP and gRPC at `--otlp.detail connector`, OTLP/HTTP at `station`, and the
Prometheus endpoint alone for comparison. The goal (issue #23): RSS at the end at most 1.5 times the
RSS at 10 s, and under 300 MiB. `--source DIR` runs the service from another checkout (say, a commit
before the fix, extracted with `git archive`). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from otel_chargy.generator import generate_network, render_kml
from otel_chargy.model import Snapshot

sys.path.insert(0, str(Path(__file__).parent.parent))  # the receiver lives with the tests
from tests.otlp_receiver import OtlpReceiver, attributes_of
from tests.process_status import status_kib
from tests.service import free_port

HERE = Path(__file__).parent
PLACEMARKS = 651  # 1,870 connectors, the size of issue #23's measurement
GOAL_GROWTH = 1.5
GOAL_MIB = 300.0
CASES: dict[str, dict[str, str]] = {
    "http": {"protocol": "http/protobuf", "detail": "connector"},
    "grpc": {"protocol": "grpc", "detail": "connector"},
    "http-station": {"protocol": "http/protobuf", "detail": "station"},
    "prometheus": {},
}


def with_new_powers(network: Snapshot, generation: int) -> Snapshot:
    """Every connector at a maximum power it never showed before: a new `speed` at each generation."""
    return replace(
        network,
        stations=tuple(
            replace(
                station,
                devices=tuple(
                    replace(
                        device,
                        connectors=tuple(
                            replace(connector, max_power_kw=connector.max_power_kw + generation)
                            for connector in device.connectors
                        ),
                    )
                    for device in station.devices
                ),
            )
            for station in network.stations
        ),
    )


class ChangingFeed:
    """Serves a new version of the network at every request."""

    def __init__(self, network: Snapshot) -> None:
        self.requests = 0
        lock = threading.Lock()
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with lock:
                    feed.requests += 1
                    generation = feed.requests
                body = render_kml(with_new_powers(network, generation))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/kml"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def rss_mib(pid: int) -> float:
    return status_kib("VmRSS", pid) / 1024


def connectors_per_request(receiver: OtlpReceiver) -> list[int]:
    """For each metrics request received since the last call: its connectors (connector-state points by
    connector), 0 for a request without them."""
    counts = []
    for request in receiver.take_requests()[0]:
        connectors = {
            frozenset(attributes_of(point.attributes).items() - {("chargy_connector_state", value)})
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == "chargy.connector.state"
            for point in metric.gauge.data_points
            for value in [attributes_of(point.attributes)["chargy_connector_state"]]
        }
        counts.append(len(connectors))
    return counts


def run_case(case: str, seconds: float, source: Path, directory: Path) -> dict[str, Any]:
    settings = CASES[case]
    network = generate_network(PLACEMARKS, seed=1)
    feed = ChangingFeed(network)
    log = directory / f"{case}.log"
    with OtlpReceiver() as receiver:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "CHARGY_"))}
        env["PYTHONPATH"] = str(source)
        command = [sys.executable, "-m", "otel_chargy.main", "--kml-url", feed.url, "--refresh-interval", "0.5",
                   "--web.listen-address", f"127.0.0.1:{free_port()}", "--log.format", "json"]  # fmt: skip
        if settings:
            endpoint = receiver.http_endpoint if settings["protocol"] == "http/protobuf" else receiver.grpc_endpoint
            env |= {
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": settings["protocol"],
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            }
            command += ["--otlp.detail", settings["detail"]]
        process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=source)
        samples: list[tuple[float, float]] = []
        exported: list[int] = []
        try:
            # The clock starts at the first export (the first refresh, when nothing is pushed): a loaded
            # machine takes seconds to start the service, which would otherwise count as growth.
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < seconds:
                requests = connectors_per_request(receiver) if settings else [0] * (feed.requests > 0)
                if requests and not exported:
                    started, elapsed, samples = time.monotonic(), 0.0, []
                exported += requests
                if exported:
                    samples.append((elapsed, rss_mib(process.pid)))
                if process.poll() is not None:
                    raise RuntimeError(f"the service exited: {log.read_text()[-2000:]}")
                time.sleep(0.5)
            peak = status_kib("VmHWM", process.pid) / 1024
        finally:
            process.terminate()
            process.wait()
            feed.close()
    if not samples:
        raise RuntimeError(f"the service exported nothing in {seconds:.0f} s: {log.read_text()[-2000:]}")
    # The RSS swings by tens of MiB within an export (its data points, then its encoding): each figure is
    # the median of the samples within 5 s of its time, so that it does not depend on where the export was.
    rss = {
        mark: statistics.median(value for at, value in samples if abs(at - around) <= 5)
        for mark, around in (("10s", 10.0), ("half", seconds / 2), ("end", seconds - 5))
    }
    result: dict[str, Any] = {
        **{f"rss_{mark}_mib": value for mark, value in rss.items()},
        "peak_rss_mib": peak,
        "growth": rss["end"] / rss["10s"],
        "feed_versions_served": feed.requests,
        "connectors": network.connector_count,
    }
    if settings:
        result["metric_requests"] = len(exported)
        # Every connector of the snapshot in each request that carries connectors, none of a former one.
        result["connectors_per_request"] = sorted(set(exported) - {0})
    result["meets_goal"] = result["growth"] <= GOAL_GROWTH and rss["end"] < GOAL_MIB
    return result


def table(report: dict[str, Any]) -> str:
    lines = [
        f"Machine: {report['machine']}; {report['date']}; {report['seconds']:.0f} s a case, "
        f"load average {report['load_average']:.2f} at the start.",
        "",
        "| case | RSS at 10 s | half time | end | peak | end / 10 s | feed versions | OTLP requests | goal met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case, result in report["cases"].items():
        lines.append(
            f"| {case} | {result['rss_10s_mib']:.0f} MiB | {result['rss_half_mib']:.0f} MiB "
            f"| {result['rss_end_mib']:.0f} MiB | {result['peak_rss_mib']:.0f} MiB | {result['growth']:.2f} "
            f"| {result['feed_versions_served']} | {result.get('metric_requests', '-')} "
            f"| {'yes' if result['meets_goal'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=["http", "grpc", "http-station"])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--source", type=Path, default=HERE.parent, help="the checkout the service runs from")
    parser.add_argument("--output", type=Path, default=HERE / "otlp_memory.json")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "seconds": args.seconds,
        "load_average": os.getloadavg()[0],
        "source": str(args.source),
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as directory:
        for case in args.cases:
            report["cases"][case] = run_case(case, args.seconds, args.source.resolve(), Path(directory))
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report), end="")


if __name__ == "__main__":
    main()
