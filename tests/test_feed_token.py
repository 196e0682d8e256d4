"""--feed.token from outside: the real service and a real local feed server, which records what it was
sent. The token reaches the feed's host on every page, as OCPI's `Authorization: Token ...`, and nowhere
else: not another host, not a log line, a span, a page, a metric, an error or `check`'s report."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from opentelemetry import trace

from otel_chargy.fetch import HttpSource, Validators
from otel_chargy.generator import generate_ocpi_network, ocpi_pages
from otel_chargy.outcome import FeedError, Outcome
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess, command

TOKEN = "c3ecret-T0ken-4f1e"
ENCODED = base64.b64encode(TOKEN.encode()).decode()
JSON = "application/json"
LOCATIONS = generate_ocpi_network(12, seed=3).locations


def serve_pages(feed: FeedServer, pages: list[bytes], next_host: FeedServer | None = None) -> str:
    """The pages at /ocpi, /ocpi?offset=1, ...; each links to the next on `next_host` (the feed's by default)."""
    urls = ["/ocpi"] + [f"/ocpi?offset={number}" for number in range(1, len(pages))]
    for number, body in enumerate(pages):
        headers = {}
        if number + 1 < len(pages):
            headers = {"Link": f'<{(next_host or feed).url(urls[number + 1])}>; rel="next"'}
        feed.serve_path(urls[number], FeedResponse(body, content_type=JSON, headers=headers))
    return feed.url("/ocpi")


def authorizations(feed: FeedServer) -> list[str | None]:
    return [headers.get("Authorization") for _, headers in feed.requests]


def test_the_token_reaches_every_page_and_shows_nowhere_else(feed: FeedServer) -> None:
    url = serve_pages(feed, ocpi_pages(LOCATIONS, 3))
    arguments = ["--feed.format", "ocpi", "--feed.url", url, "--refresh-interval", "0.5", "--log.level", "debug"]
    # Spans go to the console exporter, the logs: what they hold is read with the rest.
    environment = {"CHARGY_FEED_TOKEN": TOKEN, "OTEL_TRACES_EXPORTER": "console"}
    with ServiceProcess(arguments, env=environment) as service:
        service.wait_for_refreshes("success", 2)
        feed.serve_path("/ocpi", FeedResponse(b'{"status_code": 2001, "status_message": "bad token"}', 401))
        service.wait_for_refreshes("http_error", 1)
        pages = [service.get(path).text for path in ("/", "/readyz", "/metrics", "/api/v1/status", "/api/v1/stations")]
    requests = feed.requests
    assert len(requests) >= 3 * 2 + 1 and {path for path, _ in requests} == {
        "/ocpi",
        "/ocpi?offset=1",
        "/ocpi?offset=2",
    }
    assert set(authorizations(feed)) == {f"Token {ENCODED}"}
    shown = service.logs() + "".join(pages)
    assert '"name": "GET"' in shown and "http_error" in shown  # the spans and the failure are there to read
    assert TOKEN not in shown and ENCODED not in shown


def test_a_raw_token_is_sent_as_given_and_check_never_shows_it(feed: FeedServer) -> None:
    url = serve_pages(feed, ocpi_pages(LOCATIONS, 2))
    environment = {**os.environ, "CHARGY_FEED_TOKEN": TOKEN}
    arguments = ["--feed.format", "ocpi", "--feed.token-encoding", "raw", "check", url]
    good = subprocess.run([*command(), *arguments], capture_output=True, text=True, timeout=60, env=environment)
    feed.serve_path("/ocpi", FeedResponse(b"<html>denied</html>", 403))
    refused = subprocess.run([*command(), *arguments], capture_output=True, text=True, timeout=60, env=environment)
    assert good.returncode == 0 and refused.returncode == 1, good.stdout + refused.stdout
    assert "format: OCPI 2.2+" in good.stdout and "HTTP 403" in refused.stdout
    assert set(authorizations(feed)) == {f"Token {TOKEN}"}
    for result in (good, refused):
        assert TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("given", ["--feed.token=", "CHARGY_FEED_TOKEN="])
def test_a_token_refused_by_the_configuration_is_not_shown(given: str) -> None:
    bad = f"{TOKEN} with spaces"
    arguments = [f"--feed.token={bad}"] if given.startswith("--") else []
    environment = {**os.environ, **({} if arguments else {"CHARGY_FEED_TOKEN": bad})}
    result = subprocess.run(
        [sys.executable, "-m", "otel_chargy.main", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    assert result.returncode == 2 and "token" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_a_redirect_to_another_host_does_not_carry_the_token(feed: FeedServer) -> None:
    with FeedServer() as other:
        other.serve(FeedResponse(b"[]", content_type=JSON))
        feed.serve(FeedResponse(b"", 302, headers={"Location": other.url("/elsewhere")}))
        source = HttpSource(
            feed.url("/ocpi"), timeout_s=10, max_bytes=1_000_000, tracer=trace.NoOpTracer(), paged=True,
            authorization=f"Token {ENCODED}",
        )  # fmt: skip
        try:
            assert source.fetch(Validators()).body == b"[]"
        finally:
            source.close()
        assert authorizations(feed) == [f"Token {ENCODED}"]
        assert [path for path, _ in other.requests] == ["/elsewhere"] and authorizations(other) == [None]


def test_a_next_link_to_another_host_is_never_asked(feed: FeedServer) -> None:
    with FeedServer() as other:
        serve_pages(other, ocpi_pages(LOCATIONS, 2))
        url = serve_pages(feed, ocpi_pages(LOCATIONS, 2), next_host=other)
        source = HttpSource(
            url, timeout_s=10, max_bytes=1_000_000, tracer=trace.NoOpTracer(), paged=True,
            authorization=f"Token {ENCODED}",
        )  # fmt: skip
        try:
            with pytest.raises(FeedError) as refused:
                source.fetch(Validators())
        finally:
            source.close()
        assert refused.value.outcome is Outcome.BROKEN_PAGING
        assert authorizations(feed) == [f"Token {ENCODED}"] and other.requests == []
