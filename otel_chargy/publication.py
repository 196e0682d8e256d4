"""What a refresh publishes: one snapshot and what the outputs read of it, built before the swap.

One name, one idea: a refresh turns a `Snapshot` into a `Publication`; the holder keeps the
publication in service; the callbacks and /metrics read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_chargy.exposition import SnapshotExposition, render_snapshot
from otel_chargy.metrics import MetricSpec, SnapshotObservations, observe_snapshot
from otel_chargy.model import Snapshot


@dataclass(frozen=True, slots=True)
class Outputs:
    """What the configured outputs read of a snapshot: each costs memory in proportion to the network,
    so a publication builds only these."""

    observed: tuple[MetricSpec, ...] = ()
    """The snapshot metrics that push readers (OTLP, console) collect, as observations."""
    exposition: bool = False
    """The snapshot metrics as Prometheus text, for /metrics."""


@dataclass(frozen=True, slots=True)
class Publication:
    snapshot: Snapshot
    observations: SnapshotObservations
    exposition: SnapshotExposition | None
    """None when the Prometheus endpoint is off."""
    fetched_at: float
    """Wall-clock time of the fetch: the feed carries no timestamp of its own."""
    fetched_monotonic: float


def build_publication(snapshot: Snapshot, outputs: Outputs, fetched_at: float, fetched_monotonic: float) -> Publication:
    return Publication(
        snapshot,
        observe_snapshot(snapshot, outputs.observed),
        render_snapshot(snapshot) if outputs.exposition else None,
        fetched_at,
        fetched_monotonic,
    )
