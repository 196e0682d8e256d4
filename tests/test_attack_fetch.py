"""The fetch attacked from outside (issue #17, rows 6, 10 and 11): a hostile paged feed, served by a real
HTTP server on 127.0.0.1, played against the running service. What the service holds is read from
/proc/<pid>/fd while it fetches, and what it concluded from /metrics and /api/v1/status."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from otel_chargy.generator import generate_ocpi_network, render_ocpi
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess, wait_until

JSON = "application/json"
NETWORK = generate_ocpi_network(40, seed=17)
LOCATIONS = NETWORK.locations
# A page of one Location, and the empty page most of a long feed is made of.
FULL_PAGES = [render_ocpi([location], form="envelope") for location in LOCATIONS]
EMPTY_PAGE = render_ocpi([], form="envelope")
# What the issue measured: 798 descriptors at 800 pages, EMFILE after ~1,020 (a soft limit of 1,024).
DESCRIPTOR_BOUND = 200


def page_path(number: int) -> str:
    """The first page is the feed's URL, its key in the query; the links lead to the others."""
    return f"/ocpi?token={TEST_API_KEY}" if number == 0 else f"/ocpi?offset={number}"


def serve_chain(feed: FeedServer, pages: int, headers: dict[str, str] | None = None) -> None:
    """`pages` pages at /ocpi, /ocpi?offset=1, …, each linking to the next by an absolute URL."""
    for number in range(pages):
        body = FULL_PAGES[number] if number < len(FULL_PAGES) else EMPTY_PAGE
        page_headers = dict(headers or {})
        if number + 1 < pages:
            page_headers["Link"] = f'<{feed.url(page_path(number + 1))}>; rel="next"'
        feed.serve_path(page_path(number), FeedResponse(body, content_type=JSON, headers=page_headers))


