"""Every metric otel-chargy exports, defined once: name, unit, description, attributes; the docs'
table is generated from it (`python -m otel_chargy.catalog`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

_CACHED = "From the last successful refresh of the feed (cached: the feed is one file, refreshed every few minutes)."


class Kind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    """The OpenTelemetry name, as OTLP carries it."""
    prometheus_name: str
    """The name Prometheus shows: the compatibility contract."""
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()


CONNECTOR_STATE = MetricSpec(
    "chargy.connector.state",
    "chargy_connector_state",
    Kind.GAUGE,
    "{connector}",
    "1 for the connector's current simple state (available, charging, unavailable, or unknown: a status the "
    f"feed gives that no table maps, neither up nor down), 0 for the others. {_CACHED}",
    ("station", "device", "connector", "speed", "chargy_connector_state"),
)
CONNECTOR_DETAILED_STATE = MetricSpec(
    "chargy.connector.detailed_state_info",
    "chargy_connector_detailed_state_info",
    Kind.GAUGE,
    "{connector}",
    f"Always 1; `state` holds the connector's state as the feed gives it, upper-cased. {_CACHED}",
    ("station", "device", "connector", "speed", "state"),
)
CONNECTOR_MAX_POWER = MetricSpec(
    "chargy.connector.max_power",
    "chargy_connector_max_power_watts",
    Kind.GAUGE,
    "W",
    f"The connector's maximum charging power. {_CACHED}",
    ("station", "device", "connector"),
)
STATION_INFO = MetricSpec(
    "chargy.station.info",
    "chargy_station_info",
    Kind.GAUGE,
    "{station}",
    f"Always 1; the station's address and coordinates (WGS 84, empty when unknown). {_CACHED}",
    ("station", "address", "latitude", "longitude"),
)


def coordinate_label(degrees: float | None) -> str:
    """A latitude or longitude as the `chargy_station_info` labels show it: empty when unknown."""
    return "" if degrees is None else f"{degrees}"


STATION_CONNECTORS = MetricSpec(
    "chargy.station.connectors",
    "chargy_station_connectors",
    Kind.GAUGE,
    "{connector}",
    f"Connectors of the station in each simple state (available, charging, unavailable, unknown). {_CACHED}",
    ("station", "chargy_connector_state"),
)
NETWORK_CONNECTORS = MetricSpec(
    "chargy.network.connectors",
    "chargy_network_connectors",
    Kind.GAUGE,
    "{connector}",
    f"Connectors of the whole network by speed and simple state. {_CACHED}",
    ("speed", "chargy_connector_state"),
)
FEED_UP = MetricSpec(
    "chargy.feed.up",
    "chargy_feed_up",
    Kind.GAUGE,
    "{feed}",
    "1 when the latest refresh of the feed succeeded, else 0.",
)
FEED_LAST_SUCCESS = MetricSpec(
    "chargy.feed.last_success_timestamp",
    "chargy_feed_last_success_timestamp_seconds",
    Kind.GAUGE,
    "s",
    "Unix time of the last successful refresh of the feed.",
)
FEED_REFRESHES = MetricSpec(
    "chargy.feed.refreshes",
    "chargy_feed_refreshes_total",
    Kind.COUNTER,
    "{refresh}",
    "Refreshes of the feed, by how they ended.",
    ("outcome",),
)
FEED_REFRESH_DURATION = MetricSpec(
    "chargy.feed.refresh.duration",
    "chargy_feed_refresh_duration_seconds",
    Kind.HISTOGRAM,
    "s",
    "Time taken by a refresh: fetch, parse and publish.",
)
FEED_STATIONS = MetricSpec(
    "chargy.feed.stations",
    "chargy_feed_stations",
    Kind.GAUGE,
    "{station}",
    "Stations in the snapshot in service (0 when none is served).",
)
FEED_CONNECTORS = MetricSpec(
    "chargy.feed.connectors",
    "chargy_feed_connectors",
    Kind.GAUGE,
    "{connector}",
    "Connectors in the snapshot in service (0 when none is served).",
)
FEED_PARSE_ISSUES = MetricSpec(
    "chargy.feed.parse_issues",
    "chargy_feed_parse_issues_total",
    Kind.COUNTER,
    "{issue}",
    "Parts of the feed that were skipped or guessed while the rest was used, by kind.",
    ("kind",),
)
METRIC_OVERFLOW = MetricSpec(
    "chargy.metric.overflow",
    "chargy_metric_overflow_total",
    Kind.COUNTER,
    "{point}",
    "Data points the SDK folded into an otel_metric_overflow series because a metric passed its series limit; "
    "should stay 0.",
    ("metric",),
)

OTLP_EXPORTS = MetricSpec(
    "chargy.otlp.exports",
    "chargy_otlp_exports_total",
    Kind.COUNTER,
    "{export}",
    "OTLP exports by signal (metrics, traces, logs) and how they ended (success, failure); "
    "a failed export's data is lost. 0 for a signal that is not pushed over OTLP.",
    ("signal", "outcome"),
)

_USAGE = (
    "Counted at each successful refresh from the states the feed showed at the one before; a gap longer than "
    "--max-staleness counts in no state. Uptime is judged on the connector-seconds whose state is known: "
    "those in `unknown` count neither up nor down."
)
STATION_CONNECTOR_TIME = MetricSpec(
    "chargy.station.connector",
    "chargy_station_connector_seconds_total",
    Kind.COUNTER,
    "s",
    f"Connector-seconds the station's connectors spent in each simple state. {_USAGE}",
    ("station", "chargy_connector_state"),
)
STATION_CHARGING_SESSIONS = MetricSpec(
    "chargy.station.charging_sessions",
    "chargy_station_charging_sessions_total",
    Kind.COUNTER,
    "{session}",
    "Connectors of the station seen charging at a refresh and not charging at the one before "
    "(a session shorter than the refresh interval is not seen).",
    ("station",),
)
NETWORK_CONNECTOR_TIME = MetricSpec(
    "chargy.network.connector",
    "chargy_network_connector_seconds_total",
    Kind.COUNTER,
    "s",
    f"Connector-seconds the network's connectors spent in each simple state, by speed. {_USAGE}",
    ("speed", "chargy_connector_state"),
)
NETWORK_CHARGING_SESSIONS = MetricSpec(
    "chargy.network.charging_sessions",
    "chargy_network_charging_sessions_total",
    Kind.COUNTER,
    "{session}",
    "Connectors seen charging at a refresh and not charging at the one before, by speed "
    "(a session shorter than the refresh interval is not seen).",
    ("speed",),
)

USAGE_METRICS = (STATION_CONNECTOR_TIME, STATION_CHARGING_SESSIONS, NETWORK_CONNECTOR_TIME, NETWORK_CHARGING_SESSIONS)
"""The usage counters: kept across refreshes (usage.py), published with each snapshot."""

SNAPSHOT_METRICS = (
    CONNECTOR_STATE,
    CONNECTOR_DETAILED_STATE,
    CONNECTOR_MAX_POWER,
    STATION_INFO,
    STATION_CONNECTORS,
    NETWORK_CONNECTORS,
    *USAGE_METRICS,
)
"""The metrics read from the publication in service, in the order they are registered and rendered."""

METRICS: tuple[MetricSpec, ...] = (
    *SNAPSHOT_METRICS,
    FEED_UP,
    FEED_LAST_SUCCESS,
    FEED_REFRESHES,
    FEED_REFRESH_DURATION,
    FEED_STATIONS,
    FEED_CONNECTORS,
    FEED_PARSE_ISSUES,
    METRIC_OVERFLOW,
    OTLP_EXPORTS,
)


class Detail(StrEnum):
    """What OTLP pushes (--otlp.detail); each level holds the next one's metrics, and the feed health."""

    CONNECTOR = "connector"
    STATION = "station"
    NETWORK = "network"


