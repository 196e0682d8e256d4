"""An answer to a request as the server sends it, and the per-snapshot cache answers are made from."""

from __future__ import annotations

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
