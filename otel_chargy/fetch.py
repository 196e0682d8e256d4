"""Getting the feed's bytes: over HTTP, from a file, or from the demo generator."""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack
from urllib.parse import urlsplit

import httpx
from opentelemetry import propagate, trace

from otel_chargy import __version__
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.hosts import BAD_HOST, host_is_usable
from otel_chargy.outcome import FeedError, Outcome, mark_failed
from otel_chargy.redact import redact_url

# The provider answers 406 to a request that prefers JSON.
ACCEPT = "application/vnd.google-earth.kml+xml, application/xml;q=0.9, */*;q=0.1"
OCPI_ACCEPT = "application/json, */*;q=0.1"
# A paged feed of 80,000 Locations at OCPI's usual 100 a page takes 800 pages.
MAX_PAGES = 10_000


@dataclass(frozen=True)
class Validators:
    """What the feed said identifies its content: sent back to ask "has it changed?"."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Fetched:
    body: bytes | None
    """None when the feed answered 304: unchanged since the validators that were sent."""
    validators: Validators = Validators()


@dataclass(frozen=True)
class _Page:
    url: httpx.URL
    body: bytes | None
    validators: Validators
    next_url: httpx.URL | None


class FeedSource(Protocol):
    description: str
    """Where the feed comes from, safe to show (secrets redacted)."""

    def fetch(self, validators: Validators) -> Fetched: ...

    def close(self) -> None: ...


# 200, or 203 (a proxy's copy of it): a partial (206) or an odd success (201, 299, …) is not a whole feed.
_WHOLE_ANSWERS = frozenset({200, 203})


def _too_large(max_bytes: int) -> FeedError:
    return FeedError(Outcome.TOO_LARGE, f"the feed is larger than the limit of {max_bytes} bytes")


def _host_port(url: httpx.URL) -> str:
    """Where a request went, safe to show: host and port, never the userinfo, path or query."""
    try:
        host = url.host
    except UnicodeError:  # an xn-- name that IDNA cannot decode: shown as sent
        host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    """Scheme, host (as sent: an xn-- name IDNA cannot decode compares too) and port, the default port
    written or not."""
    return url.scheme, url.raw_host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _os_error_under(error: BaseException) -> OSError | None:
    """The operating system's error that httpx and httpcore wrapped, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def describe_failure(error: httpx.HTTPError, url: httpx.URL, timeout_s: float) -> FeedError:
    """The outcome and the cause of a failed request, in words an operator acts on."""
    if isinstance(error, httpx.RequestError):
        with contextlib.suppress(RuntimeError):  # no request attached
            url = error.request.url  # the host that failed, after any redirect
    where = _host_port(url)
    if isinstance(error, httpx.TimeoutException):
        return FeedError(Outcome.TIMEOUT, f"the feed at {where} did not answer within {timeout_s:g} s")
    cause = _os_error_under(error)
    if isinstance(cause, socket.gaierror):
        return FeedError(Outcome.NETWORK_ERROR, f"name {url.host} not resolved ({cause.strerror})")
    if isinstance(cause, ssl.SSLCertVerificationError):
        return FeedError(Outcome.NETWORK_ERROR, f"TLS handshake with {where} failed: {cause.verify_message}")
    if isinstance(cause, ssl.SSLError):
        during = "TLS handshake with" if isinstance(error, httpx.ConnectError) else "TLS connection to"
        detail = (cause.reason or "").replace("_", " ").lower() or str(cause.strerror)
        return FeedError(Outcome.NETWORK_ERROR, f"{during} {where} failed: {detail}")
    if isinstance(cause, ConnectionRefusedError):
        return FeedError(Outcome.NETWORK_ERROR, f"connection refused by {where}")
    if isinstance(cause, ConnectionResetError):
        return FeedError(Outcome.NETWORK_ERROR, f"connection reset by {where}")
    if isinstance(error, httpx.RemoteProtocolError):
        # httpcore's message says what broke ("peer closed connection without sending complete message body").
        return FeedError(Outcome.NETWORK_ERROR, f"{where} broke off the HTTP exchange: {error}")
    if cause is not None and cause.strerror:
        return FeedError(Outcome.NETWORK_ERROR, f"network error with {where}: {cause.strerror}")
    return FeedError(Outcome.NETWORK_ERROR, f"could not read the feed from {where}: {type(error).__name__}")


