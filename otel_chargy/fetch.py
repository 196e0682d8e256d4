"""Getting the feed's bytes: over HTTP, from a file, or from the demo generator."""

from __future__ import annotations

import random
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from opentelemetry import propagate, trace

from otel_chargy import __version__
from otel_chargy.generator import generate_network, move_states, render_kml
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.redact import redact_url

# The provider answers 406 to a request that prefers JSON.
ACCEPT = "application/vnd.google-earth.kml+xml, application/xml;q=0.9, */*;q=0.1"


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


class FeedSource(Protocol):
    description: str
    """Where the feed comes from, safe to show (secrets redacted)."""

    def fetch(self, validators: Validators) -> Fetched: ...

    def close(self) -> None: ...


def _too_large(max_bytes: int) -> FeedError:
    return FeedError(Outcome.TOO_LARGE, f"the feed is larger than the limit of {max_bytes} bytes")


class HttpSource:
    def __init__(self, url: str, *, timeout_s: float, max_bytes: int, tracer: trace.Tracer) -> None:
        self._url = url
        self.description = redact_url(url)
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._tracer = tracer
        parts = urlsplit(url)
        self._server_address = parts.hostname or ""
        self._server_port = parts.port or (443 if parts.scheme == "https" else 80)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=True,
            headers={"Accept": ACCEPT, "Accept-Encoding": "gzip", "User-Agent": f"otel-chargy/{__version__}"},
        )

    def close(self) -> None:
        self._client.close()

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
                return self._get(span, validators)
            except FeedError as error:
                span.set_attribute("error.type", error.outcome.value)
                span.set_status(trace.Status(trace.StatusCode.ERROR, error.reason))
                raise

    def _get(self, span: trace.Span, validators: Validators) -> Fetched:
        headers: dict[str, str] = {}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        propagate.inject(headers)
        # The timeout bounds the whole fetch: a feed that drips a byte at a time must not hold the refresh.
        deadline = time.monotonic() + self._timeout_s
        try:
            with self._client.stream("GET", self._url, headers=headers) as response:
                span.set_attribute("http.response.status_code", response.status_code)
                if response.status_code == 304:
                    return Fetched(None, validators)
                if response.status_code >= 400:
                    raise FeedError(Outcome.HTTP_ERROR, f"the feed answered HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self._max_bytes:
                    raise _too_large(self._max_bytes)
                body = self._read_body(response, deadline)
                return Fetched(body, Validators(response.headers.get("etag"), response.headers.get("last-modified")))
        except httpx.TimeoutException:
            raise FeedError(Outcome.TIMEOUT, f"the feed did not answer within {self._timeout_s:g} s") from None
        except httpx.HTTPError as error:
            raise FeedError(Outcome.NETWORK_ERROR, f"could not read the feed: {type(error).__name__}") from None

    def _read_body(self, response: httpx.Response, deadline: float) -> bytes:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise FeedError(Outcome.NETWORK_ERROR, f"the feed used an unsupported content encoding: {encoding[:40]}")
        # httpx would inflate a gzip body without bound; inflating here stops at the limit.
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
        body = bytearray()
        for chunk in response.iter_raw():
            if time.monotonic() > deadline:
                raise FeedError(Outcome.TIMEOUT, f"the feed was not read within {self._timeout_s:g} s")
            if inflater is None:
                body += chunk
            else:
                try:
                    body += inflater.decompress(chunk, self._max_bytes + 1 - len(body))
                except zlib.error:
                    raise FeedError(Outcome.NETWORK_ERROR, "the feed's gzip body is corrupt") from None
                if inflater.unconsumed_tail:
                    raise _too_large(self._max_bytes)
            if len(body) > self._max_bytes:
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


def open_source(url: str, *, timeout_s: float, max_bytes: int, tracer: trace.Tracer) -> FeedSource:
    """A source for an http(s) URL, a file:// URL or a plain path."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return HttpSource(url, timeout_s=timeout_s, max_bytes=max_bytes, tracer=tracer)
    if scheme == "file":
        return FileSource(Path(urlsplit(url).path), max_bytes=max_bytes)
    return FileSource(Path(url), max_bytes=max_bytes)