def ocpi_service(feed: FeedServer, *extra: str) -> ServiceProcess:
    return ServiceProcess(["--feed.format", "ocpi", "--feed.url", feed.url(page_path(0)), *extra])


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextmanager
def most_descriptors(pid: int) -> Iterator[list[int]]:
    """The most descriptors the process held while the block ran, sampled every 2 ms; [0] when done."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            try:
                peak[0] = max(peak[0], descriptors(pid))
            except FileNotFoundError:  # the process ended: the test reports why
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def status(service: ServiceProcess) -> dict[str, Any]:
    response = service.get("/api/v1/status")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def last_failure(service: ServiceProcess, outcome: str) -> str:
    """The reason of the first refresh that ended with `outcome`, waited for."""
    return str(
        wait_until(
            lambda: next((r["reason"] for r in status(service)["refreshes"] if r["outcome"] == outcome), None),
            f"a refresh with outcome {outcome}",
        )
    )


# --- row 6: 1,500 pages within 200 descriptors, the pages on one pool


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
def test_a_1500_page_feed_is_read_whole_within_200_descriptors(connection: str) -> None:
    # "close": the feed ends every connection after its page, so each page opens one: each must be let go.
    headers = {"Connection": "close"} if connection == "close" else {}
    with FeedServer() as feed:
        serve_chain(feed, 1500, headers)
        service = ocpi_service(feed, "--refresh-interval", "3600")
        try:
            with most_descriptors(service.process.pid) as peak:
                wait_until(lambda: service.get("/healthz").status_code == 200, "the service to answer")
                service.wait_for_refreshes("success", 1)
            assert peak[0] < DESCRIPTOR_BOUND, f"{peak[0]} descriptors open during a 1,500-page fetch"
            assert feed.request_count == 1500
            assert status(service)["snapshot"]["stations"] == len(NETWORK.truth.stations)  # every page was read
        finally:
            service.stop()


def test_endless_pages_end_at_the_fetch_timeout_within_200_descriptors() -> None:
    with FeedServer() as feed:
        serve_chain(feed, 600)
        feed.serve_path(page_path(599), FeedResponse(EMPTY_PAGE, content_type=JSON, hold=True))
        service = ocpi_service(feed, "--fetch-timeout", "3", "--refresh-interval", "3600")
        try:
            with most_descriptors(service.process.pid) as peak:
                reason = last_failure(service, "timeout")
            assert "within 3 s" in reason
            assert peak[0] < DESCRIPTOR_BOUND, peak[0]
        finally:
            service.stop()


# --- row 10: a later page's redirect stays on the host that linked to it


def test_a_redirect_of_page_2_to_another_port_is_broken_paging_and_never_followed() -> None:
    with FeedServer() as feed, FeedServer() as elsewhere:
        serve_chain(feed, 3)
        feed.serve_path(page_path(1), FeedResponse(status=302, headers={"Location": elsewhere.url(page_path(1))}))
        serve_chain(elsewhere, 3)
        with ocpi_service(feed, "--refresh-interval", "3600") as service:
            reason = last_failure(service, "broken_paging")
            assert "page 2" in reason and "redirected to another host" in reason, reason
            assert elsewhere.request_count == 0
            assert (service.sample("chargy_feed_refreshes_total", outcome="internal_error") or 0) == 0


def test_a_redirect_of_page_2_on_its_host_is_followed() -> None:
    with FeedServer() as feed:
        serve_chain(feed, 3)
        feed.serve_path(page_path(1), FeedResponse(status=307, headers={"Location": "/ocpi?offset=1&moved=1"}))
        feed.serve_path(
            "/ocpi?offset=1&moved=1",
            FeedResponse(FULL_PAGES[1], content_type=JSON, headers={"Link": f'<{feed.url(page_path(2))}>; rel="next"'}),
        )
        with ocpi_service(feed, "--refresh-interval", "3600") as service:
            service.wait_for_refreshes("success", 1)
            assert status(service)["snapshot"]["stations"] == 3


# --- row 11: hosts that IDNA refuses, in a redirect or a next link: named outcomes


@pytest.mark.parametrize(
    ("where", "target", "outcome"),
    [
        ("redirect of page 1", "http://a..b/ocpi", "network_error"),
        ("redirect of page 1", "http://xn--/ocpi", "network_error"),
        ("redirect of page 1", "http://" + "b" * 64 + ".example/ocpi", "network_error"),
        ("redirect of page 2", "http://a..b/ocpi", "broken_paging"),
        ("redirect of page 2", "http://xn--/ocpi", "broken_paging"),
        ("next link of page 1", "http://a..b/ocpi", "broken_paging"),
        ("next link of page 1", "http://xn--/ocpi", "broken_paging"),
    ],
)
def test_a_host_idna_refuses_is_a_named_outcome(where: str, target: str, outcome: str) -> None:
    with FeedServer() as feed:
        serve_chain(feed, 3)
        if where == "redirect of page 1":
            feed.serve_path(page_path(0), FeedResponse(status=302, headers={"Location": target}))
        elif where == "redirect of page 2":
            feed.serve_path(page_path(1), FeedResponse(status=302, headers={"Location": target}))
        else:
            link = f'<{target}>; rel="next"'
            feed.serve_path(page_path(0), FeedResponse(FULL_PAGES[0], content_type=JSON, headers={"Link": link}))
        with ocpi_service(feed, "--refresh-interval", "3600") as service:
            last_failure(service, outcome)
            assert (service.sample("chargy_feed_refreshes_total", outcome="internal_error") or 0) == 0
            assert "Traceback" not in service.logs()


# --- the descriptor limit the service needs: --web.max-connections plus 20, raised at start if it can be


def limits_after_start(soft: int, hard: int) -> tuple[str, str]:
    """The open-file limits the service set itself, from a start with `soft` and `hard`, and its log."""
    code = (
        "import logging, resource; logging.basicConfig(level=logging.WARNING)\n"
        "from otel_chargy.service import ensure_descriptors; ensure_descriptors(512)\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip(), result.stderr


def test_a_low_open_file_limit_is_raised_to_what_the_connections_need() -> None:
    assert limits_after_start(64, 4096) == ("(532, 4096)", "")
    limits, log = limits_after_start(64, 100)
    assert limits == "(100, 100)" and "open-file limit is below what --web.max-connections needs" in log