@dataclass
class _Watched:
    duplicate: socket.socket
    """Kept to cut the connection at the deadline."""
    live: socket.socket
    """The socket httpcore reads (the TLS one once wrapped): closed when the connection is."""


class _Connections:
    """The sockets one fetch opened, so that its deadline can cut them wherever the fetch is blocked.

    httpx's timeouts bound each read, not a whole request: a server that sends a byte a second,
    of its headers or its body, holds a request for as long as it likes (encode/httpx#1450).
    Shutting a socket down ends any read or write on it at once. Each socket is watched through
    a duplicate of its descriptor, which stays valid when TLS wraps the original; the duplicate is
    released once its connection is closed (`release_closed`, after each page), so that a feed of
    thousands of pages holds a descriptor or two, not one per page.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: list[_Watched] = []
        self._cut = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's `trace` request extension: reports each new connection's network stream."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        connected = info["return_value"].get_extra_info("socket")
        if not isinstance(connected, socket.socket):
            return
        if event == "connection.start_tls.complete":
            with self._lock:  # the TLS socket of the connection made just before, in this same thread
                if self._watched:
                    self._watched[-1].live = connected
            return
        watched = _Watched(connected.dup(), connected)
        with self._lock:
            self._watched.append(watched)
            if not self._cut:
                return
        self._shut_down(watched.duplicate)  # connected after the deadline: the fetch was abandoned

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            watched = [entry.duplicate for entry in self._watched]
        for connection in watched:
            self._shut_down(connection)

    def release_closed(self) -> None:
        """Closes the duplicates of connections that the pool has closed."""
        open_: list[_Watched] = []
        closed: list[_Watched] = []
        with self._lock:
            for entry in self._watched:
                (closed if entry.live.fileno() == -1 else open_).append(entry)
            self._watched = open_
        for entry in closed:
            entry.duplicate.close()

    def close(self) -> None:
        with self._lock:
            watched, self._watched = self._watched, []
        for entry in watched:
            entry.duplicate.close()

    @staticmethod
    def _shut_down(connection: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed by its end
            connection.shutdown(socket.SHUT_RDWR)


class _Route:
    """One fetch's way through the feed: its connections, the statuses it met, and where its requests may
    go. The first page may be redirected anywhere (a provider moves its file to a CDN); a later page,
    redirects included, stays on the host, scheme and port of the page that linked to it."""

    def __init__(self) -> None:
        self.connections = _Connections()
        self.status_codes: list[int] = []
        self._origin: tuple[str, bytes, int | None] | None = None
        self._page = 1

    def confine(self, url: httpx.URL, page: int) -> None:
        self._origin, self._page = _origin(url), page

    def check(self, request: httpx.Request) -> None:
        """httpx's request hook: runs before each request, the first and every redirect."""
        if self._origin is not None and _origin(request.url) != self._origin:
            raise FeedError(
                Outcome.BROKEN_PAGING,
                f"page {self._page} of the feed is redirected to another host, {_host_port(request.url)}",
            )
        if not host_is_usable(request.url):
            raise FeedError(Outcome.NETWORK_ERROR, f"the feed is redirected to a host that is {BAD_HOST}")


