"""How long otel-chargy takes to give up, and what it burns meanwhile: the figures behind the tests that
only wait for these things with a deadline a hang would miss (tests/test_faults.py, test_cli.py,
test_clients.py).

    python benchmarks/deadlines.py

- a refresh against a feed that never answers, that drips its headers, that drips its body: seconds
  from the start of the refresh to its `timeout` outcome, against `--fetch-timeout` (2 s here);
- SIGTERM during a fetch that hangs (the feed and the fetch timeout both 10 minutes): seconds to exit;
- out of file descriptors, with 10 connections waiting: the share of a core the process uses over 3 s
  (a spinning accept loop would take what it gets; one that waits between attempts, almost none).

Writes benchmarks/deadlines.json.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))  # the feed server, rig and process runner of tests/

from otel_chargy.generator import generate_network, render_kml
from tests.feedserver import FeedResponse, FeedServer
from tests.rig import Rig
from tests.service import ServiceProcess, wait_until

HERE = Path(__file__).parent
FETCH_TIMEOUT_S = 2.0
GOOD = render_kml(generate_network(20, seed=1))


def refresh_s(response: FeedResponse) -> dict[str, Any]:
    with FeedServer() as feed, Rig(feed.url(), timeout_s=FETCH_TIMEOUT_S) as rig:
        feed.serve(response)
        started = time.perf_counter()
        outcome = rig.refresher.refresh_once().outcome
        return {"outcome": outcome.value, "seconds": round(time.perf_counter() - started, 3)}


def sigterm_s() -> float:
    with FeedServer() as feed:
        feed.serve(FeedResponse(b"", delay_s=600))
        service = ServiceProcess(["--kml-url", feed.url(), "--fetch-timeout", "600"])
        with service:
            wait_until(lambda: feed.request_count >= 1, "the fetch to start")
            started = time.perf_counter()
            service.process.send_signal(signal.SIGTERM)
            service.process.wait(timeout=600)
            return round(time.perf_counter() - started, 3)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def out_of_descriptors_core_share(window_s: float = 3.0) -> float:
    with ServiceProcess(["--demo"]) as demo:
        demo.wait_for_refreshes("success", 1)
        demo.client.close()
        pid = demo.process.pid
        open_now = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_now + 3, resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]))
        clients = [socket.create_connection(("127.0.0.1", demo.port)) for _ in range(10)]
        try:
            wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) >= open_now + 3, "the process to run out")
            before, started = cpu_s(pid), time.perf_counter()
            time.sleep(window_s)
            return round((cpu_s(pid) - before) / (time.perf_counter() - started), 4)
        finally:
            for client in clients:
                client.close()


def main() -> None:
    refreshes = {
        "no answer": refresh_s(FeedResponse(GOOD, hold=True)),
        "headers dripped": refresh_s(FeedResponse(drip_headers_interval_s=0.2)),
        "body dripped": refresh_s(FeedResponse(GOOD, drip_interval_s=0.1)),
    }
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "fetch_timeout_s": FETCH_TIMEOUT_S,
        "refresh": refreshes,
        "sigterm_during_hanging_fetch_s": sigterm_s(),
        "out_of_descriptors_core_share": out_of_descriptors_core_share(),
    }
    (HERE / "deadlines.json").write_text(json.dumps(report, indent=2) + "\n")
    for fault, figures in refreshes.items():
        print(f"refresh, feed {fault}: {figures['outcome']} after {figures['seconds']} s (timeout {FETCH_TIMEOUT_S} s)")
    print(f"SIGTERM during a hanging fetch: exited after {report['sigterm_during_hanging_fetch_s']} s")
    print(f"out of file descriptors: {report['out_of_descriptors_core_share']:.1%} of a core")


if __name__ == "__main__":
    main()
