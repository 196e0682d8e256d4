"""Health advice, tested with the reasons the fetch and the parsers really give: each failure is made
for real (a closed port, a name that does not resolve, a TLS server that is not trusted, a slow or
failing feed, documents that cannot be used), and the advice for its exact reason is checked."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from opentelemetry import trace

from otel_chargy.fetch import FileSource, HttpSource, Validators
from otel_chargy.generator import generate_network, render_kml
from otel_chargy.health import advise
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import SizeBounds, parse_kml
from otel_chargy.parse_ocpi import parse_ocpi
from tests.feedserver import FeedResponse, FeedServer
from tests.inprocess import make_certificate
from tests.service import free_port


def _fetch_failure(url: str, *, timeout_s: float = 10.0, max_bytes: int = 1_000_000) -> FeedError:
    source = HttpSource(url, timeout_s=timeout_s, max_bytes=max_bytes, tracer=trace.NoOpTracer())
    try:
        source.fetch(Validators())
    except FeedError as error:
        return error
    finally:
        source.close()
    raise AssertionError(f"fetching {url} did not fail")


def _parse_failure(body: bytes, parse: Any = parse_kml) -> FeedError:
    try:
        parse(body)
    except FeedError as error:
        return error
    raise AssertionError("the document was accepted")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An HTTPS server whose self-signed certificate this machine does not trust."""
    directory = make_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.crt", directory / "server.key")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the client refuses the certificate: that is the point

    server = Server(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@cache
def _refused() -> FeedError:
    return _fetch_failure(f"http://127.0.0.1:{free_port()}/kml")


UNRESOLVABLE = "chargy-feed.invalid"


@cache
def _unresolvable() -> FeedError:
    """The fetch of a host whose name does not resolve. The tests talk to 127.0.0.1 only, so no DNS server
    is asked: the resolver answers for this one name as glibc does for a name no server knows."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == UNRESOLVABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    with mock.patch.object(socket, "getaddrinfo", resolve):
        return _fetch_failure(f"http://{UNRESOLVABLE}/kml")


def test_the_fetch_names_each_connection_failure_in_its_own_words(tls_server: int) -> None:
    """The reasons the advice below reads: as describe_failure writes them, for real failures."""
    tls = _fetch_failure(f"https://127.0.0.1:{tls_server}/kml")
    assert _refused().outcome is Outcome.NETWORK_ERROR and _refused().reason.startswith(
        "connection refused by 127.0.0.1:"
    )
    assert _unresolvable().reason == f"name {UNRESOLVABLE} not resolved (Name or service not known)"
    assert tls.outcome is Outcome.NETWORK_ERROR and tls.reason.startswith(
        f"TLS handshake with 127.0.0.1:{tls_server} failed: "
    )


def test_an_unresolvable_host_a_refused_connection_and_a_tls_failure_each_get_their_own_advice(
    tls_server: int,
) -> None:
    reasons = {
        "dns": _unresolvable(),
        "refused": _refused(),
        "tls": _fetch_failure(f"https://127.0.0.1:{tls_server}/kml"),
    }
    advice = {kind: advise(error.outcome, error.reason, serving=False) for kind, error in reasons.items()}
    assert all(advice.values())
    dns, refused, tls = advice["dns"], advice["refused"], advice["tls"]
    assert dns is not None and refused is not None and tls is not None
    assert "does not resolve (DNS)" in dns.cause and "typo" in dns.next_step
    assert "refused the connection" in refused.cause and "the port in --feed.url" in refused.next_step
    assert "secure connection" in tls.cause and "certificate" in tls.next_step
    assert len({dns.cause, refused.cause, tls.cause}) == 3
    assert len({dns.next_step, refused.next_step, tls.next_step}) == 3
    # With nothing served, no advice promises a last good snapshot.
    for each in (dns, refused, tls):
        assert "last good snapshot" not in each.cause + each.next_step
    served = advise(reasons["tls"].outcome, reasons["tls"].reason, serving=True)
    assert served is not None and "serves the last good snapshot" in served.next_step


def test_tls_to_a_server_that_speaks_plain_http_is_told_apart_from_an_untrusted_certificate(feed: FeedServer) -> None:
    error = _fetch_failure(feed.url().replace("http://", "https://"))
    assert error.reason.startswith("TLS handshake with 127.0.0.1:")
    advice = advise(error.outcome, error.reason)
    assert advice is not None and "scheme and port" in advice.next_step


@pytest.mark.parametrize(
    ("response", "outcome", "advice_says"),
    [
        (FeedResponse(status=401), Outcome.HTTP_ERROR, "API-KEY"),
        (FeedResponse(status=403), Outcome.HTTP_ERROR, "API-KEY"),
        (FeedResponse(status=404), Outcome.HTTP_ERROR, "moved the feed"),
        (FeedResponse(status=429), Outcome.HTTP_ERROR, "--refresh-interval"),
        (FeedResponse(status=503), Outcome.HTTP_ERROR, "retries with backoff"),
        (FeedResponse(b"<kml/>", delay_s=3), Outcome.TIMEOUT, "--fetch-timeout"),
        (FeedResponse(b"x" * 2_000_000), Outcome.TOO_LARGE, "--max-bytes"),
        (FeedResponse(b"<kml>" * 1000, truncate_at=100), Outcome.NETWORK_ERROR, "fetch the URL by hand"),
        (FeedResponse(b"<kml/>", reset=True), Outcome.NETWORK_ERROR, "fetch the URL by hand"),
        (
            FeedResponse(b"<kml/>", headers={"Content-Encoding": "br"}),
            Outcome.NETWORK_ERROR,
            "curl --compressed",
        ),
    ],
    ids=["401", "403", "404", "429", "503", "timeout", "too-large", "truncated", "reset", "encoding"],
)
def test_each_fetch_failure_gets_advice_for_its_real_reason(
    feed: FeedServer, response: FeedResponse, outcome: Outcome, advice_says: str
) -> None:
    feed.serve(response)
    error = _fetch_failure(feed.url(), timeout_s=1.0)
    assert error.outcome is outcome, error.reason
    advice = advise(error.outcome, error.reason)
    assert advice is not None and advice_says in advice.next_step, (error.reason, advice)


def test_a_missing_feed_file_names_the_path(tmp_path: Path) -> None:
    source = FileSource(tmp_path / "feed.kml", max_bytes=1000)
    with pytest.raises(FeedError) as raised:
        source.fetch(Validators())
    advice = advise(raised.value.outcome, raised.value.reason)
    assert advice is not None and "the path given to --feed.url" in advice.next_step


def _many_connectors() -> bytes:
    return render_kml(generate_network(2000, seed=1))


@pytest.mark.parametrize(
    ("body", "outcome", "advice_says"),
    [
        (b"<!DOCTYPE html><html><body>login</body></html>", Outcome.NOT_KML, "an HTML page is often a login"),
        (b"<kml><Document><Placemark>", Outcome.INVALID_XML, "otel-chargy check"),
        (
            b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY a "b">]><kml/>',
            Outcome.FORBIDDEN_XML,
            "serves the Chargy feed",
        ),
        (b"<kml><Document></Document></kml>", Outcome.EMPTY, "points at the KML feed"),
        (b"<rss/>", Outcome.NOT_KML, "points at the KML feed"),
        (b"", Outcome.INVALID_XML, "points at the KML feed"),
    ],
    ids=["html", "broken-xml", "dtd", "empty", "not-kml", "no-body"],
)
def test_each_parse_outcome_gets_advice_for_its_real_reason(body: bytes, outcome: Outcome, advice_says: str) -> None:
    error = _parse_failure(body)
    assert error.outcome is outcome, error.reason
    advice = advise(error.outcome, error.reason)
    assert advice is not None and advice_says in advice.next_step


def test_a_network_over_the_connector_bound_names_max_connectors() -> None:
    error = _parse_failure(_many_connectors(), lambda body: parse_kml(body, SizeBounds(1000)))
    assert error.outcome is Outcome.TOO_LARGE
    advice = advise(error.outcome, error.reason)
    assert advice is not None and "--max-connectors" in advice.next_step


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b'{"status_code": 2001, "data": []}', Outcome.OCPI_ERROR),
        (b"[1, 2", Outcome.INVALID_JSON),
        (b'{"hello": 1}', Outcome.NOT_OCPI),
    ],
    ids=["ocpi-error", "invalid-json", "not-ocpi"],
)
def test_each_ocpi_outcome_gets_advice(body: bytes, outcome: Outcome) -> None:
    error = _parse_failure(body, parse_ocpi)
    assert error.outcome is outcome, error.reason
    advice = advise(error.outcome, error.reason)
    assert advice is not None and "otel-chargy check" in advice.next_step
