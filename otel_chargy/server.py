"""The HTTP endpoints: metrics, landing page, health and readiness."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_chargy import __version__
from otel_chargy.api import STATIONS_PATH, STATUS_PATH, StationDocuments, stations_reply, status_reply
from otel_chargy.config import ListenAddress
from otel_chargy.exposition import Exposition
from otel_chargy.health import FeedHealth, PushHealth, read_health
from otel_chargy.history import RefreshHistory
from otel_chargy.holder import SnapshotHolder
from otel_chargy.model import Snapshot
from otel_chargy.publication import Publication
from otel_chargy.redact import Redactor
from otel_chargy.reply import PerSnapshot, Reply
from otel_chargy.status_page import Links, PageQuery, StationView, render_page, static_file
from otel_chargy.webconfig import BasicAuth, WebConfig

logger = logging.getLogger(__name__)

# A client that sends nothing for this long is dropped: a stalled scraper must not hold a thread forever.
_CLIENT_TIMEOUT_S = 30
# GET needs no body; a large one is refused unread. (Header size and count are bounded by http.server.)
_MAX_REQUEST_BODY = 65_536


class Pages:
    """What each path answers, apart from the HTTP plumbing."""

    def __init__(
        self,
        holder: SnapshotHolder[Publication],
        exposition: Exposition | None,
        telemetry_path: str,
        feed_description: str,
        redactor: Redactor,
        history: RefreshHistory | None = None,
        grafana_url: str | None = None,
        push_health: Callable[[], Sequence[PushHealth]] | None = None,
    ) -> None:
        self.holder = holder
        self.exposition = exposition
        self.telemetry_path = telemetry_path
        self._feed_description = feed_description
        self._redactor = redactor
        self._history = history
        self._grafana_url = grafana_url
        """Linked from the status page: the Grafana dashboards, when there are any."""
        self._push_health = push_health
        """How the OTLP push goes, shown on the page and in /api/v1/status; None when nothing is pushed."""
        self._station_views = PerSnapshot(lambda snapshot: StationView(snapshot, redactor))
        self._station_documents = PerSnapshot(lambda snapshot: StationDocuments.render(snapshot, redactor))
        self._state_counts = PerSnapshot(Snapshot.count_by_state)
        if history is not None:
            history.render_each_snapshot(self.prepare)

    def prepare(self, snapshot: Snapshot) -> None:
        """Renders what the page and the API show of `snapshot`, so that no request has to."""
        self._state_counts.get(snapshot)
        self._station_views.get(snapshot)
        self._station_documents.get(snapshot)

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

    def landing_page(self, query_string: str = "") -> Reply:
        published = self.holder.current
        view = self._station_views.get(published.snapshot) if published is not None else None
        links = Links(self.telemetry_path if self.exposition is not None else None, self._grafana_url)
        return render_page(self._health(), view, PageQuery.parse(query_string), links, self._redactor)

    def page(self, target: str) -> Reply | None:
        """The status page, its static files and the JSON API; None for a path they do not answer."""
        path, _, query_string = target.partition("?")
        reply: Reply | None
        if path == "/":
            reply = self.landing_page(query_string)
        elif path.startswith("/static/"):
            reply = static_file(path.removeprefix("/static/"))
        elif path == STATUS_PATH:
            reply = status_reply(self._health(), self._redactor)
        elif path == STATIONS_PATH or path.startswith(STATIONS_PATH + "/"):
            published = self.holder.current
            documents = self._station_documents.get(published.snapshot) if published is not None else None
            fetched_at = published.fetched_at if published is not None else 0.0
            reply = stations_reply(path, documents, fetched_at, self.holder.status.reason, self._redactor)
        else:
            return None
        if reply is None:
            return None
        return replace(reply, headers={"X-Content-Type-Options": "nosniff", **reply.headers})

    def _health(self) -> FeedHealth:
        return read_health(
            self.holder, self._history, self._feed_description, self._push_health, self._state_counts.get
        )


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
        elif (reply := pages.page(self.path)) is not None:
            self._send(reply.status, reply.chunks, reply.content_type, dict(reply.headers))
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
