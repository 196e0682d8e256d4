"""Every upstream fault, played by a real local HTTP server against the real data path in process
(HttpSource, Refresher, SnapshotHolder, metrics, exposition; tests/rig.py), and one end to end
against otel-chargy as a subprocess.

Each fault must: fail the refresh with its outcome and a reason that says what happened, keep the
last good snapshot in service, set chargy_feed_up to 0, log one warning, mark the refresh span
failed, and leave the refresh loop working. The fault table of docs/faults.md is checked against FAULTS.
"""

from __future__ import annotations

import gzip
import logging
import random
import re
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from opentelemetry.trace import StatusCode

from otel_chargy.fetch import describe_failure
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.model import Device, Snapshot
from otel_chargy.outcome import Outcome
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.otlp_receiver import OtlpReceiver
from tests.rig import Rig
from tests.service import ServiceProcess, before_a_hang, free_port, wait_until
from tests.truth import assert_serves, expected_station_info, series_of

MAX_BYTES = 300_000
# Short where the timeout is the fault; elsewhere long, so that a loaded machine cannot turn a fault into a timeout.
FETCH_TIMEOUT_S = 2.0
GENEROUS_TIMEOUT_S = 30.0
# A bound on a hang, not a timing assertion: the refresh loop must end when asked.
HANG_BOUND_S = 10.0

