"""The refresh loop: fetch, parse, publish, on a schedule of its own."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from dataclasses import dataclass

from opentelemetry import trace

from otel_chargy.fetch import FeedSource, Validators
from otel_chargy.holder import RefreshStatus, SnapshotHolder
from otel_chargy.metrics import RefreshRecorder
from otel_chargy.model import Snapshot
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import SizeBounds, parse_kml

logger = logging.getLogger(__name__)

# After a failure the next try comes sooner: 1 s, 2 s, 4 s ... but never later than the interval.
_FIRST_RETRY_S = 1.0


@dataclass(frozen=True)
class RefreshResult:
    outcome: Outcome
    reason: str
    snapshot: Snapshot | None


class Refresher:
    def __init__(
        self,
        source: FeedSource,
        holder: SnapshotHolder,
        recorder: RefreshRecorder,
        tracer: trace.Tracer,
        refresh_interval_s: float,
        bounds: SizeBounds,
    ) -> None:
        self._source = source
        self._bounds = bounds
        self._holder = holder
        self._recorder = recorder
        self._tracer = tracer
        self._refresh_interval_s = refresh_interval_s
        self._body_digest = b""
        self._validators = Validators()
        self._consecutive_failures = 0

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
                span.set_attribute("error.type", result.outcome.value)
                span.set_status(trace.Status(trace.StatusCode.ERROR, result.reason))
        duration_s = time.monotonic() - started
        self._record(result, duration_s)
        return result

    def _fetch_and_publish(self, span: trace.Span) -> RefreshResult:
        # Validators are only sent while their snapshot is in service: a 304 then confirms it.
        validators = self._validators if self._holder.latest is not None else Validators()
        try:
            fetched = self._source.fetch(validators)
            if fetched.body is None:
                self._holder.confirm(time.time())
                span.set_attribute("chargy.snapshot.changed", False)
                return RefreshResult(Outcome.NOT_MODIFIED, "the feed has not changed", None)
            snapshot = self._parse(fetched.body)
        except FeedError as error:
            span.record_exception(error)
            return RefreshResult(error.outcome, error.reason, None)
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

    def _parse(self, body: bytes) -> Snapshot:
        with self._tracer.start_as_current_span(
            "chargy.parse", record_exception=False, set_status_on_exception=False
        ) as span:
            span.set_attribute("chargy.feed.bytes", len(body))
            try:
                snapshot = parse_kml(body, self._bounds)
            except FeedError as error:
                span.set_attribute("error.type", error.outcome.value)
                span.set_status(trace.Status(trace.StatusCode.ERROR, error.reason))
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
        self._recorder.record_refresh(result.outcome, duration_s, result.snapshot.issues if result.snapshot else {})
        if not succeeded:
            self._consecutive_failures += 1
            logger.warning(
                "refresh failed; the last good snapshot stays in service",
                extra={"outcome": result.outcome.value, "duration_s": round(duration_s, 3), "reason": result.reason},
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
            },
        )

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
            stop.wait(max(0.0, started + self.next_delay_s() - time.monotonic()))
