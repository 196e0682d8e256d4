"""Objects found by name in a JSON document of any shape, read as a stream: the items of every array
(or the object) held under one of the given keys, wherever it stands, are built one at a time and
handed on; the rest of the document is skipped as it is read. A national file thus costs the objects it
yields, never the whole document, and every size is bounded (see parse_ocpi: the same reader, bounds
and decompression). Knows nothing of metrics or HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import ijson

from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse_ocpi import (
    _CHUNK_BYTES,
    MAX_DEPTH,
    MAX_LOCATION_VALUES,
    _BoundedReader,
    _build,
    _first_line,
    _looks_like_markup,
    _open_document,
    _too_deep,
)

Handler = Callable[[str, object], None]


def read_objects(
    body: bytes, max_bytes: int, keys: frozenset[str], handle: Handler, not_format: Outcome, issues: Counter[str]
) -> int:
    """Calls `handle(key, item)` for each item under one of `keys`; returns how many were handed on.
    Text that is not UTF-8 is repaired and counted in `issues`. Raises FeedError (outcome `not_format`
    for a document that is not JSON at all)."""
    reader = _BoundedReader(_open_document(body), max_bytes, issues)
    found = [0]
    try:
        events = ijson.basic_parse(reader, use_float=True, buf_size=_CHUNK_BYTES)
        first = next(events, None)
        if first is None:
            raise FeedError(Outcome.EMPTY, "the document is empty")
        _walk(first, events, reader, keys, handle, found, depth=1, key="")
    except ijson.JSONError as error:
        if not body.strip():
            raise FeedError(Outcome.EMPTY, "the document is empty") from None
        if _looks_like_markup(body):
            raise FeedError(not_format, "the document is an HTML or XML page, not JSON") from None
        raise FeedError(Outcome.INVALID_JSON, f"the document is not well-formed JSON: {_first_line(error)}") from None
    return found[0]


def _walk(
    start: tuple[str, Any],
    events: Iterator[tuple[str, Any]],
    reader: _BoundedReader,
    keys: frozenset[str],
    handle: Handler,
    found: list[int],
    depth: int,
    key: str,
) -> None:
    """Walks the value that `start` opens; `key` is the member name it stands under."""
    event, _ = start
    if event not in ("start_map", "start_array"):
        return
    if depth > MAX_DEPTH:
        raise _too_deep()
    wanted = key in keys
    if event == "start_map":
        if wanted:
            _hand_on(key, _build(event, None, events, depth, [MAX_LOCATION_VALUES]), reader, handle, found)
            return
        for member_event, member in events:
            if member_event == "end_map":
                return
            _walk(next(events), events, reader, keys, handle, found, depth + 1, member)
        raise ijson.IncompleteJSONError("an object is not closed")
    for item_event, value in events:
        if item_event == "end_array":
            return
        if wanted:
            _hand_on(key, _build(item_event, value, events, depth + 1, [MAX_LOCATION_VALUES]), reader, handle, found)
        else:
            _walk((item_event, value), events, reader, keys, handle, found, depth + 1, key)
    raise ijson.IncompleteJSONError("an array is not closed")


def _hand_on(key: str, item: object, reader: _BoundedReader, handle: Handler, found: list[int]) -> None:
    found[0] += 1
    reader.progress += 1
    handle(key, item)
