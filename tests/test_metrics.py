"""The metric table, the snapshot observations, one publication per collection, overflow counting, in process."""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader, MetricsData
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from otel_chargy import catalog, metrics
from otel_chargy.catalog import METRICS, SNAPSHOT_METRICS, collector_prometheus_name, metrics_table_markdown
from otel_chargy.exposition import CountingPrometheusReader
from otel_chargy.generator import generate_network, relabel
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.observe import observe_snapshot
from otel_chargy.parse import DEFAULT_MAX_CONNECTORS
from otel_chargy.telemetry import build_resource, wire_metrics
from tests.otlp_receiver import KeepingReader

README = Path(__file__).parent.parent / "README.md"
FAULTS_PAGE = Path(__file__).parent.parent / "docs" / "faults.md"


def test_readme_metric_table_is_the_generated_one() -> None:
    readme = README.read_text()
    match = re.search(r"<!-- metrics-table:start -->\n(.*?)<!-- metrics-table:end -->", readme, re.S)
    assert match, "README.md lacks the metrics-table markers"
    assert match.group(1) == metrics_table_markdown(), "regenerate with: python -m otel_chargy.catalog"


def test_otel_names_follow_the_conventions() -> None:
    for spec in METRICS:
        assert not spec.name.endswith("_total") and "." in spec.name
        assert spec.unit in ("s", "W") or re.fullmatch(r"\{[a-z]+\}", spec.unit)


# The Collector's published translation examples (opentelemetry-collector-contrib,
# pkg/translator/prometheus/normalize_name_test.go, Apache-2.0) for the units the catalog uses:
# (OTel name, unit, kind) -> the name its Prometheus exporter shows. The last three have no example
# there and follow its rules in normalize_name.go: unitMap gives "W" "watts" and "s" "seconds" (as "Hz"
# "hertz", whose example is hw_cpu_speed_limit_hertz), and only a monotonic Sum gets `_total`.
COLLECTOR_EXAMPLES: list[tuple[str, str, catalog.Kind, str]] = [
    ("system.network.dropped", "{packets}", catalog.Kind.GAUGE, "system_network_dropped"),
    ("system.network.dropped", "{packets}", catalog.Kind.COUNTER, "system_network_dropped_total"),
    ("hw.gpu.memory.utilization", "1", catalog.Kind.GAUGE, "hw_gpu_memory_utilization_ratio"),
    ("objects", "1", catalog.Kind.COUNTER, "objects_total"),
    ("system.disk.operation_time", "s", catalog.Kind.COUNTER, "system_disk_operation_time_seconds_total"),
    ("active_directory.ds.replication.sync.object.pending", "{objects}", catalog.Kind.COUNTER,
     "active_directory_ds_replication_sync_object_pending_total"),
    ("bigip.virtual_server.request.count", "{requests}", catalog.Kind.COUNTER,
     "bigip_virtual_server_request_count_total"),
    ("test.metric.no_unit", "", catalog.Kind.GAUGE, "test_metric_no_unit"),
    ("system.power.usage", "W", catalog.Kind.GAUGE, "system_power_usage_watts"),
    ("process.start_time", "s", catalog.Kind.GAUGE, "process_start_time_seconds"),
    ("http.server.duration", "s", catalog.Kind.HISTOGRAM, "http_server_duration_seconds"),
]  # fmt: skip


def unit_class(unit: str) -> str:
    """Units the Collector treats alike: every `{annotation}` adds nothing."""
    return "{annotation}" if unit.startswith("{") else unit


def test_the_collector_gives_the_names_prometheus_shows() -> None:
    """Through the Collector's Prometheus exporter, OTLP lands under the names of /metrics: the product's
    rule is checked against the Collector's own examples for every unit and kind the catalog uses, then
    applied to the catalog."""
    examples = {(unit_class(unit), kind) for _, unit, kind, _ in COLLECTOR_EXAMPLES}
    assert {(unit_class(spec.unit), spec.kind) for spec in METRICS} <= examples
    for name, unit, kind, shown in COLLECTOR_EXAMPLES:
        assert collector_prometheus_name(catalog.MetricSpec(name, "", kind, unit, "")) == shown
    for spec in METRICS:
        assert collector_prometheus_name(spec) == spec.prometheus_name


def render(max_connectors: int, collections: int = 1) -> dict[str, float]:
    """Overflow and its count, as a reader that collects the snapshot metrics (a push reader) sees them."""
    reader = CountingPrometheusReader()
    wiring = wire_metrics(
        prometheus=None,
        push_readers=[reader],
        resource=build_resource(),
        max_staleness_s=600,
        max_connectors=max_connectors,
    )
    wiring.holder.publish(generate_network(20), fetched_at=0)
    for _ in range(collections):
        text = generate_latest(reader.registry).decode()
    for provider in wiring.providers:
        provider.shutdown()
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "chargy_metric_overflow_total" or "otel_metric_overflow" in sample.labels
    }