class HttpSource:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        max_bytes: int,
        tracer: trace.Tracer,
        propagate_trace_context: bool = False,
        paged: bool = False,
        accept: str = ACCEPT,
        max_pages: int = MAX_PAGES,
        authorization: str | None = None,
        access: FeedAccess | None = None,
    ) -> None:
        """`paged`: follow the `Link: <...>; rel="next"` of each answer (OCPI's pagination), within
        `max_pages`, on the host that gave the link; the pages' bodies are joined, one a line.
        `authorization`: the Authorization header's value, sent with every request to the feed's own
        scheme, host and port, and to no other (httpx drops it from a redirect to another origin).
        `access`: the headers and client certificate the feed requires; the headers, like the
        Authorization, go to the feed's own origin only."""
        self._url = url
        self._authorization = authorization
        self._origin = _origin(httpx.URL(url))
        self._paged = paged
        self._max_pages = max_pages
        self.description = redact_url(url)
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._tracer = tracer
        # A traceparent tells the provider something only worth telling when the trace is exported.
        self._propagate_trace_context = propagate_trace_context
        parts = urlsplit(url)
        self._server_address = parts.hostname or ""
        self._server_port = parts.port or (443 if parts.scheme == "https" else 80)
        # One pool per fetch, closed when the fetch ends: the pages of a paged feed share its connection,
        # and every fetch starts on a new one, which the deadline watches from its first byte (polls
        # minutes apart gain nothing from keeping one open). The TLS context is built once.
        self._client_options: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout_s),
            "limits": httpx.Limits(max_connections=1, max_keepalive_connections=1),
            "verify": access.ssl_context() if access and access.client_cert else httpx.create_ssl_context(),
            "follow_redirects": True,
            "headers": {
                "Accept": accept,
                "Accept-Encoding": "gzip",
                "User-Agent": f"otel-chargy/{__version__}",
                **(access.headers if access else {}),
            },
        }
        # httpx keeps every header but Authorization on a redirect to another origin: a key in a header of
        # its own is taken off there.
        self._request_hooks: list[Callable[[httpx.Request], None]] = (
            [partial(_keep_headers_home, self._origin, tuple(access.headers))] if access and access.headers else []
        )

    def close(self) -> None:
        pass  # each fetch closes its own pool

    def fetch(self, validators: Validators) -> Fetched:
        attributes: dict[str, str | int] = {
            "http.request.method": "GET",
            "url.full": self.description,
            "server.address": self._server_address,
            "server.port": self._server_port,
        }
        with self._tracer.start_as_current_span(
            "GET",
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return self._fetch_by_deadline(span, self._request_headers(validators), validators)
            except FeedError as error:
                mark_failed(span, error.outcome, error.reason)
                raise

    def _request_headers(self, validators: Validators) -> dict[str, str]:
        headers: dict[str, str] = {}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        if self._propagate_trace_context:
            propagate.inject(headers)
        return headers

    def _fetch_by_deadline(self, span: trace.Span, headers: dict[str, str], validators: Validators) -> Fetched:
        """The timeout bounds the whole fetch, from name resolution to the last byte: the request runs in
        a thread of its own, and at the deadline the refresh gives up on it and cuts its connections."""
        route = _Route()
        results: list[Fetched | BaseException] = []
        finished = threading.Event()

        def fetch() -> None:
            try:
                hooks: dict[str, list[Callable[..., Any]]] = {"request": [route.check, *self._request_hooks]}
                with httpx.Client(event_hooks=hooks, **self._client_options) as client:
                    results.append(self._get(client, headers, validators, route))
            except BaseException as error:  # handed to the refresh thread, which decides
                results.append(error)
            finally:
                route.connections.close()
                finished.set()

        worker = threading.Thread(target=fetch, name="fetch", daemon=True)
        worker.start()
        in_time = finished.wait(self._timeout_s)
        if route.status_codes:
            span.set_attribute("http.response.status_code", route.status_codes[0])
        if not in_time:
            route.connections.cut()
            where = _host_port(httpx.URL(self._url))
            raise FeedError(Outcome.TIMEOUT, f"the feed at {where} was not read in full within {self._timeout_s:g} s")
        worker.join()  # it has finished: this only waits for the thread's own end
        result = results[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _get(self, client: httpx.Client, headers: dict[str, str], validators: Validators, route: _Route) -> Fetched:
        url = httpx.URL(self._url)
        try:
            page = self._get_page(client, url, headers, validators, route, self._max_bytes, first=True)
            if page.body is None or page.next_url is None:
                return Fetched(page.body, page.validators)
            return self._get_next_pages(client, page, route)
        except httpx.HTTPError as error:
            raise describe_failure(error, url, self._timeout_s) from None

    def _get_next_pages(self, client: httpx.Client, first: _Page, route: _Route) -> Fetched:
        """The pages after the first, each on the host that linked to it (redirects included), none
        twice, at most max_pages."""
        assert first.body is not None
        bodies = [first.body]
        size = len(first.body)
        requested = {first.url}
        page = first
        while page.next_url is not None:
            next_url = page.next_url
            if _origin(next_url) != _origin(page.url):
                raise FeedError(
                    Outcome.BROKEN_PAGING,
                    f"page {len(bodies)} of the feed at {_host_port(page.url)} links its next page to another host,"
                    f" {_host_port(next_url)}",
                )
            if next_url in requested:
                raise FeedError(
                    Outcome.BROKEN_PAGING, f"page {len(bodies)} of the feed links back to an earlier page: a loop"
                )
            if len(bodies) >= self._max_pages:
                raise FeedError(Outcome.BROKEN_PAGING, f"the feed has over {self._max_pages} pages")
            requested.add(next_url)
            remaining = self._max_bytes - size - 1  # the line that joins the pages counts
            if remaining < 0:
                raise _too_large(self._max_bytes)
            route.confine(next_url, len(bodies) + 1)
            page = self._get_page(client, next_url, {}, Validators(), route, remaining, first=False)
            if page.body is None:
                raise FeedError(Outcome.BROKEN_PAGING, f"page {len(bodies) + 1} of the feed answered 304 Not Modified")
            bodies.append(page.body)
            size += len(page.body) + 1
        # A paged feed is asked whole every time: an unchanged first page says nothing of the others.
        return Fetched(b"\n".join(bodies))

    def _get_page(
        self,
        client: httpx.Client,
        url: httpx.URL,
        headers: dict[str, str],
        validators: Validators,
        route: _Route,
        max_bytes: int,
        *,
        first: bool,
    ) -> _Page:
        if self._authorization is not None and _origin(url) == self._origin:
            headers = {**headers, "Authorization": self._authorization}
        try:
            with client.stream("GET", url, headers=headers, extensions={"trace": route.connections.trace}) as response:
                return self._read_page(response, validators, route, max_bytes, first=first)
        except UnicodeError:  # httpx reads a redirect's Location through IDNA, and raises its error as is
            # A later page may only be redirected on its own host, which this is not.
            raise FeedError(
                Outcome.NETWORK_ERROR if first else Outcome.BROKEN_PAGING,
                f"the feed at {_host_port(url)} redirected to a host that is {BAD_HOST}",
            ) from None
        finally:
            route.connections.release_closed()

    def _read_page(
        self, response: httpx.Response, validators: Validators, route: _Route, max_bytes: int, *, first: bool
    ) -> _Page:
        route.status_codes.append(response.status_code)
        if response.status_code == 304:
            # A later page's 304 is the paging's fault (its caller says so), whatever was asked.
            if first and not (validators.etag or validators.last_modified):
                raise FeedError(
                    Outcome.HTTP_ERROR,
                    f"the feed at {_host_port(response.url)} answered 304 Not Modified to a request"
                    " that named no version to compare with",
                )
            return _Page(response.url, None, validators, None)
        if response.status_code not in _WHOLE_ANSWERS:
            raise FeedError(
                Outcome.HTTP_ERROR,
                f"the feed at {_host_port(response.url)} answered HTTP {response.status_code}",
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(self._max_bytes)
        next_url = None
        if self._paged and (link := response.links.get("next", {}).get("url")):
            try:
                # A URL holds no white space: httpx would quote it into a path that grows at every hop.
                if not link.isprintable() or any(character.isspace() for character in link):
                    raise httpx.InvalidURL(link)
                next_url = response.url.join(link)
            except (httpx.InvalidURL, UnicodeError):
                raise FeedError(Outcome.BROKEN_PAGING, "the feed's next-page link is not a URL") from None
        # A paged feed's parser inflates gzip as it parses (within --max-bytes): a national file sent
        # whole with Content-Encoding gzip then never stands inflated in memory. Pages are joined, so
        # each of several is inflated here.
        body = self._read_body(response, max_bytes, inflate=not (self._paged and first and next_url is None))
        validators = Validators(response.headers.get("etag"), response.headers.get("last-modified"))
        return _Page(response.url, body, validators, next_url)

    def _read_body(self, response: httpx.Response, max_bytes: int, *, inflate: bool = True) -> bytes:
        """The body, within `max_bytes`; a larger one fails with the feed's limit, --max-bytes.
        `inflate=False`: a gzip body is kept as it came, for a parser that inflates it."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise FeedError(Outcome.NETWORK_ERROR, f"the feed used an unsupported content encoding: {encoding[:40]}")
        # httpx would inflate a gzip body without bound; inflating here stops at the limit.
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" and inflate else None
        body = bytearray()
        for chunk in response.iter_raw():
            if inflater is None:
                body += chunk
            else:
                try:
                    body += inflater.decompress(chunk, max_bytes + 1 - len(body))
                except zlib.error:
                    raise FeedError(Outcome.NETWORK_ERROR, "the feed's gzip body is corrupt") from None
                if inflater.unconsumed_tail:
                    raise _too_large(self._max_bytes)
            if len(body) > max_bytes:
                raise _too_large(self._max_bytes)
        if inflater is not None and not inflater.eof:
            raise FeedError(Outcome.NETWORK_ERROR, "the feed's gzip body is truncated")
        return bytes(body)


class FileSource:
    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self._path = path
        self.description = str(path)
        self._max_bytes = max_bytes

    def close(self) -> None:
        pass

    def fetch(self, validators: Validators) -> Fetched:
        try:
            with self._path.open("rb") as file:
                body = file.read(self._max_bytes + 1)
        except OSError as error:
            raise FeedError(Outcome.NETWORK_ERROR, f"could not read {self._path}: {error.strerror}") from None
        if len(body) > self._max_bytes:
            raise _too_large(self._max_bytes)
        return Fetched(body)


class DemoSource:
    """A generated network of realistic size whose states move at every fetch."""

    description = "demo network (generated)"

    def __init__(self, placemarks: int = 1000, seed: int = 0) -> None:
        self._network = generate_network(placemarks, seed)
        self._rng = random.Random(seed)

    def close(self) -> None:
        pass

    def fetch(self, validators: Validators) -> Fetched:
        self._network = move_states(self._network, self._rng)
        return Fetched(render_kml(self._network))


@dataclass(frozen=True)
class FeedAccess:
    """What a feed requires of a client: headers (an API key: secrets) and a client certificate and key
    (files: the key's contents never leave the TLS library)."""

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    client_cert: tuple[str, str] | None = None
    """(certificate file, key file), PEM."""

    def ssl_context(self) -> ssl.SSLContext:
        """The default verification (SSL_CERT_FILE / SSL_CERT_DIR, else certifi), presenting the client
        certificate."""
        context = httpx.create_ssl_context(trust_env=True)
        if self.client_cert is not None:
            context.load_cert_chain(*self.client_cert)
        return context


class HttpOptions(TypedDict, total=False):
    """What an HTTP source takes beyond what every source does (HttpSource's keyword arguments)."""

    propagate_trace_context: bool
    paged: bool
    accept: str
    max_pages: int
    authorization: str | None
    access: FeedAccess | None


def _keep_headers_home(origin: tuple[str, bytes, int | None], names: tuple[str, ...], request: httpx.Request) -> None:
    """An httpx request hook: the feed's own headers leave a request to another origin (a redirect)."""
    if _origin(request.url) != origin:
        for name in names:
            request.headers.pop(name, None)


def open_source(
    url: str, *, timeout_s: float, max_bytes: int, tracer: trace.Tracer, **http_options: Unpack[HttpOptions]
) -> FeedSource:
    """A source for an http(s) URL, a file:// URL or a plain path."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return HttpSource(url, timeout_s=timeout_s, max_bytes=max_bytes, tracer=tracer, **http_options)
    if scheme == "file":
        return FileSource(Path(urlsplit(url).path), max_bytes=max_bytes)
    return FileSource(Path(url), max_bytes=max_bytes)