DETAIL_METRICS: Mapping[Detail, tuple[MetricSpec, ...]] = {
    Detail.CONNECTOR: SNAPSHOT_METRICS,
    Detail.STATION: (STATION_INFO, STATION_CONNECTORS, NETWORK_CONNECTORS, *USAGE_METRICS),
    Detail.NETWORK: (NETWORK_CONNECTORS, NETWORK_CONNECTOR_TIME, NETWORK_CHARGING_SESSIONS),
}
"""The snapshot metrics pushed at each level."""

# The OTLP -> Prometheus translation of the Collector's Prometheus exporter (contrib 0.114.0):
# a unit becomes a suffix, `1` on a gauge `_ratio`, a `{...}` annotation nothing; counters gain `_total`.
_COLLECTOR_UNIT_SUFFIXES = {"s": "_seconds", "W": "_watts"}


def collector_prometheus_name(spec: MetricSpec) -> str:
    """The name the Collector's Prometheus exporter gives `spec` (before its namespace)."""
    name = spec.name.replace(".", "_")
    if spec.unit == "1" and spec.kind is Kind.GAUGE:
        name += "_ratio"
    name += _COLLECTOR_UNIT_SUFFIXES.get(spec.unit, "")
    return name + "_total" if spec.kind is Kind.COUNTER else name


def metrics_table_markdown() -> str:
    """The README's metric table, generated from METRICS."""
    lines = [
        "| Prometheus name | OpenTelemetry name | type | unit | labels / attributes | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for spec in METRICS:
        labels = ", ".join(f"`{name}`" for name in spec.attributes)
        lines.append(
            f"| `{spec.prometheus_name}` | `{spec.name}` | {spec.kind.value} | `{spec.unit}` | {labels} "
            f"| {spec.description} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(metrics_table_markdown(), end="")
