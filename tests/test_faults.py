"""Every upstream fault, played by a real local HTTP server against otel-chargy as a subprocess.

Each fault must: fail the refresh with its outcome, keep the last good snapshot in service,
set chargy_feed_up to 0, log one warning, and leave the process alive. The README's fault table
is checked against FAULTS.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import httpx
import pytest

from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.outcome import Outcome
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.otlp_receiver import OtlpReceiver
from tests.service import ServiceProcess, free_port, wait_until
from tests.truth import assert_serves

MAX_BYTES = 300_000
GOOD = render_kml(generate_network(20, seed=1))
BIG = render_kml(generate_network(400, seed=2))
assert len(GOOD) < MAX_BYTES < len(BIG)

HOSTILE_PREFIX = b'<?xml version="1.0"?>'
KML_TAIL = b"<kml><Document><Placemark><name>&e;</name></Placemark></Document></kml>"

# fault, as the README's table names it -> (what the feed server does, the outcome)
FAULTS: dict[str, tuple[FeedResponse, Outcome]] = {
    "HTTP 404": (FeedResponse(b"not found", status=404), Outcome.HTTP_ERROR),
    "HTTP 503": (FeedResponse(b"busy", status=503), Outcome.HTTP_ERROR),
    "connection reset mid-body": (FeedResponse(GOOD, truncate_at=len(GOOD) // 2), Outcome.NETWORK_ERROR),
    "no answer past --fetch-timeout": (FeedResponse(GOOD, delay_s=4), Outcome.TIMEOUT),
    "body dripping 1 byte at a time past --fetch-timeout": (
        FeedResponse(GOOD, drip_interval_s=0.1),
        Outcome.TIMEOUT,
    ),
    "body over --max-bytes, announced": (FeedResponse(BIG), Outcome.TOO_LARGE),
    "body over --max-bytes, not announced": (FeedResponse(BIG, announce_length=False), Outcome.TOO_LARGE),
    "gzip body inflating past --max-bytes": (FeedResponse(b"<" * 50_000_000, gzip=True), Outcome.TOO_LARGE),
    "truncated XML": (FeedResponse(GOOD[: len(GOOD) // 2]), Outcome.INVALID_XML),
    "malformed XML": (FeedResponse(b"<kml><Document><Placemark></Document></kml>"), Outcome.INVALID_XML),
    "bytes not in the declared encoding": (
        FeedResponse(GOOD.replace(b"Stations", b"St\xff\xfeations")),
        Outcome.INVALID_XML,
    ),
    "DTD entities (billion laughs)": (
        FeedResponse(HOSTILE_PREFIX + b'<!DOCTYPE kml [<!ENTITY a "aaaa"><!ENTITY e "&a;&a;&a;&a;">]>' + KML_TAIL),
        Outcome.FORBIDDEN_XML,
    ),
    "quadratic blow-up": (
        FeedResponse(HOSTILE_PREFIX + b'<!DOCTYPE kml [<!ENTITY e "' + b"x" * 100_000 + b'">]>' + KML_TAIL),
        Outcome.FORBIDDEN_XML,
    ),
    "external entity": (
        FeedResponse(HOSTILE_PREFIX + b'<!DOCTYPE kml [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + KML_TAIL),
        Outcome.FORBIDDEN_XML,
    ),
    "external DTD": (
        FeedResponse(HOSTILE_PREFIX + b'<!DOCTYPE kml SYSTEM "http://127.0.0.1:9/kml.dtd">' + KML_TAIL),
        Outcome.FORBIDDEN_XML,
    ),
    "HTML error page with status 200": (
        FeedResponse(
            b"<!DOCTYPE html><html><body><h1>Service unavailable</h1><br></body></html>", content_type="text/html"
        ),
        Outcome.NOT_KML,
    ),
    "JSON with status 200": (FeedResponse(b'{"error": "quota"}', content_type="application/json"), Outcome.NOT_KML),
    "KML with no placemarks": (FeedResponse(b"<kml><Document><name>Stations</name></Document></kml>"), Outcome.EMPTY),
}


def test_readme_fault_table_matches_the_tested_faults() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("<!-- faults:start -->")[1].split("<!-- faults:end -->")[0]
    rows = re.findall(r"^\| (.+?) \| `(\w+)` \|", section, re.M)
    tested = [(fault, outcome.value) for fault, (_, outcome) in FAULTS.items()]
    assert [row for row in rows if row[0] != "connection refused"] == tested
    assert ("connection refused", "network_error") in rows


def test_every_fault_keeps_the_last_good_snapshot(feed: FeedServer, feed_url: str) -> None:
    rng = random.Random(4)
    network = generate_network(20, seed=1)
    args = ["--kml-url", feed_url, "--refresh-interval", "0.5", "--fetch-timeout", "1.5"]
    args += ["--max-bytes", str(MAX_BYTES), "--max-staleness", "3600"]
    with OtlpReceiver() as receiver:
        env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint}
        env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
        with ServiceProcess([*args, "--log.level", "debug"], env=env) as service:
            for fault, (response, outcome) in FAULTS.items():
                network = move_states(network, rng, fraction=0.3)
                feed.serve(FeedResponse(render_kml(network)))
                successes = service.sample("chargy_feed_refreshes_total", outcome="success") or 0
                service.wait_for_refreshes("success", int(successes) + 1)
                failures = service.sample("chargy_feed_refreshes_total", outcome=outcome.value) or 0
                warnings_before = service.logs().count("level=warn logger=otel_chargy.refresh")
                feed.serve(response)
                service.wait_for_refreshes(outcome.value, int(failures) + 1)
                assert service.sample("chargy_feed_up") == 0, fault
                assert_serves(service.metrics(), network)
                assert service.get("/readyz").status_code == 200
                warnings = service.logs().count("level=warn logger=otel_chargy.refresh")
                assert warnings > warnings_before, fault
                assert f"outcome={outcome.value}" in service.logs(), fault
            outputs = [service.get(path).text for path in ("/", "/metrics", "/readyz")]
            wait_until(lambda: len(receiver.spans()) > 3 * len(FAULTS), "the refresh spans")
        outputs += [service.logs(), receiver.all_bytes().decode(errors="replace")]
    assert service.process.returncode == 0
    for output in outputs:
        assert TEST_API_KEY not in output


def test_connection_refused_is_a_network_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/kml?API-KEY={TEST_API_KEY}"
    with ServiceProcess(["--kml-url", url, "--refresh-interval", "0.5"]) as service:
        service.wait_for_refreshes("network_error", 1)
        assert service.sample("chargy_feed_up") == 0
        assert service.get("/readyz").status_code == 503
    assert TEST_API_KEY not in service.logs()


def test_failures_are_retried_sooner_with_backoff(feed: FeedServer, feed_url: str) -> None:
    feed.serve(FeedResponse(b"", status=500))
    with ServiceProcess(["--kml-url", feed_url, "--refresh-interval", "600"]) as service:
        # With a 10-minute interval, a third attempt comes only from the backoff (about 1 s, then 2 s).
        wait_until(lambda: feed.request_count >= 3, "two retries")
        feed.serve(FeedResponse(GOOD))
        service.wait_for_refreshes("success", 1)
        assert service.sample("chargy_feed_up") == 1


@pytest.mark.parametrize("validator", ["etag", "last_modified"])
def test_unchanged_feed_costs_no_parse_and_stays_fresh(validator: str, feed: FeedServer, feed_url: str) -> None:
    network = generate_network(15, seed=5)
    validators = {"etag": '"v1"'} if validator == "etag" else {"last_modified": "Wed, 25 Nov 2026 10:00:00 GMT"}
    feed.serve(FeedResponse(render_kml(network), **validators))  # type: ignore[arg-type]
    args = ["--kml-url", feed_url, "--refresh-interval", "0.5", "--max-staleness", "1"]
    with ServiceProcess(args) as service:
        service.wait_for_refreshes("not_modified", 4)  # two seconds: past the maximum staleness
        assert service.sample("chargy_feed_refreshes_total", outcome="success") == 1
        assert service.sample("chargy_feed_up") == 1
        assert service.get("/readyz").status_code == 200
        assert_serves(service.metrics(), network)
        assert "outcome=not_modified" in service.logs()
    header = "If-None-Match" if validator == "etag" else "If-Modified-Since"
    first, second = feed.requests[0][1], feed.requests[1][1]
    assert header not in first and second[header] == next(iter(validators.values()))
    assert "gzip" in first["Accept-Encoding"]


def test_gzip_feed_is_read(feed: FeedServer, feed_url: str) -> None:
    network = generate_network(30, seed=6)
    feed.serve(FeedResponse(render_kml(network), gzip=True))
    with ServiceProcess(["--kml-url", feed_url]) as service:
        service.wait_for_refreshes("success", 1)
        assert_serves(service.metrics(), network)
    assert httpx.Headers(feed.requests[0][1])["accept"].startswith("application/vnd.google-earth.kml+xml")
