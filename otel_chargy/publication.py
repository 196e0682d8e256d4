"""What a refresh publishes: one snapshot, the usage counters up to it, and what the outputs read of
both, built before the swap.

One name, one idea: a refresh turns a `Snapshot` into a `Publication`; the holder keeps the
publication in service; the callbacks and /metrics read it. The usage counters are part of it, so
that one collection shows one state of the network and the counters that go with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from otel_chargy.catalog import MetricSpec
from otel_chargy.model import Snapshot
from otel_chargy.observe import SnapshotObservations, observe_snapshot, observe_usage
from otel_chargy.render import SnapshotExposition, render_snapshot, render_usage
from otel_chargy.usage import UsageView


@dataclass(frozen=True, slots=True)
class Outputs:
    """What the configured outputs read of a snapshot: each costs memory in proportion to the network,
    so a publication builds only these."""

    observed: tuple[MetricSpec, ...] = ()
    """The snapshot metrics (usage counters included) that push readers (OTLP, console) collect, as observations."""
    exposition: bool = False
    """The snapshot metrics and usage counters as Prometheus text, for /metrics."""
    created_series: bool = True
    """The usage counters' `_created` lines in OpenMetrics (PROMETHEUS_DISABLE_CREATED_SERIES)."""


@dataclass(frozen=True, slots=True)
class Publication:
    snapshot: Snapshot
    usage: UsageView
    """The usage counters up to this snapshot's refresh."""
    observations: SnapshotObservations
    exposition: SnapshotExposition | None
    """The snapshot's families; None when the Prometheus endpoint is off."""
    counters: SnapshotExposition | None
    """The usage counters' families, served after the snapshot's; None when the Prometheus endpoint is off."""
    fetched_at: float
    """Wall-clock time of the fetch: the feed carries no timestamp of its own."""
    fetched_monotonic: float


def build_publication(
    snapshot: Snapshot,
    usage: UsageView,
    outputs: Outputs,
    fetched_at: float,
    fetched_monotonic: float,
    previous: Publication | None = None,
) -> Publication:
    """`previous`: the publication in service, whose rendering of the stations that did not change is reused."""
    exposition = None
    if outputs.exposition:
        exposition = render_snapshot(snapshot, previous.exposition if previous is not None else None)
    observations = observe_snapshot(snapshot, outputs.observed)
    snapshot_only = Publication(snapshot, usage, observations, exposition, None, fetched_at, fetched_monotonic)
    return with_usage(snapshot_only, usage, outputs, fetched_at, fetched_monotonic)


def with_usage(
    publication: Publication, usage: UsageView, outputs: Outputs, fetched_at: float, fetched_monotonic: float
) -> Publication:
    """`publication` confirmed at a later refresh (a 304): the same snapshot, the counters up to now.
    Only the counters are built again."""
    return replace(
        publication,
        usage=usage,
        observations={**publication.observations, **observe_usage(usage, outputs.observed)},
        counters=render_usage(usage, outputs.created_series) if outputs.exposition else None,
        fetched_at=fetched_at,
        fetched_monotonic=fetched_monotonic,
    )
