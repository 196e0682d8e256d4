"""The HTTP endpoints: metrics, landing page, health and readiness.

http.server does the HTTP; what is added here keeps any one client from hurting the service
(docs/security.md): each request head is bounded in bytes and in time, connections
are capped, and the accept loop survives running out of file descriptors.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from otel_chargy import __version__
from otel_chargy.api import (
    API_PREFIX,
    EVENTS_PATH,
    STATIONS_PATH,
    STATUS_PATH,
    StationDocuments,
    events_reply,
    stations_reply,
    status_reply,
    unknown_path_reply,
)
from otel_chargy.config import ListenAddress
from otel_chargy.exposition import Exposition
from otel_chargy.health import FeedHealth, PushHealth, read_health
from otel_chargy.history import RefreshHistory
from otel_chargy.holder import SnapshotHolder
from otel_chargy.model import Snapshot
from otel_chargy.redact import Redactor
from otel_chargy.reply import PerSnapshot, Reply, accepts_gzip, gzipped
from otel_chargy.status_page import (
    STATION_PAGE_PREFIX,
    Links,
    PageQuery,
    StationView,
    render_page,
    render_station_page,
    static_file,
)
from otel_chargy.webconfig import BasicAuth, WebConfig

logger = logging.getLogger(__name__)

# GET needs no body; a large one is refused unread.
_MAX_REQUEST_BODY = 65_536
# Connections waiting to be accepted: a burst of scrapes waits here instead of retrying SYNs for seconds.
# The kernel caps it at net.core.somaxconn.
_LISTEN_BACKLOG = 4096
# Out of file descriptors, accept() fails while the listening socket stays readable: wait, don't spin.
_ACCEPT_BACKOFF_S = 0.1
_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\n503 too many connections\n"
)
_PLAINTEXT_ON_TLS_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)


@dataclass(frozen=True)
class ClientLimits:
    """What one client may cost the service. Beyond a limit the client gets an answer, or is dropped."""

    max_connections: int = 512
    """Connections served at once; one more is answered 503 (plain HTTP) or closed (TLS) at once."""
    max_head_bytes: int = 32_768
    """Request line and headers together; more is answered 431."""
    head_timeout_s: float = 10.0
    """From a request's first byte to its last header (and for a TLS handshake); then 408."""
    idle_timeout_s: float = 30.0
    """Silence before a request, or during any read or write, after which the connection is closed."""


