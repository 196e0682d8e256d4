"""The publication in service and how the last refresh went, swapped atomically."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from otel_chargy.events import EventLog
from otel_chargy.model import Snapshot
from otel_chargy.outcome import Outcome
from otel_chargy.publication import Outputs, Publication, build_publication, with_usage
from otel_chargy.usage import UsageTracker


@dataclass(frozen=True, slots=True)
class RefreshStatus:
    outcome: Outcome | None = None
    """None until the first refresh has finished."""
    reason: str = "the first refresh has not finished yet"
    finished_at: float | None = None
    last_success_at: float | None = None


@dataclass(frozen=True, slots=True)
class Served:
    """What the holder serves at one moment, read at once: what one collection of metrics shows."""

    publication: Publication | None
    """The publication in service; None when there is none or it is older than the maximum staleness."""
    status: RefreshStatus
    generation: int

    @property
    def version(self) -> tuple[int, bool]:
        """Changes whenever anything a metric shows could have changed: a refresh, or the snapshot going stale."""
        return self.generation, self.publication is not None


class SnapshotHolder:
    """Readers never block and never see a half-built state: each field is one reference, replaced whole."""

    def __init__(
        self,
        outputs: Outputs,
        max_staleness_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        events: EventLog | None = None,
    ) -> None:
        self._outputs = outputs
        self.events = events if events is not None else EventLog()
        """The state changes between refreshes; updated by the refresh loop with the publication."""
        self._max_staleness_s = max_staleness_s
        self._monotonic = monotonic
        self._usage = UsageTracker(max_staleness_s)
        """Updated by the refresh loop only, like the publication."""
        self._publication: Publication | None = None
        self._status = RefreshStatus()
        self._generation = 0
        self._lock = threading.Lock()  # writers, and readers of several fields at once

    @property
    def max_staleness_s(self) -> float:
        return self._max_staleness_s

    def publish(self, snapshot: Snapshot, fetched_at: float) -> None:
        """A refresh fetched `snapshot` at `fetched_at` (Unix time); it is counted in the usage counters."""
        now = self._monotonic()
        usage = self._usage.observe(snapshot, now, fetched_at)
        # Built before the swap, so the old publication serves until the new one is whole.
        publication = build_publication(snapshot, usage, self._outputs, fetched_at, now, self._publication)
        self.events.observe(snapshot, fetched_at)
        with self._lock:
            self._publication = publication
            self._generation += 1

    def confirm(self, fetched_at: float) -> None:
        """The feed said the snapshot in service is still current: it is as fresh as a new fetch, and
        counted again in the usage counters."""
        # Only the refresh loop writes: the publication cannot change between this read and the swap.
        publication = self._publication
        if publication is None:
            return
        now = self._monotonic()
        usage = self._usage.observe(publication.snapshot, now, fetched_at)
        confirmed = with_usage(publication, usage, self._outputs, fetched_at, now)
        with self._lock:
            self._publication = confirmed
            self._generation += 1

    def record(self, status: RefreshStatus) -> None:
        with self._lock:
            self._status = status
            self._generation += 1

    @property
    def latest(self) -> Publication | None:
        """The last good publication, however old."""
        return self._publication

    @property
    def current(self) -> Publication | None:
        """The last good publication while it is younger than the maximum staleness, else None."""
        return self._fresh(self._publication)

    def _fresh(self, publication: Publication | None) -> Publication | None:
        if publication is None or self._monotonic() - publication.fetched_monotonic > self._max_staleness_s:
            return None
        return publication

    @property
    def status(self) -> RefreshStatus:
        return self._status

    def served(self) -> Served:
        with self._lock:
            return Served(self._fresh(self._publication), self._status, self._generation)
