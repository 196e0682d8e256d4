"""An answer to a request as the server sends it, and the per-snapshot cache answers are made from."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Generic, TypeVar

from otel_chargy.model import Snapshot

Rendered = TypeVar("Rendered")

JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Reply:
    status: HTTPStatus
    chunks: Sequence[bytes]
    """Written one after another: cached parts are sent as they are, never joined."""
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


GZIP_MIN_BYTES = 1400
"""Smaller answers fit one packet as they are: compressing them saves nothing."""


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether the client's Accept-Encoding takes gzip (and does not refuse it with q=0)."""
    for entry in (accept_encoding or "").split(","):
        coding, _, parameters = entry.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = parameters.strip().removeprefix("q=").strip()
            try:
                return not parameters.strip() or float(quality) > 0
            except ValueError:
                return False
    return False


def gzipped(reply: Reply, accept_encoding: str | None) -> Reply:
    """`reply` gzip-compressed when it is large, compressible (JSON, HTML) and the client takes gzip."""
    compressible = reply.content_type.startswith((JSON_TYPE, "text/"))
    if not compressible or "Content-Encoding" in reply.headers:
        return reply
    size = sum(len(chunk) for chunk in reply.chunks)
    vary = {**reply.headers, "Vary": "Accept-Encoding"}
    if size < GZIP_MIN_BYTES or not accepts_gzip(accept_encoding):
        return Reply(reply.status, reply.chunks, reply.content_type, vary)
    # Level 1: several times smaller for a fraction of the time the default level takes.
    body = gzip.compress(b"".join(reply.chunks), compresslevel=1, mtime=0)
    return Reply(reply.status, [body], reply.content_type, {**vary, "Content-Encoding": "gzip"})


def json_reply(value: object, status: HTTPStatus = HTTPStatus.OK) -> Reply:
    return Reply(status, [json_bytes(value) + b"\n"], JSON_TYPE)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_bytes(value: object) -> bytes:
    return _ENCODER.encode(value).encode()


class PerSnapshot(Generic[Rendered]):
    """What was rendered from the snapshot in service, rebuilt when the snapshot object changes, by one request."""

    def __init__(self, render: Callable[[Snapshot], Rendered]) -> None:
        self._render = render
        self._cached: tuple[Snapshot, Rendered] | None = None
        self._lock = threading.Lock()

    def forget(self) -> None:
        with self._lock:
            self._cached = None

    def get(self, snapshot: Snapshot) -> Rendered:
        cached = self._cached
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        with self._lock:
            cached = self._cached
            if cached is None or cached[0] is not snapshot:
                cached = (snapshot, self._render(snapshot))
                self._cached = cached
            return cached[1]
