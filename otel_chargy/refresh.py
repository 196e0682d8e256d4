"""The refresh loop: fetch, parse, publish, on a schedule of its own."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from opentelemetry import trace

from otel_chargy.fetch import FeedSource, Validators
from otel_chargy.history import RefreshHistory, RefreshRecord
from otel_chargy.holder import RefreshStatus, SnapshotHolder
from otel_chargy.metrics import RefreshRecorder
from otel_chargy.model import Snapshot
from otel_chargy.outcome import FeedError, Outcome, mark_failed
from otel_chargy.paired import PairedFeed
from otel_chargy.parse import SizeBounds, parse_kml

logger = logging.getLogger(__name__)

# After a failure the next try comes sooner: 1 s, 2 s, 4 s ... but never later than the interval.
_FIRST_RETRY_S = 1.0
# A feed that lost more than this fraction of the last good snapshot's connectors is refused ...
DEFAULT_MAX_SHRINK = 0.5
# ... until it has come this many refreshes in a row: then it is the network, not a glitch.
SHRINK_CONFIRMATIONS = 3


@dataclass(frozen=True)
class RefreshResult:
    outcome: Outcome
    reason: str
    snapshot: Snapshot | None
    refused_issues: Mapping[str, int] = field(default_factory=dict)
    """The parse issues of a document that was refused: counted like those of one that was used."""

    @property
    def issues(self) -> Mapping[str, int]:
        return self.snapshot.issues if self.snapshot is not None else self.refused_issues


def _by_kind(issues: Mapping[str, int]) -> str:
    return ", ".join(f"{kind}={count}" for kind, count in sorted(issues.items()))


class Refresher:
    def __init__(
        self,
        source: FeedSource | PairedFeed,
        holder: SnapshotHolder,
        recorder: RefreshRecorder,
        tracer: trace.Tracer,
        refresh_interval_s: float,
        bounds: SizeBounds,
        max_shrink: float = DEFAULT_MAX_SHRINK,
        history: RefreshHistory | None = None,
        parse: Callable[[bytes], Snapshot] | None = None,
        prepare: Callable[[Snapshot], Snapshot] = lambda snapshot: snapshot,
    ) -> None:
        """`max_shrink`: the fraction of the last good snapshot's connectors a new one may lose (1: no guard).
        `parse`: the feed format's parser (feeds.py); the Chargy KML parser within `bounds` by default.
        A PairedFeed (DATEX II, OICP) fetches and parses its two parts itself: `parse` is not used.
        `prepare`: applied to every snapshot a refresh reads, whatever the format, before it is published
        (the service's redaction of echoed secrets)."""
        if not 0 < max_shrink <= 1:
            raise ValueError(f"max_shrink must be in (0, 1], not {max_shrink}")
        self._source = source
        self._history = history
        self._parse_body = parse or (lambda body: parse_kml(body, bounds))
        self._prepare = prepare
        self._holder = holder
        self._recorder = recorder
        self._tracer = tracer
        self._refresh_interval_s = refresh_interval_s
        self._body_digest = b""
        self._validators = Validators()
        self._consecutive_failures = 0
        self._max_shrink = max_shrink
        self._shrunk_in_a_row = 0

    def refresh_once(self) -> RefreshResult:
        started = time.monotonic()
        with self._tracer.start_as_current_span(
            "chargy.refresh", record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                result = self._fetch_and_publish(span)
            except Exception as error:  # the loop must outlive any bug in a refresh
                logger.exception("refresh failed unexpectedly", extra={"error_type": type(error).__name__})
                result = RefreshResult(Outcome.INTERNAL_ERROR, f"unexpected {type(error).__name__}", None)
            span.set_attribute("chargy.refresh.outcome", result.outcome.value)
            if not result.outcome.succeeded:
                mark_failed(span, result.outcome, result.reason)
        duration_s = time.monotonic() - started
        self._record(result, duration_s)
        return result

    def _fetch_and_publish(self, span: trace.Span) -> RefreshResult:
        if isinstance(self._source, PairedFeed):
            return self._read_and_publish(self._source, span)
        # Validators are only sent while their snapshot is in service: a 304 then confirms it.
        validators = self._validators if self._holder.latest is not None else Validators()
        try:
            fetched = self._source.fetch(validators)
            if fetched.body is None:
                self._holder.confirm(time.time())
                span.set_attribute("chargy.snapshot.changed", False)
                return RefreshResult(Outcome.NOT_MODIFIED, "the feed has not changed", None)
            snapshot = self._parse(fetched.body)
            self._guard_shrink(snapshot, span)
        except FeedError as error:
            span.record_exception(error)
            return RefreshResult(error.outcome, error.reason, None, error.issues)
        digest = hashlib.blake2b(fetched.body, digest_size=16).digest()
        changed = digest != self._body_digest
        self._body_digest = digest
        self._validators = fetched.validators
        self._holder.publish(snapshot, time.time())
        span.set_attributes(
            {
                "chargy.feed.bytes": len(fetched.body),
                "chargy.feed.stations": len(snapshot.stations),
                "chargy.feed.connectors": snapshot.connector_count,
                "chargy.snapshot.changed": changed,
            }
        )
        return RefreshResult(Outcome.SUCCESS, "ok", snapshot)

    def _read_and_publish(self, feed: PairedFeed, span: trace.Span) -> RefreshResult:
        """A feed in two parts: a refresh reads the status part, and the static part when it is due."""
        try:
            read = feed.read(in_service=self._holder.latest is not None)
            if read.snapshot is None:
                self._holder.confirm(time.time())
                span.set_attribute("chargy.snapshot.changed", False)
                return RefreshResult(Outcome.NOT_MODIFIED, "neither part of the feed has changed", None)
            self._guard_shrink(read.snapshot, span)
        except FeedError as error:
            span.record_exception(error)
            return RefreshResult(error.outcome, error.reason, None, error.issues)
        snapshot = self._prepare(read.snapshot)
        self._holder.publish(snapshot, time.time())
        if read.note:
            span.add_event("chargy.static_part_stale", {"reason": read.note})
        span.set_attributes(
            {
                "chargy.feed.bytes": read.bytes_read,
                "chargy.feed.stations": len(snapshot.stations),
                "chargy.feed.connectors": snapshot.connector_count,
                "chargy.snapshot.changed": True,
            }
        )
        return RefreshResult(Outcome.SUCCESS, f"ok; {read.note}" if read.note else "ok", snapshot)

    def _parse(self, body: bytes) -> Snapshot:
        with self._tracer.start_as_current_span(
            "chargy.parse", record_exception=False, set_status_on_exception=False
        ) as span:
            span.set_attribute("chargy.feed.bytes", len(body))
            try:
                snapshot = self._prepare(self._parse_body(body))
            except FeedError as error:
                mark_failed(span, error.outcome, error.reason)
                for kind, count in error.issues.items():
                    span.add_event("chargy.parse_issue", {"kind": kind, "count": count})
                raise
            span.set_attributes(
                {
                    "chargy.feed.placemarks": len(snapshot.stations),
                    "chargy.feed.devices": snapshot.device_count,
                    "chargy.feed.connectors": snapshot.connector_count,
                }
            )
            for kind, count in snapshot.issues.items():
                span.add_event("chargy.parse_issue", {"kind": kind, "count": count})
            return snapshot

    def _guard_shrink(self, snapshot: Snapshot, span: trace.Span) -> None:
        """Refuses a snapshot that lost too many connectors, unless it keeps coming."""
        latest = self._holder.latest
        if latest is None or self._max_shrink >= 1:
            return
        before, after = latest.snapshot.connector_count, snapshot.connector_count
        if after >= before * (1 - self._max_shrink):
            return
        self._shrunk_in_a_row += 1
        if self._shrunk_in_a_row >= SHRINK_CONFIRMATIONS:
            span.set_attribute("chargy.feed.shrink_accepted", True)
            logger.info(
                "the feed stayed shrunk; its snapshot is accepted",
                extra={"connectors_before": before, "connectors": after, "refreshes": self._shrunk_in_a_row},
            )
            return
        raise FeedError(
            Outcome.SHRUNK,
            f"the feed shrank from {before} to {after} connectors, losing more than the --max-shrink of "
            f"{self._max_shrink:g}; refused unless it comes {SHRINK_CONFIRMATIONS} refreshes in a row "
            f"({self._shrunk_in_a_row} so far)",
        )

    def _record(self, result: RefreshResult, duration_s: float) -> None:
        previous = self._holder.status
        succeeded = result.outcome.succeeded
        finished_at = time.time()
        self._holder.record(
            RefreshStatus(
                outcome=result.outcome,
                reason=result.reason,
                finished_at=finished_at,
                last_success_at=finished_at if succeeded else previous.last_success_at,
            )
        )
        self._recorder.record_refresh(result.outcome, duration_s, result.issues)
        if self._history is not None:
            new_snapshot = result.snapshot
            self._history.record(
                RefreshRecord(
                    finished_at,
                    result.outcome,
                    result.reason,
                    duration_s,
                    len(new_snapshot.stations) if new_snapshot else None,
                    new_snapshot.connector_count if new_snapshot else None,
                ),
                new_snapshot,
            )
        if result.outcome is not Outcome.SHRUNK:
            self._shrunk_in_a_row = 0
        if not succeeded:
            # A shrunk feed is asked again at the usual interval: the guard must see it hold for a while.
            self._consecutive_failures = 0 if result.outcome is Outcome.SHRUNK else self._consecutive_failures + 1
            logger.warning(
                f"refresh failed; {self._what_is_served()}",
                extra={
                    "outcome": result.outcome.value,
                    "duration_s": round(duration_s, 3),
                    "reason": result.reason,
                    **({"parse_issues": _by_kind(result.issues)} if result.issues else {}),
                },
            )
            return
        self._consecutive_failures = 0
        published = self._holder.latest
        snapshot = result.snapshot or (published.snapshot if published else None)
        logger.info(
            "refresh finished",
            extra={
                "outcome": result.outcome.value,
                "duration_s": round(duration_s, 3),
                "stations": len(snapshot.stations) if snapshot else 0,
                "connectors": snapshot.connector_count if snapshot else 0,
                "parse_issues": sum(result.snapshot.issues.values()) if result.snapshot else 0,
                **({"format": snapshot.version} if snapshot and snapshot.version else {}),
            },
        )

    def _what_is_served(self) -> str:
        if self._holder.current is not None:
            return "the last good snapshot stays in service"
        if self._holder.latest is not None:
            return "the last good snapshot is older than the maximum staleness and no longer served"
        return "no snapshot is served yet"

    def next_delay_s(self) -> float:
        """Seconds from the start of the last refresh to the next one."""
        if self._consecutive_failures == 0:
            return self._refresh_interval_s
        backoff_s = _FIRST_RETRY_S * 2.0 ** (self._consecutive_failures - 1)
        return min(self._refresh_interval_s, backoff_s * random.uniform(0.5, 1.0))

    def run(self, stop: threading.Event) -> None:
        """Refreshes right away, then on schedule, until `stop` is set. Refreshes never overlap."""
        while not stop.is_set():
            started = time.monotonic()
            self.refresh_once()
            delay_s = max(0.0, started + self.next_delay_s() - time.monotonic())
            if self._history is not None:
                self._history.expect_next(time.time() + delay_s)
            stop.wait(delay_s)
