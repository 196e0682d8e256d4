"""A feed published in two parts (DATEX II v3, OICP): the static table, fetched at the start and then at
its own interval, conditionally when its server gave validators; and the status publication, fetched at
every refresh. The static table is kept parsed between its fetches, so a refresh reads only the statuses.

A failed status part fails the refresh (the last good snapshot stays in service) with a reason that
names the part; a failed static part keeps the last good static table, and the refresh says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from opentelemetry import trace

from otel_chargy.fetch import FeedSource, Validators
from otel_chargy.livetable import LiveTable, Relevance, StaticTable, StatusUpdate
from otel_chargy.model import Snapshot
from otel_chargy.outcome import FeedError, mark_failed

logger = logging.getLogger(__name__)

STATIC_STALE = "static_part_stale"
Parsed = TypeVar("Parsed")


@dataclass(frozen=True)
class PairedRead:
    snapshot: Snapshot | None
    """None: neither part changed since the snapshot in service."""
    bytes_read: int
    note: str
    """Why a refresh that succeeded served an older static part; empty when it did not."""


class PairedFeed:
    def __init__(
        self,
        static: FeedSource,
        status: FeedSource,
        parse_static: Callable[[bytes], StaticTable],
        parse_status: Callable[[bytes, Relevance], StatusUpdate],
        live: LiveTable,
        static_interval_s: float,
        tracer: trace.Tracer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = static
        self._status = status
        self._parse_static = parse_static
        self._parse_status = parse_status
        self._live = live
        self._static_interval_s = static_interval_s
        self._tracer = tracer
        self._clock = clock
        self.description = f"static {static.description}, status {status.description}"
        self._static_validators = Validators()
        self._static_due = 0.0
        self._static_read_at: float | None = None
        self._status_validators = Validators()

    def close(self) -> None:
        self._static.close()
        self._status.close()

    def read(self, in_service: bool) -> PairedRead:
        """The network now. `in_service`: a snapshot of this feed is served, so that unchanged parts may
        be answered 304. Raises FeedError naming the part that failed."""
        bytes_read = 0
        note = ""
        static_changed = False
        if self._live.table is None or self._clock() >= self._static_due:
            try:
                static_changed, bytes_read = self._read_static()
            except FeedError as error:
                if self._live.table is None:
                    raise FeedError(error.outcome, f"the static part failed: {error.reason}", error.issues) from None
                note = (
                    f"the static part failed ({error.outcome.value}: {error.reason}); the last good static part,"
                    f" read {self._age()} ago, stays in use"
                )
                logger.warning(note, extra={"outcome": error.outcome.value})
        validators = self._status_validators if in_service and not static_changed else Validators()
        try:
            fetched = self._status.fetch(validators)
            update = (
                None
                if fetched.body is None
                else self._parse("status", fetched.body, lambda body: self._parse_status(body, self._live.relevance))
            )
        except FeedError as error:
            raise FeedError(error.outcome, f"the status part failed: {error.reason}", error.issues) from None
        self._status_validators = fetched.validators
        if update is None and not static_changed and in_service:
            return PairedRead(None, bytes_read, note)
        issues = self._live.apply(update or StatusUpdate({}))
        if note:
            issues[STATIC_STALE] += 1
        snapshot = self._live.snapshot(issues)
        return PairedRead(snapshot, bytes_read + (len(fetched.body) if fetched.body else 0), note)

    def _read_static(self) -> tuple[bool, int]:
        """Fetches the static part (conditionally once one is in use); True when a new one was read."""
        validators = self._static_validators if self._live.table is not None else Validators()
        fetched = self._static.fetch(validators)
        now = self._clock()
        self._static_due = now + self._static_interval_s
        if fetched.body is None:
            self._static_read_at = now
            return False, 0
        table = self._parse("static", fetched.body, self._parse_static)
        self._live.replace_table(table)
        self._static_validators = fetched.validators
        self._static_read_at = now
        return True, len(fetched.body)

    def _parse(self, part: str, body: bytes, parse: Callable[[bytes], Parsed]) -> Parsed:
        with self._tracer.start_as_current_span(
            "chargy.parse", record_exception=False, set_status_on_exception=False
        ) as span:
            span.set_attributes({"chargy.feed.part": part, "chargy.feed.bytes": len(body)})
            try:
                return parse(body)
            except FeedError as error:
                mark_failed(span, error.outcome, error.reason)
                raise

    def _age(self) -> str:
        if self._static_read_at is None:
            return "an unknown time"
        seconds = self._clock() - self._static_read_at
        return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"