def test_overflow_is_counted_when_a_metric_passes_its_limit() -> None:
    # A network of about 54 connectors against a limit made for 2: room for the overflow counter's own
    # series (one per snapshot metric), not for the connectors'.
    assert metrics.series_limit(2) >= len(SNAPSHOT_METRICS)
    overflowing = render(2, collections=2)
    assert overflowing["chargy_metric_overflow_total[('metric', 'chargy.connector.state')]"] > 0
    assert any("otel_metric_overflow" in key for key in overflowing)


def test_no_overflow_under_the_limit() -> None:
    counted = render(DEFAULT_MAX_CONNECTORS, collections=2)
    assert counted == {f"chargy_metric_overflow_total[('metric', '{spec.name}')]": 0 for spec in SNAPSHOT_METRICS}


def overflowing_under_renames(network: Snapshot, max_connectors: int) -> set[str]:
    """The metrics with an overflow point while every connector is renamed at each refresh, so that the
    previous collection's sets are still held when the new ones arrive."""
    reader = KeepingReader()
    wiring = wire_metrics(
        prometheus=None,
        push_readers=[reader],
        resource=build_resource(),
        max_staleness_s=600,
        max_connectors=max_connectors,
    )
    overflowing = set()
    for generation in range(1, 4):
        wiring.holder.publish(relabel(network, generation, fraction=1.0), fetched_at=generation)
        reader.collect()
        assert reader.metrics_data is not None
        overflowing |= {
            name for name, attributes, _ in points(reader.metrics_data) if "otel.metric.overflow" in attributes
        }
    return overflowing


def test_the_series_limit_is_the_largest_network_allowed() -> None:
    """The widest family, a connector's state set, at --max-connectors, twice: one collection's sets and
    the previous one's until they are released. One connector fewer allowed, and it overflows."""
    assert metrics.series_limit(40_000) == 2 * 40_000 * len(SimpleState)
    network = generate_network(40)
    assert overflowing_under_renames(network, network.connector_count) == set()
    assert overflowing_under_renames(network, network.connector_count - 1) == {"chargy.connector.state"}


def held_by_metric(reader: MetricReader) -> Counter[str]:
    return Counter({name: count for name, count in metrics.held_attribute_sets_by_metric(reader).items() if count})


def exported_by_metric(metrics_data: MetricsData) -> Counter[str]:
    return Counter(name for name, _, _ in points(metrics_data))


