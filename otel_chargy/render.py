"""A snapshot and its usage counters as Prometheus text and OpenMetrics, rendered once per refresh.

At 27,000 connectors the SDK's reader takes seconds and hundreds of MB per collection for the
~135,000 connector series, and their values only change when a refresh ends. So at refresh time
`render_snapshot` writes those series, once, and `render_usage` the usage counters;
`tests/test_exposition.py` and `tests/test_usage.py` check that the bytes are exactly what the
SDK's reader renders for the same snapshot and counters.

Both formats write the same sample lines: each family keeps them once, beside the two formats' heads
(OpenMetrics has lines of its own only for `_created`). A station equal to one of the previous
rendering is not rendered again: its lines are copied from it, so a refresh costs in proportion to
the stations that changed.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType

from prometheus_client.utils import floatToGoString

from otel_chargy.catalog import (
    CONNECTOR_DETAILED_STATE,
    CONNECTOR_MAX_POWER,
    CONNECTOR_STATE,
    NETWORK_CHARGING_SESSIONS,
    NETWORK_CONNECTOR_TIME,
    NETWORK_CONNECTORS,
    STATION_CHARGING_SESSIONS,
    STATION_CONNECTOR_TIME,
    STATION_CONNECTORS,
    STATION_INFO,
    MetricSpec,
    coordinate_label,
)
from otel_chargy.model import SimpleState, Snapshot, Station
from otel_chargy.usage import STATES, UsageTotals, UsageView

# prometheus_client's own number format (Go's), typed for mypy.
_number_text: Callable[[float], str] = floatToGoString
# The OpenMetrics unit of a snapshot metric, as the SDK's reader derives it from the OTel unit.
_OPENMETRICS_UNIT = {CONNECTOR_MAX_POWER: "watts", STATION_CONNECTOR_TIME: "seconds", NETWORK_CONNECTOR_TIME: "seconds"}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True, slots=True)
class Family:
    """One family in both formats: the heads (HELP, TYPE, UNIT) differ, the sample lines are one copy
    unless OpenMetrics has lines of its own."""

    text_head: bytes
    openmetrics_head: bytes
    samples: bytes
    openmetrics_samples: bytes | None = None
    """The OpenMetrics sample lines when they differ from `samples` (a counter's `_created`)."""


@dataclass(frozen=True, slots=True)
class SnapshotExposition:
    """Families as Prometheus text and OpenMetrics: a snapshot's, or its usage counters'."""

    families: tuple[Family, ...]
    stations: tuple[Station, ...] = ()
    """The stations rendered, whose lines the next rendering reuses: station i's lines in the per-station
    family f are `families[f].samples[bounds[f][i] : bounds[f][i + 1]]`."""
    places: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """A station's name -> its place in `stations`."""
    bounds: tuple[array[int], ...] = ()

    def chunks(self, openmetrics: bool) -> list[bytes]:
        """The families in one format, as parts to write one after another."""
        parts: list[bytes] = []
        for family in self.families:
            if openmetrics:
                samples = family.samples if family.openmetrics_samples is None else family.openmetrics_samples
                parts += (family.openmetrics_head, samples)
            else:
                parts += (family.text_head, family.samples)
        return parts

    @property
    def text(self) -> bytes:
        return b"".join(self.chunks(openmetrics=False))

    @property
    def openmetrics(self) -> bytes:
        return b"".join(self.chunks(openmetrics=True))


NOTHING = SnapshotExposition(())


@cache
def _heads(spec: MetricSpec, kind: str = "gauge") -> tuple[bytes, bytes]:
    """(text format, OpenMetrics) HELP and TYPE lines of a family, and its OpenMetrics UNIT line."""
    # The text format escapes backslash and newline in HELP; OpenMetrics escapes double quotes too.
    text_help = spec.description.replace("\\", r"\\").replace("\n", r"\n")
    total = spec.prometheus_name
    # A counter is named with _total in the text format's HELP and TYPE, without it in OpenMetrics'.
    name = total.removesuffix("_total") if kind == "counter" else total
    unit = _OPENMETRICS_UNIT.get(spec)
    unit_line = f"# UNIT {name} {unit}\n" if unit else ""
    return (
        f"# HELP {total} {text_help}\n# TYPE {total} {kind}\n".encode(),
        f"# HELP {name} {_escape(spec.description)}\n# TYPE {name} {kind}\n{unit_line}".encode(),
    )


# The families with a part per station, in the order they are served; the network's follows them.
_PER_STATION = (CONNECTOR_STATE, CONNECTOR_DETAILED_STATE, CONNECTOR_MAX_POWER, STATION_INFO, STATION_CONNECTORS)


def _station_lines(station: Station) -> tuple[bytes, ...]:
    """The station's lines in each family of _PER_STATION. Label names in sorted order, as
    prometheus_client writes them; each value escaped once."""
    station_name = _escape(station.name)
    states, detailed, powers = [], [], []
    state_name = CONNECTOR_STATE.prometheus_name
    detailed_name = CONNECTOR_DETAILED_STATE.prometheus_name
    power_name = CONNECTOR_MAX_POWER.prometheus_name
    for device in station.devices:
        device_name = _escape(device.name)
        for connector in device.connectors:
            labels = f'connector="{_escape(connector.name)}",device="{device_name}"'
            speed = connector.speed
            rest = f'{labels},speed="{speed}",station="{station_name}"}}'
            for state in SimpleState:
                value = "1.0" if state is connector.state else "0.0"
                states.append(f'{state_name}{{chargy_connector_state="{state.value}",{rest} {value}\n')
            detailed.append(
                f'{detailed_name}{{{labels},speed="{speed}",state="{_escape(connector.raw_state)}",'
                f'station="{station_name}"}} 1.0\n'
            )
            power = _number_text(connector.max_power_kw * 1000.0)
            powers.append(f'{power_name}{{{labels},station="{station_name}"}} {power}\n')
    latitude, longitude = coordinate_label(station.latitude), coordinate_label(station.longitude)
    info = (
        f'{STATION_INFO.prometheus_name}{{address="{_escape(station.address)}",latitude="{latitude}",'
        f'longitude="{longitude}",station="{station_name}"}} 1.0\n'
    )
    connectors_name = STATION_CONNECTORS.prometheus_name
    counts = "".join(
        f'{connectors_name}{{chargy_connector_state="{state.value}",station="{station_name}"}} {count}.0\n'
        for state, count in station.count_by_state().items()
    )
    return (
        "".join(states).encode(),
        "".join(detailed).encode(),
        "".join(powers).encode(),
        info.encode(),
        counts.encode(),
    )


def render_snapshot(snapshot: Snapshot, previous: SnapshotExposition | None = None) -> SnapshotExposition:
    """The snapshot's families; the lines of a station equal to one in `previous` are copied from it,
    a run of such stations in one piece."""
    old_stations = previous.stations if previous is not None else ()
    old_places = previous.places if previous is not None else {}
    old_samples = [memoryview(family.samples) for family in previous.families] if previous is not None else []
    old_bounds = previous.bounds if previous is not None else ()
    parts: list[list[bytes | memoryview]] = [[] for _ in _PER_STATION]
    bounds = [array("q", [0]) for _ in _PER_STATION]
    run_start = run_end = 0  # the stations of `previous` at [run_start, run_end) are copied next

    def copy_run() -> None:
        if run_end == run_start:
            return
        for family_parts, samples, family_bounds in zip(parts, old_samples, old_bounds, strict=False):
            family_parts.append(samples[family_bounds[run_start] : family_bounds[run_end]])

    for station in snapshot.stations:
        old_place = old_places.get(station.name)
        if old_place is not None and old_stations[old_place] == station:
            if old_place != run_end:
                copy_run()
                run_start = old_place
            run_end = old_place + 1
            for family_bounds, family_old_bounds in zip(bounds, old_bounds, strict=True):
                family_bounds.append(
                    family_bounds[-1] + family_old_bounds[old_place + 1] - family_old_bounds[old_place]
                )
            continue
        copy_run()
        run_start = run_end = 0
        for family_parts, family_bounds, part in zip(parts, bounds, _station_lines(station), strict=True):
            family_parts.append(part)
            family_bounds.append(family_bounds[-1] + len(part))
    copy_run()
    network_name = NETWORK_CONNECTORS.prometheus_name
    network = "".join(
        f'{network_name}{{chargy_connector_state="{state.value}",speed="{speed}"}} {count}.0\n'
        for speed, counts in snapshot.count_by_speed_and_state().items()
        for state, count in counts.items()
    )
    families = [
        Family(*_heads(spec), b"".join(family_parts)) for spec, family_parts in zip(_PER_STATION, parts, strict=True)
    ]
    families.append(Family(*_heads(NETWORK_CONNECTORS), network.encode()))
    places = MappingProxyType({station.name: place for place, station in enumerate(snapshot.stations)})
    return SnapshotExposition(tuple(families), snapshot.stations, places, tuple(bounds))


def _counter_family(spec: MetricSpec, samples: Iterable[tuple[str, str, str]], created: bool) -> Family | None:
    """One counter family; None when it has no series, as the SDK's reader leaves it out. `samples` holds
    (sorted, escaped label text, value text, created text). As the SDK's reader writes them, except
    `_created`, which it cannot know: OpenMetrics only (the text format has no place for it), unless
    `created` is False. Each line is encoded as it is written: no text of the whole family is held twice."""
    total = spec.prometheus_name
    created_name = total.removesuffix("_total") + "_created"
    lines: list[bytes] = []
    created_lines: list[bytes] = []
    for labels, value, since in samples:
        lines.append(f"{total}{{{labels}}} {value}\n".encode())
        if created:
            created_lines.append(f"{created_name}{{{labels}}} {since}\n".encode())
    if not lines:
        return None
    text_head, openmetrics_head = _heads(spec, "counter")
    openmetrics_samples = (
        b"".join(itertools.chain.from_iterable(zip(lines, created_lines, strict=True))) if created else None
    )
    return Family(text_head, openmetrics_head, b"".join(lines), openmetrics_samples)


def render_usage(usage: UsageView, created: bool = True) -> SnapshotExposition:
    """The usage counters, in the order of USAGE_METRICS; served after the snapshot's families.
    `created`: with the OpenMetrics `_created` line of each series."""
    created_texts: dict[float, str] = {}  # most counters started at the same refresh

    def created_text(at: float) -> str:
        text = created_texts.get(at)
        if text is None:
            text = created_texts[at] = _number_text(at)
        return text

    # Each number is written once for both formats.
    def time_samples(label: str, totals: Mapping[str, UsageTotals]) -> Iterator[tuple[str, str, str]]:
        for key, counted in totals.items():
            escaped = _escape(key)
            since = created_text(counted.created)
            for state, seconds in zip(STATES, counted.seconds, strict=True):
                labels = f'chargy_connector_state="{state.value}",{label}="{escaped}"'
                yield labels, _number_text(seconds) if seconds else "0.0", since

    def session_samples(label: str, totals: Mapping[str, UsageTotals]) -> Iterator[tuple[str, str, str]]:
        for key, counted in totals.items():
            yield f'{label}="{_escape(key)}"', _number_text(counted.sessions), created_text(counted.created)

    families = [
        _counter_family(STATION_CONNECTOR_TIME, time_samples("station", usage.stations), created),
        _counter_family(STATION_CHARGING_SESSIONS, session_samples("station", usage.stations), created),
        _counter_family(NETWORK_CONNECTOR_TIME, time_samples("speed", usage.network), created),
        _counter_family(NETWORK_CHARGING_SESSIONS, session_samples("speed", usage.network), created),
    ]
    return SnapshotExposition(tuple(family for family in families if family is not None))
