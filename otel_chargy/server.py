"""The HTTP endpoints: metrics, landing page, health and readiness."""

from __future__ import annotations

import html
import logging
import socket
import ssl
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_chargy import __version__
from otel_chargy.config import ListenAddress
from otel_chargy.exposition import Exposition
from otel_chargy.holder import SnapshotHolder
from otel_chargy.redact import Redactor
from otel_chargy.webconfig import BasicAuth, WebConfig

logger = logging.getLogger(__name__)

# A client that sends nothing for this long is dropped: a stalled scraper must not hold a thread forever.
_CLIENT_TIMEOUT_S = 30
# GET needs no body; a large one is refused unread. (Header size and count are bounded by http.server.)
_MAX_REQUEST_BODY = 65_536


def _format_time(timestamp: float | None) -> str:
    return "never" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


class Pages:
    """What each path answers, apart from the HTTP plumbing."""

    def __init__(
        self,
        holder: SnapshotHolder,
        exposition: Exposition | None,
        telemetry_path: str,
        feed_description: str,
        redactor: Redactor,
    ) -> None:
        self.holder = holder
        self.exposition = exposition
        self.telemetry_path = telemetry_path
        self._feed_description = feed_description
        self._redactor = redactor

    def readiness(self) -> tuple[bool, str]:
        if self.holder.current is not None:
            return True, "ready: serving a snapshot younger than the maximum staleness\n"
        status = self.holder.status
        latest = self.holder.latest
        if latest is None:
            why = "not ready: no snapshot yet"
        else:
            age_s = time.time() - latest.fetched_at
            why = (
                f"not ready: the last good snapshot is {age_s:.0f} s old, "
                f"older than the maximum staleness of {self.holder.max_staleness_s:g} s"
            )
        outcome = status.outcome.value if status.outcome else "none"
        return False, self._redactor(f"{why}; last refresh: {outcome}: {status.reason}\n")

    def landing_page(self) -> str:
        status = self.holder.status
        published = self.holder.current
        if published is None:
            counts = "<p>No snapshot in service.</p>"
        else:
            rows = "".join(
                f"<tr><td>{state.value}</td><td>{count}</td></tr>"
                for state, count in published.snapshot.count_by_state().items()
            )
            counts = (
                f"<p>{len(published.snapshot.stations)} stations, {published.snapshot.connector_count} connectors, "
                f"fetched {_format_time(published.fetched_at)}.</p>"
                f"<table><tr><th>state</th><th>connectors</th></tr>{rows}</table>"
            )
        outcome = status.outcome.value if status.outcome else "none yet"
        path = html.escape(self.telemetry_path)
        metrics_link = (
            f'<li><a href="{path}">{path}</a>: metrics (Prometheus text, OpenMetrics when asked)</li>'
            if self.exposition is not None
            else "<li>Metrics are pushed over OTLP; the Prometheus endpoint is off.</li>"
        )
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>otel-chargy</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:50em}}td,th{{padding:0 1em 0 0;text-align:left}}</style>
</head><body>
<h1>otel-chargy</h1>
<p>The Chargy EV-charging network as OpenTelemetry metrics. Version {html.escape(__version__)}.</p>
<h2>Feed</h2>
<p>Source: <code>{html.escape(self._feed_description)}</code></p>
<p>Last refresh: {_format_time(status.finished_at)}, outcome <b>{html.escape(outcome)}</b>
({html.escape(status.reason)}); last success: {_format_time(status.last_success_at)}.</p>
{counts}
<h2>Endpoints</h2>
<ul>
{metrics_link}
<li><a href="/healthz">/healthz</a>: 200 while the process runs</li>
<li><a href="/readyz">/readyz</a>: 200 while a fresh snapshot is served</li>
</ul>
</body></html>
"""
        return self._redactor(page)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = _CLIENT_TIMEOUT_S
    server_version = f"otel-chargy/{__version__}"

    def setup(self) -> None:
        super().setup()
        # A response is written as several chunks: without this, Nagle's algorithm and the client's
        # delayed ACK hold a small chunk back for 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not worth a log line

    def do_GET(self) -> None:
        pages = self.server.pages
        declared_body = self.headers.get("Content-Length", "0").strip()
        if declared_body != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the body is never read: the connection cannot carry another request
        if not declared_body.isdigit() or int(declared_body) > _MAX_REQUEST_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"413 request body refused\n", "text/plain; charset=utf-8")
        elif self.path != "/healthz" and not self.server.auth.allows(self.headers.get("Authorization")):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"401 unauthorized\n",
                "text/plain; charset=utf-8",
                {"WWW-Authenticate": 'Basic realm="otel-chargy", charset="UTF-8"'},
            )
        elif pages.exposition is not None and self.path.split("?", 1)[0] == pages.telemetry_path:
            response = pages.exposition.render(self.headers.get("Accept"), self.headers.get("Accept-Encoding"))
            headers = {"Content-Encoding": "gzip"} if response.gzipped else {}
            self._send(HTTPStatus.OK, response.chunks, response.content_type, headers)
        elif self.path == "/":
            self._send(HTTPStatus.OK, pages.landing_page().encode(), "text/html; charset=utf-8")
        elif self.path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        elif self.path == "/readyz":
            ready, text = pages.readiness()
            self._send(
                HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, text.encode(), "text/plain; charset=utf-8"
            )
        else:
            self._send(HTTPStatus.NOT_FOUND, b"404 page not found\n", "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _method_not_allowed(self) -> None:
        self.close_connection = True  # a body we did not read may follow
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"405 method not allowed\n",
            "text/plain; charset=utf-8",
            {"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _send(
        self,
        status: HTTPStatus,
        body: bytes | Sequence[bytes],
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        # The metrics come as chunks (cached parts of many MB): written one by one, never joined.
        chunks = [body] if isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(chunk) for chunk in chunks)))
        for name, value in {**self.server.web_config.headers, **(headers or {})}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")  # so that the client does not send another request on it
        self.end_headers()
        if self.command != "HEAD":
            for chunk in chunks:
                self.wfile.write(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    pages: Pages
    web_config: WebConfig
    auth: BasicAuth

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.web_config.tls is not None:
            # The handshake happens in the connection's own thread (finish_request), never in the accept loop.
            connection = self.web_config.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(_CLIENT_TIMEOUT_S)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                logger.debug("TLS handshake failed", exc_info=True)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is routine, not worth a traceback on stderr.
        logger.debug("client connection ended with an error", exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(address: ListenAddress, pages: Pages, web_config: WebConfig) -> ThreadingHTTPServer:
    """Binds at once: a port in use fails here, before anything else starts."""
    server_class = _Server6 if ":" in address.host else _Server
    server = server_class((address.host, address.port), _Handler)
    server.pages = pages
    server.web_config = web_config
    server.auth = BasicAuth(web_config.basic_auth_users)
    return server
