"""A real HTTP server on 127.0.0.1 that plays the Chargy feed, healthy or faulty."""

from __future__ import annotations

import gzip
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class FeedResponse:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/vnd.google-earth.kml+xml"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait before answering at all."""
    hold: bool = False
    """Answer nothing until the test calls `release()` (or the server stops)."""
    drip_interval_s: float | None = None
    """Send the body one byte at a time, this far apart."""
    drip_headers_interval_s: float | None = None
    """Send the status line, then header bytes one at a time, this far apart, without end."""
    reset: bool = False
    """Read the request, then hang up with a TCP reset instead of an answer."""
    truncate_at: int | None = None
    """Announce the whole body, send this many bytes, then hang up."""
    gzip: bool = False
    announce_length: bool = True
    etag: str | None = None
    """Sent as ETag; a request whose If-None-Match matches it gets 304."""
    last_modified: str | None = None
    """Sent as Last-Modified; a request whose If-Modified-Since matches it gets 304."""


class FeedServer:
    def __init__(self) -> None:
        self._response = FeedResponse()
        self._responses_by_path: dict[str, FeedResponse] = {}
        self._changing: Callable[[int], FeedResponse] | None = None
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._stopping = threading.Event()
        feed = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are written apart: without this, Nagle's algorithm and the client's delayed
            # ACK hold the body of a kept-alive connection back for 40 ms, as no tuned server does.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with feed._lock:
                    response = feed._responses_by_path.get(self.path, feed._response)
                    if feed._changing is not None:
                        response = feed._changing(len(feed.requests))
                    feed.requests.append((self.path, dict(self.headers.items())))
                if response.delay_s:
                    feed._stopping.wait(response.delay_s)
                if response.hold:
                    feed._released.wait()
                if response.reset:
                    # A zero linger time makes close() send RST: the client sees "connection reset".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if response.drip_headers_interval_s is not None:
                    self._drip_headers(response.drip_headers_interval_s)
                    return
                unchanged = (response.etag is not None and self.headers.get("If-None-Match") == response.etag) or (
                    response.last_modified is not None
                    and self.headers.get("If-Modified-Since") == response.last_modified
                )
                if unchanged:
                    self.send_response(304)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = gzip.compress(response.body) if response.gzip else response.body
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                if response.gzip:
                    self.send_header("Content-Encoding", "gzip")
                if response.announce_length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                if response.etag is not None:
                    self.send_header("ETag", response.etag)
                if response.last_modified is not None:
                    self.send_header("Last-Modified", response.last_modified)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    if response.truncate_at is not None:
                        self.wfile.write(body[: response.truncate_at])
                        self.wfile.flush()
                        self.close_connection = True
                    elif response.drip_interval_s is not None:
                        for index in range(len(body)):
                            self.wfile.write(body[index : index + 1])
                            self.wfile.flush()
                            if feed._stopping.wait(response.drip_interval_s):
                                break
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                if not response.announce_length:
                    self.close_connection = True

            def _drip_headers(self, interval_s: float) -> None:
                self.close_connection = True
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Padding: ")
                    self.wfile.flush()
                    while not feed._stopping.wait(interval_s):
                        self.wfile.write(b"a")
                        self.wfile.flush()
                except OSError:
                    pass  # the client hung up, as it should

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up (timeouts, size limits) are what the faults are about

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/kml", query: str = "") -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}{path}" + (f"?{query}" if query else "")

    def serve(self, response: FeedResponse) -> None:
        with self._lock:
            self._response = response

    def serve_changing(self, respond: Callable[[int], FeedResponse] | None) -> None:
        """Answers the request numbered n (from 0, counting every request so far) with `respond(n)`;
        None goes back to what `serve` and `serve_path` set."""
        with self._lock:
            self._changing = respond

    def serve_path(self, path: str, response: FeedResponse) -> None:
        """Answers requests for `path` (with its query) so; the others get what `serve` set."""
        with self._lock:
            self._responses_by_path[path] = response

    def release(self) -> None:
        """Lets every held request (`hold=True`) be answered."""
        self._released.set()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)
