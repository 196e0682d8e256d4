"""Clients of the service: many scrapers at once, stalled clients, oversized requests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from otel_chargy.generator import generate_network, render_kml
from otel_chargy.model import Snapshot
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess
from tests.truth import assert_serves

SCRAPERS = 50
SCRAPE_DURATION_S = 30.0


@pytest.fixture
def service(feed: FeedServer, feed_url: str) -> Iterator[tuple[ServiceProcess, Snapshot]]:
    network = generate_network(400, seed=31)
    feed.serve(FeedResponse(render_kml(network)))
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "1"]) as running:
        running.wait_for_refreshes("success", 1)
        yield running, network


def slowloris(port: int, count: int) -> list[socket.socket]:
    """Connections that send half a request and then nothing."""
    stalled = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        stalled.append(connection)
    return stalled


def test_concurrent_scrapers_all_get_complete_answers(service: tuple[ServiceProcess, Snapshot]) -> None:
    running, network = service
    stalled = slowloris(running.port, 20)
    failures: list[str] = []
    counts = [0] * SCRAPERS
    deadline = time.monotonic() + SCRAPE_DURATION_S  # a bounded load, not a timing assertion

    def scrape(index: int) -> None:
        with httpx.Client(base_url=running.base_url, timeout=30) as client:
            while time.monotonic() < deadline:
                response = client.get("/metrics", headers={"Accept-Encoding": "gzip" if index % 2 else "identity"})
                families = {f.name: f for f in text_string_to_metric_families(response.text)}
                if response.status_code != 200 or "chargy_feed_up" not in families:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    return
                try:
                    assert_serves(families, network)
                except AssertionError as error:
                    failures.append(str(error)[:200])
                    return
                counts[index] += 1

    threads = [threading.Thread(target=scrape, args=(index,)) for index in range(SCRAPERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for connection in stalled:
        connection.close()
    assert failures == []
    assert all(count > 0 for count in counts)


def test_a_stalled_client_does_not_block_others(service: tuple[ServiceProcess, Snapshot]) -> None:
    running, _ = service
    stalled = slowloris(running.port, 50)
    try:
        assert running.get("/metrics").status_code == 200
        assert running.get("/healthz").status_code == 200
    finally:
        for connection in stalled:
            connection.close()


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(request)  # may be refused before it is all sent: the answer is what matters
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def test_huge_headers_are_refused(service: tuple[ServiceProcess, Snapshot]) -> None:
    running, _ = service
    long_header = raw_request(running.port, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert long_header.split(b" ")[1] in (b"400", b"431")
    many = b"".join(b"X-H%d: v\r\n" % index for index in range(200))
    many_headers = raw_request(running.port, b"GET /metrics HTTP/1.1\r\n" + many + b"\r\n")
    assert many_headers.split(b" ")[1] == b"431"
    assert running.get("/healthz").status_code == 200


def test_huge_body_is_refused(service: tuple[ServiceProcess, Snapshot]) -> None:
    running, _ = service
    body = b"x" * 10_000_000
    answer = raw_request(
        running.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:100_000]
    )
    assert answer.split(b" ")[1] == b"413"
    assert running.get("/metrics").status_code == 200
