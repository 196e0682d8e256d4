"""The snapshot in service and how the last refresh went, swapped atomically."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from otel_chargy.model import Snapshot
from otel_chargy.outcome import Outcome

Prepared = TypeVar("Prepared")


@dataclass(frozen=True, slots=True)
class Published(Generic[Prepared]):
    snapshot: Snapshot
    prepared: Prepared
    """What the metric callbacks return for this snapshot, built once at refresh time."""
    fetched_at: float
    """Wall-clock time of the fetch: the feed carries no timestamp of its own."""
    fetched_monotonic: float


@dataclass(frozen=True, slots=True)
class RefreshStatus:
    outcome: Outcome | None = None
    """None until the first refresh has finished."""
    reason: str = "the first refresh has not finished yet"
    finished_at: float | None = None
    last_success_at: float | None = None


class SnapshotHolder(Generic[Prepared]):
    """Readers never block and never see a half-built state: each field is one reference, replaced whole."""

    def __init__(
        self,
        prepare: Callable[[Snapshot], Prepared],
        max_staleness_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prepare = prepare
        self._max_staleness_s = max_staleness_s
        self._monotonic = monotonic
        self._published: Published[Prepared] | None = None
        self._status = RefreshStatus()
        self._generation = 0
        self._lock = threading.Lock()  # writers only

    @property
    def max_staleness_s(self) -> float:
        return self._max_staleness_s

    def publish(self, snapshot: Snapshot, fetched_at: float) -> None:
        # Preparing happens before the swap, so the old snapshot serves until the new one is whole.
        published = Published(snapshot, self._prepare(snapshot), fetched_at, self._monotonic())
        with self._lock:
            self._published = published
            self._generation += 1

    def confirm(self, fetched_at: float) -> None:
        """The feed said the snapshot in service is still current: it is as fresh as a new fetch."""
        with self._lock:
            if self._published is not None:
                self._published = replace(self._published, fetched_at=fetched_at, fetched_monotonic=self._monotonic())
                self._generation += 1

    def record(self, status: RefreshStatus) -> None:
        with self._lock:
            self._status = status
            self._generation += 1

    @property
    def latest(self) -> Published[Prepared] | None:
        """The last good snapshot, however old."""
        return self._published

    @property
    def current(self) -> Published[Prepared] | None:
        """The last good snapshot while it is younger than the maximum staleness, else None."""
        published = self._published
        if published is None or self._monotonic() - published.fetched_monotonic > self._max_staleness_s:
            return None
        return published

    @property
    def status(self) -> RefreshStatus:
        return self._status

    @property
    def version(self) -> tuple[int, bool]:
        """Changes whenever anything a metric shows could have changed: a refresh, or the snapshot going stale."""
        return self._generation, self.current is not None
