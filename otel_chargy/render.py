"""A snapshot and its usage counters as Prometheus text and OpenMetrics, rendered once per refresh.

At 27,000 connectors the SDK's reader takes seconds and hundreds of MB per collection for the
~135,000 connector series, and their values only change when a refresh ends. So at refresh time
`render_snapshot` writes those series as text, once, and `render_usage` the usage counters;
`tests/test_exposition.py` and `tests/test_usage.py` check that the bytes are exactly what the
SDK's reader renders for the same snapshot and counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

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
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.usage import STATES, UsageTotals, UsageView

# prometheus_client's own number format (Go's), typed for mypy.
_number_text: Callable[[float], str] = floatToGoString
# The OpenMetrics unit of a snapshot metric, as the SDK's reader derives it from the OTel unit.
_OPENMETRICS_UNIT = {CONNECTOR_MAX_POWER: "watts", STATION_CONNECTOR_TIME: "seconds", NETWORK_CONNECTOR_TIME: "seconds"}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True, slots=True)
class SnapshotExposition:
    """The snapshot metrics of one snapshot, as Prometheus text and as OpenMetrics."""

    text: bytes
    openmetrics: bytes


def _family(spec: MetricSpec, samples: Iterator[str]) -> tuple[str, str]:
    """(text format, OpenMetrics) of one gauge family."""
    name = spec.prometheus_name
    # The text format escapes backslash and newline in HELP; OpenMetrics escapes double quotes too.
    text_help = spec.description.replace("\\", r"\\").replace("\n", r"\n")
    type_line = f"# TYPE {name} gauge\n"
    unit = _OPENMETRICS_UNIT.get(spec)
    unit_line = f"# UNIT {name} {unit}\n" if unit else ""
    body = "".join(samples)
    return (
        f"# HELP {name} {text_help}\n{type_line}{body}",
        f"# HELP {name} {_escape(spec.description)}\n{type_line}{unit_line}{body}",
    )


def render_snapshot(snapshot: Snapshot) -> SnapshotExposition:
    # Label names in sorted order, as prometheus_client writes them; each value escaped once.
    connectors = [
        (_escape(connector.name), _escape(device.name), connector.speed, _escape(station.name), connector)
        for station, device, connector in snapshot.connectors()
    ]
    stations = [(_escape(station.name), station) for station in snapshot.stations]

    def connector_states() -> Iterator[str]:
        name = CONNECTOR_STATE.prometheus_name
        for connector_name, device, speed, station, connector in connectors:
            rest = f'connector="{connector_name}",device="{device}",speed="{speed}",station="{station}"}}'
            for state in SimpleState:
                value = "1.0" if state is connector.state else "0.0"
                yield f'{name}{{chargy_connector_state="{state.value}",{rest} {value}\n'

    def detailed_states() -> Iterator[str]:
        name = CONNECTOR_DETAILED_STATE.prometheus_name
        for connector_name, device, speed, station, connector in connectors:
            state = _escape(connector.raw_state)
            yield (
                f'{name}{{connector="{connector_name}",device="{device}",speed="{speed}",'
                f'state="{state}",station="{station}"}} 1.0\n'
            )

    def max_powers() -> Iterator[str]:
        name = CONNECTOR_MAX_POWER.prometheus_name
        for connector_name, device, _, station, connector in connectors:
            value = _number_text(connector.max_power_kw * 1000.0)
            yield f'{name}{{connector="{connector_name}",device="{device}",station="{station}"}} {value}\n'

    def station_info() -> Iterator[str]:
        name = STATION_INFO.prometheus_name
        for station_name, station in stations:
            latitude, longitude = coordinate_label(station.latitude), coordinate_label(station.longitude)
            yield (
                f'{name}{{address="{_escape(station.address)}",latitude="{latitude}",'
                f'longitude="{longitude}",station="{station_name}"}} 1.0\n'
            )

    def station_connectors() -> Iterator[str]:
        name = STATION_CONNECTORS.prometheus_name
        for station_name, station in stations:
            for state, count in station.count_by_state().items():
                yield f'{name}{{chargy_connector_state="{state.value}",station="{station_name}"}} {count}.0\n'

    def network_connectors() -> Iterator[str]:
        name = NETWORK_CONNECTORS.prometheus_name
        for speed, counts in snapshot.count_by_speed_and_state().items():
            for state, count in counts.items():
                yield f'{name}{{chargy_connector_state="{state.value}",speed="{speed}"}} {count}.0\n'

    families = [
        _family(CONNECTOR_STATE, connector_states()),
        _family(CONNECTOR_DETAILED_STATE, detailed_states()),
        _family(CONNECTOR_MAX_POWER, max_powers()),
        _family(STATION_INFO, station_info()),
        _family(STATION_CONNECTORS, station_connectors()),
        _family(NETWORK_CONNECTORS, network_connectors()),
    ]
    return SnapshotExposition(
        "".join(text for text, _ in families).encode(), "".join(openmetrics for _, openmetrics in families).encode()
    )


def _counter_family(spec: MetricSpec, samples: Iterable[tuple[str, str, str]]) -> tuple[str, str]:
    """(text format, OpenMetrics) of one counter family; empty when it has no series, as the SDK's reader
    leaves it out. `samples` holds (sorted, escaped label text, value text, created text). As the SDK's
    reader writes them, except `_created`, which it cannot know: OpenMetrics only (the text format has
    no place for it)."""
    total = spec.prometheus_name
    base = total.removesuffix("_total")
    lines = [
        (f"{total}{{{labels}}} {value}\n", f"{base}_created{{{labels}}} {created}\n")
        for labels, value, created in samples
    ]
    if not lines:
        return "", ""
    text_help = spec.description.replace("\\", r"\\").replace("\n", r"\n")
    unit = _OPENMETRICS_UNIT.get(spec)
    unit_line = f"# UNIT {base} {unit}\n" if unit else ""
    return (
        f"# HELP {total} {text_help}\n# TYPE {total} counter\n" + "".join(line for line, _ in lines),
        f"# HELP {base} {_escape(spec.description)}\n# TYPE {base} counter\n{unit_line}"
        + "".join(line + created for line, created in lines),
    )


def render_usage(usage: UsageView) -> SnapshotExposition:
    """The usage counters, in the order of USAGE_METRICS; appended to the snapshot's families in a publication."""

    # Each number is written once for both formats.
    def time_samples(label: str, totals: Mapping[str, UsageTotals]) -> Iterator[tuple[str, str, str]]:
        for key, counted in totals.items():
            escaped = _escape(key)
            created = _number_text(counted.created)
            for state, seconds in zip(STATES, counted.seconds, strict=True):
                labels = f'chargy_connector_state="{state.value}",{label}="{escaped}"'
                yield labels, _number_text(seconds) if seconds else "0.0", created

    def session_samples(label: str, totals: Mapping[str, UsageTotals]) -> Iterator[tuple[str, str, str]]:
        for key, counted in totals.items():
            yield f'{label}="{_escape(key)}"', _number_text(counted.sessions), _number_text(counted.created)

    families = [
        _counter_family(STATION_CONNECTOR_TIME, time_samples("station", usage.stations)),
        _counter_family(STATION_CHARGING_SESSIONS, session_samples("station", usage.stations)),
        _counter_family(NETWORK_CONNECTOR_TIME, time_samples("speed", usage.network)),
        _counter_family(NETWORK_CHARGING_SESSIONS, session_samples("speed", usage.network)),
    ]
    return SnapshotExposition(
        "".join(text for text, _ in families).encode(), "".join(openmetrics for _, openmetrics in families).encode()
    )