NETWORK = generate_network(20, seed=1)
GOOD = render_kml(NETWORK)
BIG = render_kml(generate_network(400, seed=2))
assert len(GOOD) < MAX_BYTES < len(BIG)
# A third of the stations: well under half of the connectors.
SHRUNK = Snapshot(stations=NETWORK.stations[: len(NETWORK.stations) // 3])
assert SHRUNK.connector_count < NETWORK.connector_count / 2


def _other_device(device: Device) -> Device:
    """A device of another name ("CP1001" -> "CP91001"), its connectors renamed to match."""
    name = "CP9" + device.name.removeprefix("CP")
    return replace(
        device,
        name=name,
        connectors=tuple(replace(c, name=c.name.replace(device.name, name)) for c in device.connectors),
    )


# The first station again, at another address, with devices of its own.
FIRST = NETWORK.stations[0]
SECOND_PLACEMARK = replace(FIRST, address="2 other street", devices=tuple(_other_device(d) for d in FIRST.devices))
DUPLICATED = Snapshot(stations=(*NETWORK.stations, SECOND_PLACEMARK))
MERGED = Snapshot(stations=(replace(FIRST, devices=FIRST.devices + SECOND_PLACEMARK.devices), *NETWORK.stations[1:]))

HOSTILE_PREFIX = b'<?xml version="1.0"?>'
KML_TAIL = b"<kml><Document><Placemark><name>&e;</name></Placemark></Document></kml>"
# Compressed once here: compressing 50 MB per request would eat into the fetch timeout.
GZIP_BOMB = gzip.compress(b"<" * 50_000_000)


@dataclass(frozen=True)
class Fault:
    response: FeedResponse
    outcome: Outcome
    reason: str = ""
    """A part of the refresh's reason; {address} stands for the feed server's host:port."""


# fault, as the table of docs/faults.md names it -> what the feed server does, and what must come of it
FAULTS: dict[str, Fault] = {
    "HTTP 404": Fault(FeedResponse(b"not found", status=404), Outcome.HTTP_ERROR, "{address} answered HTTP 404"),
    "HTTP 503": Fault(FeedResponse(b"busy", status=503), Outcome.HTTP_ERROR, "{address} answered HTTP 503"),
    "304 Not Modified to a request without validators": Fault(
        FeedResponse(status=304), Outcome.HTTP_ERROR, "{address} answered 304"
    ),
    "connection reset before the answer": Fault(
        FeedResponse(reset=True), Outcome.NETWORK_ERROR, "connection reset by {address}"
    ),
    "connection closed mid-body": Fault(
        FeedResponse(GOOD, truncate_at=len(GOOD) // 2), Outcome.NETWORK_ERROR, "{address} broke off"
    ),
    "no answer past --fetch-timeout": Fault(FeedResponse(GOOD, hold=True), Outcome.TIMEOUT, "{address}"),
    "headers dripping 1 byte at a time past --fetch-timeout": Fault(
        FeedResponse(drip_headers_interval_s=0.2), Outcome.TIMEOUT, "{address}"
    ),
    "body dripping 1 byte at a time past --fetch-timeout": Fault(
        FeedResponse(GOOD, drip_interval_s=0.1), Outcome.TIMEOUT, "{address}"
    ),
    "body over --max-bytes, announced": Fault(FeedResponse(BIG), Outcome.TOO_LARGE),
    "body over --max-bytes, not announced": Fault(FeedResponse(BIG, announce_length=False), Outcome.TOO_LARGE),
    "gzip body inflating past --max-bytes": Fault(
        FeedResponse(GZIP_BOMB, headers={"Content-Encoding": "gzip"}), Outcome.TOO_LARGE
    ),
    "truncated XML": Fault(FeedResponse(GOOD[: len(GOOD) // 2]), Outcome.INVALID_XML),
    "malformed XML": Fault(FeedResponse(b"<kml><Document><Placemark></Document></kml>"), Outcome.INVALID_XML),
    # A UTF-8 document's bad bytes are repaired (tests/test_attack_parse.py); in another encoding, refused.
    "bytes not in the declared encoding": Fault(
        FeedResponse(
            GOOD.replace(b'encoding="UTF-8"', b'encoding="US-ASCII"').replace(b"Stations", b"St\xff\xfeations")
        ),
        Outcome.INVALID_XML,
    ),
    "DTD entities (billion laughs)": Fault(
        FeedResponse(HOSTILE_PREFIX + b'<!DOCTYPE kml [<!ENTITY a "aaaa"><!ENTITY e "&a;&a;&a;&a;">]>' + KML_TAIL),
        Outcome.FORBIDDEN_XML,
    ),
    "quadratic blow-up": Fault(
        FeedResponse(HOSTILE_PREFIX + b'<!DOCTYPE kml [<!ENTITY e "' + b"x" * 100_000 + b'">]>' + KML_TAIL),
        Outcome.FORBIDDEN_XML,
    ),
    "external entity": Fault(
        FeedResponse(HOSTILE_PREFIX + b'<!DOCTYPE kml [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + KML_TAIL),
        Outcome.FORBIDDEN_XML,
    ),
    "external DTD": Fault(
        FeedResponse(HOSTILE_PREFIX + b'<!DOCTYPE kml SYSTEM "http://127.0.0.1:9/kml.dtd">' + KML_TAIL),
        Outcome.FORBIDDEN_XML,
    ),
    "HTML error page with status 200": Fault(
        FeedResponse(
            b"<!DOCTYPE html><html><body><h1>Service unavailable</h1><br></body></html>", content_type="text/html"
        ),
        Outcome.NOT_KML,
    ),
    "JSON with status 200": Fault(
        FeedResponse(b'{"error": "quota"}', content_type="application/json"), Outcome.NOT_KML
    ),
    "KML with no placemarks": Fault(
        FeedResponse(b"<kml><Document><name>Stations</name></Document></kml>"), Outcome.EMPTY
    ),
    "placemarks without device JSON": Fault(
        FeedResponse(GOOD.replace(b'name="chargingdevice"', b'name="removed"')), Outcome.EMPTY, "no usable connector"
    ),
    "placemarks with invalid device JSON": Fault(
        FeedResponse(re.sub(rb"<value>\{.*?</value>", b"<value>{</value>", GOOD)),
        Outcome.EMPTY,
        "invalid_device_json: ",
    ),
    "the feed lost over half of its connectors (--max-shrink)": Fault(
        FeedResponse(render_kml(SHRUNK)), Outcome.SHRUNK, f"from {NETWORK.connector_count} to {SHRUNK.connector_count}"
    ),
    "the same station name on two placemarks": Fault(FeedResponse(render_kml(DUPLICATED)), Outcome.SUCCESS),
}
# Played by tests of their own, without a feed server or with a plain-HTTP one.
OTHER_FAULTS = {"connection refused": Outcome.NETWORK_ERROR, "TLS handshake failure": Outcome.NETWORK_ERROR}
FAILING = [fault for fault, played in FAULTS.items() if not played.outcome.succeeded]
TOLERATED = [fault for fault, played in FAULTS.items() if played.outcome.succeeded]
_FETCH_OUTCOMES = {Outcome.HTTP_ERROR, Outcome.NETWORK_ERROR, Outcome.TIMEOUT, Outcome.TOO_LARGE}


def test_docs_fault_table_matches_the_tested_faults() -> None:
    page = (Path(__file__).parent.parent / "docs" / "faults.md").read_text()
    section = page.split("<!-- faults:start -->")[1].split("<!-- faults:end -->")[0]
    rows = re.findall(r"^\| (.+?) \| `(\w+)` \|", section, re.M)
    tested = [(fault, played.outcome.value) for fault, played in FAULTS.items()]
    assert [row for row in rows if row[0] not in OTHER_FAULTS] == tested
    assert [row for row in rows if row[0] in OTHER_FAULTS] == [(f, o.value) for f, o in OTHER_FAULTS.items()]


def _address(feed: FeedServer) -> str:
    return httpx.URL(feed.url()).netloc.decode()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def _everything_said(rig: Rig, caplog: pytest.LogCaptureFixture) -> str:
    """Logs with their fields, spans, and the metrics text: where the key must never appear."""
    logs = [f"{record.getMessage()} {record.__dict__}" for record in caplog.records]
    spans = [span.to_json() for span in rig.span_exporter.get_finished_spans()]
    return "\n".join([*logs, *spans, rig.metrics_text()])


@pytest.mark.parametrize("fault", FAILING)
def test_fault_fails_the_refresh_and_keeps_the_last_good_snapshot(
    fault: str, feed: FeedServer, feed_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    played = FAULTS[fault]
    timeout_s = FETCH_TIMEOUT_S if played.outcome is Outcome.TIMEOUT else GENEROUS_TIMEOUT_S
    with Rig(feed_url, timeout_s=timeout_s, max_bytes=MAX_BYTES) as rig:
        feed.serve(FeedResponse(GOOD))
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        published = rig.holder.latest
        rig.span_exporter.clear()
        caplog.clear()

        feed.serve(played.response)
        with caplog.at_level(logging.INFO, logger="otel_chargy"):
            result = before_a_hang(rig.refresher.refresh_once, "the refresh")
        assert result.outcome is played.outcome, result.reason
        assert played.reason.format(address=_address(feed)) in result.reason

        assert rig.holder.latest is published and rig.holder.current is published
        assert_serves(rig.metrics(), NETWORK)
        assert rig.sample("chargy_feed_up") == 0
        assert rig.sample("chargy_feed_refreshes_total", outcome=played.outcome.value) == 1
        (warning,) = _warnings(caplog)
        assert warning.name == "otel_chargy.refresh"
        assert "the last good snapshot stays in service" in warning.getMessage()
        assert (getattr(warning, "outcome", None), getattr(warning, "reason", None)) == (
            played.outcome.value,
            result.reason,
        )

        (refresh_span,) = rig.spans("chargy.refresh")
        assert refresh_span.status.status_code is StatusCode.ERROR
        assert refresh_span.status.description == result.reason
        assert refresh_span.attributes and refresh_span.attributes["error.type"] == played.outcome.value
        failed_steps = {
            span.name for span in rig.span_exporter.get_finished_spans() if span.status.status_code is StatusCode.ERROR
        }
        step = "GET" if played.outcome in _FETCH_OUTCOMES else "chargy.parse"
        assert failed_steps == {"chargy.refresh"} | (set() if played.outcome is Outcome.SHRUNK else {step})
        assert TEST_API_KEY not in _everything_said(rig, caplog)

        moved = move_states(NETWORK, random.Random(4), fraction=0.3)
        feed.serve(FeedResponse(render_kml(moved)))
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), moved)
        assert rig.sample("chargy_feed_up") == 1


@pytest.mark.parametrize("fault", TOLERATED)
def test_tolerated_fault_is_counted_and_served_once(
    fault: str, feed: FeedServer, feed_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Rig(feed_url, timeout_s=GENEROUS_TIMEOUT_S, max_bytes=MAX_BYTES) as rig:
        feed.serve(FAULTS[fault].response)
        with caplog.at_level(logging.INFO, logger="otel_chargy"):
            assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        metrics = rig.metrics()
        assert_serves(metrics, MERGED)
        # One info series per station: the first placemark's address.
        assert series_of(metrics["chargy_station_info"]) == expected_station_info(NETWORK)
        assert rig.sample("chargy_feed_parse_issues_total", kind="duplicate_station") == 1
        assert rig.sample("chargy_feed_up") == 1
        assert not _warnings(caplog)


def test_dripping_headers_end_every_refresh_as_a_timeout(feed: FeedServer, feed_url: str) -> None:
    """The whole fetch is bounded, not each read: headers sent a byte at a time cannot hold a refresh."""
    feed.serve(FeedResponse(drip_headers_interval_s=0.1))
    with Rig(feed_url, timeout_s=1.0) as rig:
        for _ in range(3):
            assert before_a_hang(rig.refresher.refresh_once, "the refresh").outcome is Outcome.TIMEOUT
            assert rig.sample("chargy_feed_up") == 0
    assert feed.request_count == 3


def test_connection_refused_names_the_address(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with Rig(f"http://user:secret-password@127.0.0.1:{port}/kml?API-KEY={TEST_API_KEY}") as rig:
        with caplog.at_level(logging.INFO, logger="otel_chargy"):
            result = rig.refresher.refresh_once()
        assert result.outcome is Outcome.NETWORK_ERROR
        assert result.reason == f"connection refused by 127.0.0.1:{port}"
        (warning,) = _warnings(caplog)
        assert "no snapshot is served yet" in warning.getMessage()
        assert rig.sample("chargy_feed_up") == 0
        said = _everything_said(rig, caplog)
    assert TEST_API_KEY not in said and "secret-password" not in said


def test_tls_handshake_failure_names_the_address(feed: FeedServer) -> None:
    url = feed.url(query=f"API-KEY={TEST_API_KEY}").replace("http://", "https://")
    with Rig(url) as rig:
        result = rig.refresher.refresh_once()
    assert result.outcome is Outcome.NETWORK_ERROR
    assert result.reason.startswith(f"TLS handshake with {_address(feed)} failed: ")
    assert TEST_API_KEY not in result.reason


def test_unresolved_name_is_said_so() -> None:
    # A real lookup would leave 127.0.0.1: the error is built as httpx raises it, around getaddrinfo's.
    url = httpx.URL(f"https://feed.example:8443/kml?API-KEY={TEST_API_KEY}")
    try:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    except socket.gaierror as lookup_error:
        error = httpx.ConnectError("[Errno -2] Name or service not known")
        error.__cause__ = lookup_error
    described = describe_failure(error, url, 5)
    assert described.outcome is Outcome.NETWORK_ERROR
    assert described.reason == "name feed.example not resolved (Name or service not known)"


def test_a_stale_snapshot_is_not_said_to_be_in_service(
    feed: FeedServer, feed_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    with Rig(feed_url, max_staleness_s=10, monotonic=lambda: now[0]) as rig:
        feed.serve(FeedResponse(GOOD))
        rig.refresher.refresh_once()
        now[0] += 11
        feed.serve(FeedResponse(b"busy", status=503))
        with caplog.at_level(logging.INFO, logger="otel_chargy"):
            rig.refresher.refresh_once()
    (warning,) = _warnings(caplog)
    assert "older than the maximum staleness and no longer served" in warning.getMessage()


def test_a_304_to_the_first_fetch_is_an_error(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(status=304))
    with Rig(feed_url) as rig:
        result = rig.refresher.refresh_once()
        assert result.outcome is Outcome.HTTP_ERROR and "304" in result.reason
        assert rig.holder.latest is None
        assert rig.sample("chargy_feed_up") == 0


@pytest.mark.parametrize("propagate", [False, True])
def test_trace_context_goes_to_the_feed_only_when_asked(propagate: bool, feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(GOOD))
    with Rig(feed_url, propagate_trace_context=propagate) as rig:
        rig.refresher.refresh_once()
        (get_span,) = rig.spans("GET")
    headers = httpx.Headers(feed.requests[0][1])
    assert ("traceparent" in headers) is propagate
    if propagate:
        assert f"{get_span.context.trace_id:032x}" in headers["traceparent"]


def test_failures_are_retried_sooner_with_backoff(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(b"", status=500))
    with Rig(feed_url, refresh_interval_s=600) as rig:
        stop = threading.Event()
        loop = threading.Thread(target=rig.refresher.run, args=(stop,))
        loop.start()
        try:
            # With a 10-minute interval, a third attempt comes only from the backoff (about 1 s, then 2 s).
            wait_until(lambda: feed.request_count >= 3, "two retries")
            feed.serve(FeedResponse(GOOD))
            wait_until(lambda: rig.holder.latest is not None, "a successful refresh")
            assert rig.sample("chargy_feed_up") == 1
        finally:
            stop.set()
            loop.join(timeout=HANG_BOUND_S)
        assert not loop.is_alive()


@pytest.mark.parametrize("validator", ["etag", "last_modified"])
def test_unchanged_feed_costs_no_parse_and_stays_fresh(
    validator: str, feed: FeedServer, feed_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    network = generate_network(15, seed=5)
    validators = {"etag": '"v1"'} if validator == "etag" else {"last_modified": "Wed, 25 Nov 2026 10:00:00 GMT"}
    feed.serve(FeedResponse(render_kml(network), **validators))  # type: ignore[arg-type]
    now = [0.0]
    with Rig(feed_url, max_staleness_s=1, monotonic=lambda: now[0]) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        for _ in range(3):
            now[0] += 2  # past the maximum staleness: only the 304 keeps the snapshot fresh
            with caplog.at_level(logging.INFO, logger="otel_chargy"):
                assert rig.refresher.refresh_once().outcome is Outcome.NOT_MODIFIED
            assert rig.holder.current is not None
        assert rig.sample("chargy_feed_refreshes_total", outcome="success") == 1
        assert rig.sample("chargy_feed_refreshes_total", outcome="not_modified") == 3
        assert rig.sample("chargy_feed_up") == 1
        assert_serves(rig.metrics(), network)
        assert not rig.spans("chargy.parse")[1:]  # parsed once, for the first answer only
    assert [getattr(record, "outcome", None) for record in caplog.records] == ["not_modified"] * 3
    header = "If-None-Match" if validator == "etag" else "If-Modified-Since"
    first, second = feed.requests[0][1], feed.requests[1][1]
    assert header not in first and second[header] == next(iter(validators.values()))
    assert "gzip" in first["Accept-Encoding"]


def test_gzip_feed_is_read(feed: FeedServer, feed_url: str) -> None:
    network = generate_network(30, seed=6)
    feed.serve(FeedResponse(render_kml(network), gzip=True))
    with Rig(feed_url) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), network)
    assert httpx.Headers(feed.requests[0][1])["accept"].startswith("application/vnd.google-earth.kml+xml")


def test_a_fault_end_to_end(feed: FeedServer, feed_url: str) -> None:
    """The one fault played against the real process: what an operator sees on /metrics, /readyz,
    in the logs and in the exported spans, and that the key appears in none of them."""
    args = ["--kml-url", feed_url, "--refresh-interval", "0.5", "--fetch-timeout", "2"]
    args += ["--max-bytes", str(MAX_BYTES), "--max-staleness", "3600", "--log.level", "debug"]
    with OtlpReceiver() as receiver:
        env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint}
        env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
        feed.serve(FeedResponse(GOOD))
        with ServiceProcess(args, env=env) as service:
            service.wait_for_refreshes("success", 1)
            feed.serve(FeedResponse(drip_headers_interval_s=0.1))
            service.wait_for_refreshes("timeout", 1)
            assert service.sample("chargy_feed_up") == 0
            assert_serves(service.metrics(), NETWORK)
            assert service.get("/readyz").status_code == 200
            warning = next(line for line in service.logs().splitlines() if "outcome=timeout" in line)
            assert "level=warn" in warning and "logger=otel_chargy.refresh" in warning
            assert "the last good snapshot stays in service" in warning and _address(feed) in warning
            outputs = [service.get(path).text for path in ("/", "/metrics", "/readyz")]
            wait_until(lambda: len(receiver.spans()) >= 5, "the spans of both refreshes")
        outputs += [service.logs(), receiver.all_bytes().decode(errors="replace")]
    assert service.process.returncode == 0
    for output in outputs:
        assert TEST_API_KEY not in output
