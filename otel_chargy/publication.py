"""What a refresh publishes with a snapshot: everything the outputs need, built before the swap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from otel_chargy.exposition import SnapshotExposition, render_snapshot
from otel_chargy.metrics import PreparedObservations, prepare_observations
from otel_chargy.model import Snapshot


@dataclass(frozen=True, slots=True)
class Publication:
    station_count: int
    connector_count: int
    observations: PreparedObservations | None
    """For the push readers (OTLP, console); None when there is none."""
    exposition: SnapshotExposition | None
    """For the Prometheus endpoint; None when it is off."""


def publisher(*, observations: bool, exposition: bool) -> Callable[[Snapshot], Publication]:
    """Builds only what the configured outputs read: each costs memory in proportion to the network."""

    def publish(snapshot: Snapshot) -> Publication:
        return Publication(
            station_count=len(snapshot.stations),
            connector_count=snapshot.connector_count,
            observations=prepare_observations(snapshot) if observations else None,
            exposition=render_snapshot(snapshot) if exposition else None,
        )

    return publish
