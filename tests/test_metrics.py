"""The metric table, the prepared observations and overflow counting, in process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from otel_chargy import metrics
from otel_chargy.exposition import CountingPrometheusReader
from otel_chargy.generator import generate_network
from otel_chargy.holder import RefreshStatus
from otel_chargy.metrics import (
    METRICS,
    SNAPSHOT_METRICS,
    OverflowTally,
    ServedFeed,
    build_meter_provider,
    metrics_table_markdown,
    prepare_observations,
)
from otel_chargy.telemetry import build_resource

README = Path(__file__).parent.parent / "README.md"


def test_readme_metric_table_is_the_generated_one() -> None:
    readme = README.read_text()
    match = re.search(r"<!-- metrics-table:start -->\n(.*?)<!-- metrics-table:end -->", readme, re.S)
    assert match, "README.md lacks the metrics-table markers"
    assert match.group(1) == metrics_table_markdown(), "regenerate with: python -m otel_chargy.metrics"


def test_otel_names_follow_the_conventions() -> None:
    for spec in METRICS:
        assert not spec.name.endswith("_total") and "." in spec.name
        assert spec.unit in ("1", "s", "W") or re.fullmatch(r"\{[a-z]+\}", spec.unit)


def render(limit: int, monkeypatch: pytest.MonkeyPatch, collections: int = 1) -> dict[str, float]:
    """Overflow and its count, as a reader that collects the snapshot-sized metrics (a push reader) sees them."""
    monkeypatch.setattr(metrics, "SERIES_LIMIT", limit)
    observations = prepare_observations(generate_network(20))
    overflow = OverflowTally([spec.name for spec in SNAPSHOT_METRICS])
    reader = CountingPrometheusReader(overflow)
    served = ServedFeed(lambda: RefreshStatus(), lambda: (0, 0), lambda: observations)
    provider = build_meter_provider([reader], build_resource(), overflow, served)
    for _ in range(collections):
        text = generate_latest(reader.registry).decode()
    provider.shutdown()
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "chargy_metric_overflow_total" or "otel_metric_overflow" in sample.labels
    }


def test_overflow_is_counted_when_a_metric_passes_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    overflowing = render(10, monkeypatch, collections=2)
    assert overflowing["chargy_metric_overflow_total[('metric', 'chargy.connector.state')]"] > 0
    assert any("otel_metric_overflow" in key for key in overflowing)


def test_no_overflow_under_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    counted = render(metrics.SERIES_LIMIT, monkeypatch, collections=2)
    assert counted == {f"chargy_metric_overflow_total[('metric', '{spec.name}')]": 0 for spec in SNAPSHOT_METRICS}


def test_prepared_observations_cover_every_connector() -> None:
    network = generate_network(30)
    prepared = prepare_observations(network)
    assert len(prepared.connector_state) == 3 * network.connector_count
    assert len(prepared.connector_detailed_state) == len(prepared.connector_max_power) == network.connector_count
    assert len(prepared.station_info) == len(network.stations)
    assert sum(observation.value for observation in prepared.connector_state) == network.connector_count


def test_readme_lists_every_outcome_and_parse_issue_kind() -> None:
    from otel_chargy.outcome import Outcome
    from otel_chargy.parse import ISSUE_KINDS

    readme = README.read_text()
    for outcome in Outcome:
        assert f"| `{outcome.value}` |" in readme
    for kind, meaning in ISSUE_KINDS.items():
        assert f"| `{kind}` | {meaning} |" in readme