class Pages:
    """What each path answers, apart from the HTTP plumbing."""

    def __init__(
        self,
        holder: SnapshotHolder,
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
        self._all_stations_gzipped: tuple[tuple[bytes, ...], Reply] | None = None
        if history is not None:
            history.on_each_snapshot(self.forget)

    def forget(self, _: Snapshot) -> None:
        """What the page and the API rendered of the snapshot before is let go: the first request that
        needs the new one renders it. Nothing is built, or kept, for a page nobody reads."""
        self._state_counts.forget()
        self._station_views.forget()
        self._station_documents.forget()

    def prepare(self, snapshot: Snapshot) -> None:
        """Renders what the page and the API show of `snapshot`: what the first request after a refresh does."""
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
        return render_page(
            self._health(), view, PageQuery.parse(query_string), links, self._redactor, self.holder.events
        )

    def station_page(self, quoted_name: str) -> Reply:
        published = self.holder.current
        view = self._station_views.get(published.snapshot) if published is not None else None
        documents = self._station_documents.get(published.snapshot) if published is not None else None
        name = unquote(quoted_name)
        found = view is not None and name.casefold() in view.index_of
        closest = documents.closest(name) if documents is not None and not found else []
        return render_station_page(self._health(), view, name, self.holder.events, self._redactor, closest)

    def page(self, target: str, accept_encoding: str | None = None) -> Reply | None:
        """The status page, its static files and the JSON API; None for a path they do not answer."""
        path, _, query_string = target.partition("?")
        reply: Reply | None
        published = self.holder.current
        if path == "/":
            reply = self.landing_page(query_string)
        elif path.startswith(STATION_PAGE_PREFIX):
            reply = self.station_page(path.removeprefix(STATION_PAGE_PREFIX))
        elif path.startswith("/static/"):
            reply = static_file(path.removeprefix("/static/"))
        elif path == STATUS_PATH:
            reply = status_reply(self._health(), self._redactor)
        elif path == STATIONS_PATH or path.startswith(STATIONS_PATH + "/"):
            documents = self._station_documents.get(published.snapshot) if published is not None else None
            fetched_at = published.fetched_at if published is not None else 0.0
            reply = stations_reply(
                path, documents, fetched_at, self.holder.status.reason, self._redactor, self.holder.events
            )
        elif path == EVENTS_PATH:
            documents = self._station_documents.get(published.snapshot) if published is not None else None
            reply = events_reply(query_string, self.holder.events, documents, self._redactor)
        elif path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            reply = unknown_path_reply(path, self._redactor)
        else:
            return None
        if reply is None:
            return None
        if path.startswith(API_PREFIX):
            reply = self._gzipped(path, reply, accept_encoding)
        return replace(reply, headers={"X-Content-Type-Options": "nosniff", **reply.headers})

    def _gzipped(self, path: str, reply: Reply, accept_encoding: str | None) -> Reply:
        """The API's answer compressed when the client takes gzip; every station's, the largest, once per refresh."""
        if path != STATIONS_PATH or reply.status != HTTPStatus.OK or not accepts_gzip(accept_encoding):
            return gzipped(reply, accept_encoding)
        key = tuple(reply.chunks)
        cached = self._all_stations_gzipped
        if cached is None or cached[0] != key:
            cached = (key, gzipped(reply, accept_encoding))
            self._all_stations_gzipped = cached
        return cached[1]

    def _health(self) -> FeedHealth:
        return read_health(
            self.holder, self._history, self._feed_description, self._push_health, self._state_counts.get
        )


class _HeadTooLarge(Exception):
    pass


class _HeadTooSlow(Exception):
    pass


class _SocketReader(io.RawIOBase):
    """Reads the socket; while a deadline is set, no read waits past it (a byte a second keeps no thread)."""

    def __init__(self, connection: socket.socket, idle_timeout_s: float) -> None:
        self._connection = connection
        self._idle_timeout_s = idle_timeout_s
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        timeout_s = self._idle_timeout_s
        if self.deadline is not None:
            timeout_s = min(timeout_s, self.deadline - time.monotonic())
            if timeout_s <= 0:
                raise _HeadTooSlow
        self._connection.settimeout(timeout_s)
        try:
            return self._connection.recv_into(buffer)
        except TimeoutError:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise _HeadTooSlow from None
            raise


class _RequestHead(io.BufferedReader):
    """The handler's rfile. http.server reads each request's line and headers with readline:
    here those lines together are bounded in bytes, and in time from the request's first byte."""

    def __init__(self, connection: socket.socket, limits: ClientLimits) -> None:
        self._reader = _SocketReader(connection, limits.idle_timeout_s)
        super().__init__(self._reader)
        self._connection = connection
        self._limits = limits
        self._bytes_left: int | None = None  # None between requests

    def readline(self, size: int | None = -1) -> bytes:
        if self._bytes_left is None:
            # Silence between requests is idle time; the head's deadline starts with its first byte.
            if not self.peek(1):
                return b""
            self._bytes_left = self._limits.max_head_bytes
            self._reader.deadline = time.monotonic() + self._limits.head_timeout_s
        most = self._bytes_left + 1 if size is None or size < 0 else min(size, self._bytes_left + 1)
        line = super().readline(most)
        self._bytes_left -= len(line)
        if self._bytes_left < 0:
            raise _HeadTooLarge
        return line

    def end_head(self) -> None:
        self._bytes_left = None
        self._reader.deadline = None
        self._connection.settimeout(self._limits.idle_timeout_s)  # for writing the answer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    rfile: _RequestHead
    _answer_started = False
    protocol_version = "HTTP/1.1"
    server_version = f"otel-chargy/{__version__}"
    # A response is written as several chunks: without this, Nagle's algorithm and the client's
    # delayed ACK hold a small chunk back for 40 ms.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = _RequestHead(self.connection, self.server.limits)
        self.connection.settimeout(self.server.limits.idle_timeout_s)

    def handle_one_request(self) -> None:
        self.command = self.request_version = self.requestline = ""
        try:
            super().handle_one_request()
        except _HeadTooLarge:
            self.rfile.end_head()
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        except _HeadTooSlow:
            self.rfile.end_head()
            self.send_error(HTTPStatus.REQUEST_TIMEOUT, "request head not received in time")

    def parse_request(self) -> bool:
        try:
            parsed = super().parse_request()
        finally:
            self.rfile.end_head()
        if parsed and self.command not in ("GET", "HEAD"):
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": "GET, HEAD"})
            return False
        return parsed

    def handle_expect_100(self) -> bool:
        return True  # no body is ever read: never invite one

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.close_connection = True  # what the client sent is not all read: the connection cannot carry more
        status = HTTPStatus(code)
        body = f"{code} {message or status.phrase.lower()}\n".encode()
        self._send(status, body, "text/plain; charset=utf-8", headers)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not worth a log line

    def do_GET(self) -> None:
        try:
            self._answer()
        except Exception:  # a bug in one answer: the client still gets one, and the server goes on
            logger.exception("answering a request failed")
            if not self._answer_started:
                self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)
            self.close_connection = True  # an answer cut short cannot be followed by another

    def _answer(self) -> None:
        self._answer_started = False
        pages = self.server.pages
        # The query string means nothing to health, readiness or metrics: /healthz?x is /healthz.
        path = self.path.partition("?")[0]
        declared_body = self.headers.get("Content-Length", "0").strip()
        if declared_body != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the body is never read: the connection cannot carry another request
        if not declared_body.isdigit() or int(declared_body) > _MAX_REQUEST_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"413 request body refused\n", "text/plain; charset=utf-8")
        elif path != "/healthz" and not self.server.auth.allows(self.headers.get("Authorization")):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"401 unauthorized\n",
                "text/plain; charset=utf-8",
                {"WWW-Authenticate": 'Basic realm="otel-chargy", charset="UTF-8"'},
            )
        elif pages.exposition is not None and path == pages.telemetry_path:
            response = pages.exposition.render(self.headers.get("Accept"), self.headers.get("Accept-Encoding"))
            headers = {"Content-Encoding": "gzip"} if response.gzipped else {}
            self._send(HTTPStatus.OK, response.chunks, response.content_type, headers)
        elif (reply := pages.page(self.path, self.headers.get("Accept-Encoding"))) is not None:
            self._send(reply.status, reply.chunks, reply.content_type, dict(reply.headers))
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            ready, text = pages.readiness()
            self._send(
                HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, text.encode(), "text/plain; charset=utf-8"
            )
        else:
            self._send(HTTPStatus.NOT_FOUND, b"404 page not found\n", "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(
        self,
        status: HTTPStatus,
        body: bytes | Sequence[bytes],
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        # The metrics come as chunks (cached parts of many MB): written one by one, never joined.
        chunks = [body] if isinstance(body, bytes) else body
        self._answer_started = True
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
    request_queue_size = _LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], pages: Pages, web_config: WebConfig, limits: ClientLimits) -> None:
        self.pages = pages
        self.web_config = web_config
        self.auth = BasicAuth(web_config.basic_auth_users)
        self.limits = limits
        self._connections = 0
        self._lock = threading.Lock()
        self._troubled = False  # a warning is logged once per spell of refused or failed accepts
        super().__init__(address, _Handler)

    def _warn_once(self, message: str) -> None:
        if not self._troubled:
            logger.warning(message)
        self._troubled = True

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._warn_once(f"cannot accept connections: {error.strerror}; retrying")
                time.sleep(_ACCEPT_BACKOFF_S)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            admitted = self._connections < self.limits.max_connections
            self._connections += admitted
        if not admitted:
            self._warn_once(f"{self.limits.max_connections} connections open: refusing more")
            if self.web_config.tls is None:
                request.setblocking(False)  # the accept loop never waits on a client
                with contextlib.suppress(OSError):
                    request.send(_BUSY_ANSWER)
            self.shutdown_request(request)
            return
        self._troubled = False
        try:
            super().process_request(request, client_address)  # one thread per connection
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._lock:
            self._connections -= 1

    def finish_request(self, request: Any, client_address: Any) -> None:
        tls = self.web_config.tls
        if tls is None:
            super().finish_request(request, client_address)
            return
        # TLS is set up in the connection's own thread, never in the accept loop.
        request.settimeout(self.limits.idle_timeout_s)
        try:
            first = request.recv(1, socket.MSG_PEEK)
            if first.isalpha():  # an HTTP method, where a TLS handshake starts with 0x16
                request.recv(self.limits.max_head_bytes)  # read, so that closing does not reset the answer away
                request.sendall(_PLAINTEXT_ON_TLS_ANSWER)
                return
        except OSError:
            return
        with tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False) as tls_request:
            tls_request.settimeout(self.limits.head_timeout_s)  # CPython's bound on the whole handshake
            try:
                tls_request.do_handshake()
            except OSError:
                logger.debug("TLS handshake failed", exc_info=True)
                return
            super().finish_request(tls_request, client_address)
            self.shutdown_request(tls_request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is routine, not worth a traceback on stderr.
        logger.debug("client connection ended with an error", exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(
    address: ListenAddress, pages: Pages, web_config: WebConfig, limits: ClientLimits | None = None
) -> ThreadingHTTPServer:
    """Binds at once: a port in use fails here, before anything else starts."""
    server_class = _Server6 if ":" in address.host else _Server
    return server_class((address.host, address.port), pages, web_config, limits or ClientLimits())