def test_the_sdk_itself_keeps_every_attribute_set_an_observable_gauge_showed() -> None:
    """Why PushCollections releases attribute sets (opentelemetry-sdk 1.45.2): once an upgrade releases them itself,
    this fails, and the hook can go."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    shown: list[str] = []
    provider.get_meter("test").create_observable_gauge(
        "shown", [lambda _: [Observation(1, {"label": value}) for value in shown]]
    )
    for values in (["a", "b"], ["c"], ["d"]):
        shown[:] = values
        collected = reader.get_metrics_data()
        assert collected is not None and exported_by_metric(collected) == {"shown": len(values)}
    assert held_by_metric(reader) == {"shown": 4}
    provider.shutdown()


def test_attribute_sets_a_collection_did_not_observe_are_released() -> None:
    """A feed that renames stations, issues new ids, changes powers and raw states at every refresh: what
    the SDK holds after a collection is what that collection exported, metric by metric."""
    reader = KeepingReader()
    plain = InMemoryMetricReader()
    wiring = wire_metrics(prometheus=None, push_readers=[reader, plain], resource=build_resource(), max_staleness_s=600)
    base = generate_network(40)
    for generation in range(1, 6):
        wiring.holder.publish(relabel(base, generation), fetched_at=generation)
        reader.collect()
        plain.collect()
        assert reader.metrics_data is not None
        assert held_by_metric(reader) == exported_by_metric(reader.metrics_data)
    # The same provider's plain reader, without the hook, kept every one.
    assert sum(held_by_metric(plain).values()) > 2 * sum(held_by_metric(reader).values())


def test_the_cyclic_gc_pauses_while_the_sdk_collects_and_is_given_back_as_found() -> None:
    reader = KeepingReader()
    provider = MeterProvider(metric_readers=[reader])
    seen: list[bool] = []

    def observe(_: CallbackOptions) -> list[Observation]:
        seen.append(gc.isenabled())
        return [Observation(1)]

    provider.get_meter("test").create_observable_gauge("gauge", [observe])
    assert gc.isenabled()
    reader.collect()
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        reader.collect()
        assert not gc.isenabled()
    finally:
        gc.enable()
    provider.shutdown()


def test_counters_observed_at_every_collection_keep_their_start() -> None:
    """Releasing only what a collection did not observe: a usage counter seen at every collection keeps its
    start time (a new start would tell a backend the counter was reset)."""
    reader = KeepingReader()
    wiring = wire_metrics(prometheus=None, push_readers=[reader], resource=build_resource(), max_staleness_s=600)
    base = generate_network(20)
    starts: list[dict[str, int]] = []
    for generation in range(1, 4):
        wiring.holder.publish(relabel(base, generation, fraction=0.0), fetched_at=generation)
        reader.collect()
        assert reader.metrics_data is not None
        starts.append(
            {
                str(sorted(point.attributes.items())): point.start_time_unix_nano  # type: ignore[union-attr]
                for resource_metrics in reader.metrics_data.resource_metrics
                for scope_metrics in resource_metrics.scope_metrics
                for metric in scope_metrics.metrics
                if metric.name == "chargy.station.connector"
                for point in metric.data.data_points
            }
        )
    assert starts[0] and starts[0] == starts[1] == starts[2]


def test_snapshot_observations_cover_every_connector() -> None:
    network = generate_network(30)
    observed = observe_snapshot(network, SNAPSHOT_METRICS)
    states = observed[catalog.CONNECTOR_STATE]
    assert len(states) == len(SimpleState) * network.connector_count
    assert len(observed[catalog.CONNECTOR_DETAILED_STATE]) == network.connector_count
    assert len(observed[catalog.CONNECTOR_MAX_POWER]) == network.connector_count
    assert len(observed[catalog.STATION_INFO]) == len(network.stations)
    assert sum(observation.value for observation in states) == network.connector_count
    assert len(observed[catalog.STATION_CONNECTORS]) == len(SimpleState) * len(network.stations)
    for station in network.stations:
        counted = {
            o.attributes["chargy_connector_state"]: o.value
            for o in observed[catalog.STATION_CONNECTORS]
            if o.attributes and o.attributes["station"] == station.name
        }
        expected = {state.value: 0 for state in SimpleState}
        for device in station.devices:
            for connector in device.connectors:
                expected[connector.state.value] += 1
        assert counted == expected
    totals = dict.fromkeys(SimpleState, 0)
    for observation in observed[catalog.NETWORK_CONNECTORS]:
        assert observation.attributes is not None
        totals[SimpleState(str(observation.attributes["chargy_connector_state"]))] += int(observation.value)
    assert totals == network.count_by_state()


def test_only_the_metrics_asked_for_are_observed() -> None:
    assert list(observe_snapshot(generate_network(5), (catalog.NETWORK_CONNECTORS,))) == [catalog.NETWORK_CONNECTORS]


def points(metrics_data: MetricsData) -> Iterator[tuple[str, dict[str, str], float]]:
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    yield metric.name, dict(point.attributes or {}), getattr(point, "value", 0)  # type: ignore[arg-type]


def test_a_push_collection_shows_one_publication(refresh_after_every_read: None) -> None:
    reader = InMemoryMetricReader()
    wiring = wire_metrics(prometheus=None, push_readers=[reader], resource=build_resource(), max_staleness_s=600)
    wiring.holder.publish(generate_network(10), fetched_at=0)
    for _ in range(4):
        by_metric: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, attributes, value in points(reader.get_metrics_data()):  # type: ignore[arg-type]
            by_metric.setdefault(name, []).append((attributes, value))
        connectors = len(by_metric["chargy.connector.state"]) / len(SimpleState)
        assert sum(value for _, value in by_metric["chargy.connector.state"]) == connectors
        assert len(by_metric["chargy.connector.detailed_state_info"]) == connectors
        assert sum(value for _, value in by_metric["chargy.station.connectors"]) == connectors
        assert sum(value for _, value in by_metric["chargy.network.connectors"]) == connectors
        assert by_metric["chargy.feed.connectors"] == [({}, connectors)]
        assert by_metric["chargy.feed.stations"] == [({}, len(by_metric["chargy.station.info"]))]


def test_the_faults_page_lists_every_outcome_and_parse_issue_kind() -> None:
    from otel_chargy.outcome import Outcome
    from otel_chargy.parse import ISSUE_KINDS

    page = FAULTS_PAGE.read_text()
    for outcome in Outcome:
        assert f"| `{outcome.value}` |" in page
    for kind, meaning in ISSUE_KINDS.items():
        assert f"| `{kind}` | {meaning} |" in page
