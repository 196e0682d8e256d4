"""The usage counters as the outputs read them: Prometheus text rendered once per refresh (with
OpenMetrics `_created`), and prepared observations for the OTel observable counters of the push readers.

The refresh loop calls `UsagePublisher.refreshed` at each successful or not-modified refresh,
before the holder's swap; readers only read the immutable result.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_chargy.exposition import SnapshotExposition, _Deflated, _escape, _number_text, _sync_deflate
from otel_chargy.metrics import (
    NETWORK_CHARGING_SESSIONS,
    NETWORK_CONNECTOR_TIME,
    STATION_CHARGING_SESSIONS,
    STATION_CONNECTOR_TIME,
    MetricSpec,
)
from otel_chargy.model import Snapshot
from otel_chargy.usage import EMPTY_VIEW, STATES, UsageTotals, UsageTracker, UsageView

_OPENMETRICS_UNIT = {STATION_CONNECTOR_TIME: "seconds", NETWORK_CONNECTOR_TIME: "seconds"}


@dataclass(frozen=True, slots=True)
class UsageObservations:
    station_time: Sequence[Observation]
    station_sessions: Sequence[Observation]
    network_time: Sequence[Observation]
    network_sessions: Sequence[Observation]


def prepare_usage_observations(view: UsageView) -> UsageObservations:
    def time_of(label: str, totals: Iterable[tuple[str, UsageTotals]]) -> list[Observation]:
        return [
            Observation(seconds, {label: key, "chargy_connector_state": state.value})
            for key, usage in totals
            for state, seconds in zip(STATES, usage.seconds, strict=True)
        ]

    def sessions_of(label: str, totals: Iterable[tuple[str, UsageTotals]]) -> list[Observation]:
        return [Observation(usage.sessions, {label: key}) for key, usage in totals]

    return UsageObservations(
        time_of("station", view.stations.items()),
        sessions_of("station", view.stations.items()),
        time_of("speed", view.network.items()),
        sessions_of("speed", view.network.items()),
    )


def _counter_family(spec: MetricSpec, samples: Sequence[tuple[str, str, str]]) -> tuple[bytes, bytes, bytes, bytes]:
    """(text header, text samples, OpenMetrics header, OpenMetrics samples) of one counter family.

    `samples` holds (sorted, escaped label text, value text, created text). As the SDK's reader writes
    them, except `_created`, which it cannot know: OpenMetrics only (the text format has no place for it)."""
    total = spec.prometheus_name
    base = total.removesuffix("_total")
    text_help = spec.description.replace("\\", r"\\").replace("\n", r"\n")
    unit = _OPENMETRICS_UNIT.get(spec)
    unit_line = f"# UNIT {base} {unit}\n" if unit else ""
    lines = [f"{total}{{{labels}}} {value}\n" for labels, value, _ in samples]
    text_samples = "".join(lines)
    openmetrics_samples = "".join(
        f"{line}{base}_created{{{labels}}} {created}\n"
        for line, (labels, _, created) in zip(lines, samples, strict=True)
    )
    return (
        f"# HELP {total} {text_help}\n# TYPE {total} counter\n".encode(),
        text_samples.encode(),
        f"# HELP {base} {_escape(spec.description)}\n# TYPE {base} counter\n{unit_line}".encode(),
        openmetrics_samples.encode(),
    )


def render_usage(view: UsageView) -> SnapshotExposition:
    """The four families in both formats, each part deflated on its own as `render_snapshot` does."""

    # Each number is written once for both formats.
    def time_samples(label: str, totals: Iterable[tuple[str, UsageTotals]]) -> Iterator[tuple[str, str, str]]:
        for key, usage in totals:
            escaped = _escape(key)
            created = _number_text(usage.created)
            for state, seconds in zip(STATES, usage.seconds, strict=True):
                labels = f'chargy_connector_state="{state.value}",{label}="{escaped}"'
                yield labels, _number_text(seconds) if seconds else "0.0", created

    def session_samples(label: str, totals: Iterable[tuple[str, UsageTotals]]) -> Iterator[tuple[str, str, str]]:
        for key, usage in totals:
            yield f'{label}="{_escape(key)}"', _number_text(usage.sessions), _number_text(usage.created)

    families = [
        _counter_family(STATION_CONNECTOR_TIME, list(time_samples("station", view.stations.items()))),
        _counter_family(STATION_CHARGING_SESSIONS, list(session_samples("station", view.stations.items()))),
        _counter_family(NETWORK_CONNECTOR_TIME, list(time_samples("speed", view.network.items()))),
        _counter_family(NETWORK_CHARGING_SESSIONS, list(session_samples("speed", view.network.items()))),
    ]
    # A family with no series is left out, as the SDK's reader does.
    families = [family for family in families if family[1]]
    deflated = [tuple((part, _sync_deflate(part)) for part in family) for family in families]
    text = [part for text_header, text_samples, _, _ in deflated for part in (text_header, text_samples)]
    openmetrics = [part for _, _, header, samples in deflated for part in (header, samples)]
    return SnapshotExposition(
        tuple(plain for plain, _ in text),
        tuple(plain for plain, _ in openmetrics),
        _Deflated.of(text),
        _Deflated.of(openmetrics),
    )


def _joined(first: _Deflated, second: _Deflated, second_plain: Sequence[bytes]) -> _Deflated:
    crc = first.crc
    for part in second_plain:
        crc = zlib.crc32(part, crc)
    return _Deflated(first.data + second.data, crc, first.size + second.size)


def join_sections(first: SnapshotExposition, second: SnapshotExposition) -> SnapshotExposition:
    """`first`, then `second`, as one section: deflated sections ending in a sync flush follow one another."""
    return SnapshotExposition(
        first.text + second.text,
        first.openmetrics + second.openmetrics,
        _joined(first.text_deflated, second.text_deflated, second.text),
        _joined(first.openmetrics_deflated, second.openmetrics_deflated, second.openmetrics),
    )


_NOTHING = render_usage(EMPTY_VIEW)


@dataclass(frozen=True, slots=True)
class UsagePublication:
    view: UsageView
    observations: UsageObservations | None
    exposition: SnapshotExposition


class UsagePublisher:
    """Keeps the tracker, and publishes what the configured outputs read after each refresh."""

    def __init__(
        self,
        max_staleness_s: float,
        *,
        observations: bool,
        exposition: bool,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._tracker = UsageTracker(max_staleness_s)
        self._observations = observations
        self._exposition = exposition
        self._monotonic = monotonic
        self._wall = wall
        self.latest = UsagePublication(EMPTY_VIEW, None, _NOTHING)
        self._joined: tuple[SnapshotExposition | None, SnapshotExposition, SnapshotExposition] | None = None

    def refreshed(self, snapshot: Snapshot) -> None:
        """A successful refresh showed `snapshot` (for a 304: the snapshot in service) now."""
        view = self._tracker.observe(snapshot, self._monotonic(), self._wall())
        self.latest = UsagePublication(
            view,
            prepare_usage_observations(view) if self._observations else None,
            render_usage(view) if self._exposition else _NOTHING,
        )

    def observations(self) -> UsageObservations | None:
        return self.latest.observations

    def joined(self, snapshot_section: SnapshotExposition | None) -> SnapshotExposition:
        """The snapshot's section (None: none in service) followed by the counters; joined once per change."""
        usage = self.latest.exposition
        cached = self._joined
        if cached is not None and cached[0] is snapshot_section and cached[1] is usage:
            return cached[2]
        joined = usage if snapshot_section is None else join_sections(snapshot_section, usage)
        self._joined = (snapshot_section, usage, joined)
        return joined


def register_usage_counters(
    meter: Meter, observations: Callable[[], UsageObservations | None], *, stations: bool = True
) -> None:
    """The observable counters of the push readers; the network ones always, the station ones when `stations`."""

    def reading(
        select: Callable[[UsageObservations], Sequence[Observation]],
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            ready = observations()
            return select(ready) if ready is not None else ()

        return callback

    counters: list[tuple[MetricSpec, Callable[[UsageObservations], Sequence[Observation]]]] = []
    if stations:
        counters += [
            (STATION_CONNECTOR_TIME, lambda ready: ready.station_time),
            (STATION_CHARGING_SESSIONS, lambda ready: ready.station_sessions),
        ]
    counters += [
        (NETWORK_CONNECTOR_TIME, lambda ready: ready.network_time),
        (NETWORK_CHARGING_SESSIONS, lambda ready: ready.network_sessions),
    ]
    for spec, select in counters:
        meter.create_observable_counter(spec.name, [reading(select)], spec.unit, spec.description)
