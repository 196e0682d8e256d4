"""The last refreshes, kept for the status page and the status API: a small bounded record.

It also tells whoever renders from snapshots (the page, the API) that a new one is in service, so
that they let go of what they rendered from the one before.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from otel_chargy.model import Snapshot
from otel_chargy.outcome import Outcome

logger = logging.getLogger(__name__)

DEFAULT_HISTORY_LENGTH = 20


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    finished_at: float
    outcome: Outcome
    reason: str
    duration_s: float
    stations: int | None
    """None when the refresh brought no new snapshot (a failure or a 304)."""
    connectors: int | None


class RefreshHistory:
    """Written by the refresh loop, read by page requests: each read is a consistent copy."""

    def __init__(self, length: int = DEFAULT_HISTORY_LENGTH) -> None:
        self._records: deque[RefreshRecord] = deque(maxlen=length)
        self._failing_since: float | None = None
        self._up_since: float | None = None
        self._next_refresh_at: float | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Snapshot], object]] = []

    def on_each_snapshot(self, listener: Callable[[Snapshot], object]) -> None:
        """Calls `listener` with each new snapshot, in the refresh thread, once it is in service."""
        self._listeners.append(listener)

    def record(self, record: RefreshRecord, snapshot: Snapshot | None = None) -> None:
        """`snapshot`: the one this refresh put in service, if it brought one."""
        with self._lock:
            # "Since when" outlives the bounded list: a feed down for a day is still down since the first failure.
            if record.outcome.succeeded:
                self._failing_since = None
                if self._up_since is None:
                    self._up_since = record.finished_at
            else:
                self._up_since = None
                if self._failing_since is None:
                    self._failing_since = record.finished_at
            self._records.append(record)
        if snapshot is not None:
            for listener in self._listeners:
                try:
                    listener(snapshot)
                except Exception:  # the refresh loop must outlive a bug in a page
                    logger.exception("the status page failed to take a new snapshot")

    def expect_next(self, at: float) -> None:
        """When the refresh loop will refresh next (wall-clock time)."""
        self._next_refresh_at = at

    @property
    def records(self) -> list[RefreshRecord]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._records))

    @property
    def failing_since(self) -> float | None:
        """When the current run of failed refreshes began; None while the feed is up."""
        return self._failing_since

    @property
    def up_since(self) -> float | None:
        """When the current run of successful refreshes began; None while the feed fails."""
        return self._up_since

    @property
    def next_refresh_at(self) -> float | None:
        return self._next_refresh_at
