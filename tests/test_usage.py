"""The usage counters: driven through known sequences of snapshots and times, compared with each
sequence's own answer; rendered as the SDK's reader renders them; through the real feed server,
Refresher and service."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from otel_chargy.catalog import (
    CONNECTOR_STATE,
    DETAIL_METRICS,
    NETWORK_CONNECTOR_TIME,
    SNAPSHOT_METRICS,
    USAGE_METRICS,
    Detail,
)
from otel_chargy.config import ConfigError, load_config
from otel_chargy.exposition import CountingPrometheusReader
from otel_chargy.generator import generate_network, move_states, relabel, render_kml
from otel_chargy.holder import SnapshotHolder
from otel_chargy.metrics import OverflowTally, ServedFeed, build_meter_provider
from otel_chargy.model import Connector, Device, SimpleState, Snapshot, Station
from otel_chargy.outcome import Outcome
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor
from otel_chargy.render import render_usage
from otel_chargy.service import Service
from otel_chargy.telemetry import build_resource, wire_metrics
from otel_chargy.usage import STATES, UsageTracker, UsageView
from tests.feedserver import FeedResponse, FeedServer
from tests.rig import Rig
from tests.service import free_port, wait_until

MAX_STALENESS_S = 900.0
WALL_OFFSET_S = 1_764_000_000.0  # the injected Unix time is the injected monotonic time plus this


def parse_openmetrics(text: str) -> list[Metric]:
    """Strict: raises on anything that is not OpenMetrics."""
    return list(openmetrics_parser.text_string_to_metric_families(text))  # type: ignore[no-untyped-call]


def answer(
    refreshes: Sequence[tuple[float, Snapshot]], max_staleness_s: float = MAX_STALENESS_S
) -> dict[str, dict[tuple[str, str], float]]:
    """The issue's definition, connector by connector: each connector seen at t' adds t - t' to the
    state it had at t' (unless t - t' is over the maximum staleness); a connector charging at t
    that was seen not charging at t' began a session. (No station leaves in these sequences.)"""
    result: dict[str, dict[tuple[str, str], float]] = {
        kind: defaultdict(float) for kind in ("station_time", "station_sessions", "network_time", "network_sessions")
    }
    for (before_at, before), (at, after) in itertools.pairwise(refreshes):
        for station, _, connector in before.connectors():
            if at - before_at <= max_staleness_s:
                result["station_time"][station.name, connector.state.value] += at - before_at
                result["network_time"][connector.speed, connector.state.value] += at - before_at
        seen = {(s.name, d.name, c.name): c.state for s, d, c in before.connectors()}
        for station, device, connector in after.connectors():
            was = seen.get((station.name, device.name, connector.name))
            if connector.state is SimpleState.CHARGING and was not in (None, SimpleState.CHARGING):
                result["station_sessions"][station.name, ""] += 1
                result["network_sessions"][connector.speed, ""] += 1
    return result


def counted(view: UsageView) -> dict[str, dict[tuple[str, str], float]]:
    """The view in the shape of `answer`, zeros left out."""
    result: dict[str, dict[tuple[str, str], float]] = {}
    for level, totals in (("station", view.stations), ("network", view.network)):
        result[f"{level}_time"] = {
            (key, state.value): seconds
            for key, usage in totals.items()
            for state, seconds in zip(STATES, usage.seconds, strict=True)
            if seconds
        }
        result[f"{level}_sessions"] = {(key, ""): usage.sessions for key, usage in totals.items() if usage.sessions}
    return result


def without_zeros(expected: dict[str, dict[tuple[str, str], float]]) -> dict[str, dict[tuple[str, str], float]]:
    return {kind: {key: value for key, value in values.items() if value} for kind, values in expected.items()}


def moving_sequence(placemarks: int, seed: int) -> list[tuple[float, Snapshot]]:
    """Refreshes at irregular times; some are 304s (the same snapshot again), many states move between others."""
    rng = random.Random(seed)
    network = generate_network(placemarks, seed=seed)
    refreshes = [(1000.0, network)]
    for step, elapsed_s in enumerate((300, 300, 17.5, 600, 299.25, 900, 300, 1, 450, 300, 300, 120)):
        if step % 4 != 3:  # every fourth refresh: not modified
            network = move_states(network, rng, fraction=0.4)
        refreshes.append((refreshes[-1][0] + elapsed_s, network))
    return refreshes


def observe_all(tracker: UsageTracker, refreshes: Sequence[tuple[float, Snapshot]]) -> UsageView:
    for at, snapshot in refreshes:
        view = tracker.observe(snapshot, at, at + WALL_OFFSET_S)
    return view


def test_station_counters_are_the_sequence_answer_and_network_counters_their_sums() -> None:
    refreshes = moving_sequence(60, seed=5)
    tracker = UsageTracker(MAX_STALENESS_S)
    for count in range(1, len(refreshes) + 1):
        view = observe_all(tracker, refreshes[count - 1 : count])
        assert counted(view) == without_zeros(answer(refreshes[:count])), f"after refresh {count}"
    assert sum(view.stations[name].sessions for name in view.stations) > 10  # the sequence has sessions
    # Every station is exported from its first refresh, at zero where nothing happened yet.
    assert set(view.stations) == {station.name for station in refreshes[0][1].stations}
    for index, state in enumerate(STATES):
        by_stations = sum(usage.seconds[index] for usage in view.stations.values())
        assert by_stations == sum(usage.seconds[index] for usage in view.network.values()), state
    assert sum(u.sessions for u in view.stations.values()) == sum(u.sessions for u in view.network.values())
    total_s = sum(sum(usage.seconds) for usage in view.stations.values())
    assert total_s == (refreshes[-1][0] - refreshes[0][0]) * refreshes[0][1].connector_count


def test_an_outage_longer_than_the_maximum_staleness_adds_to_no_state() -> None:
    before, after = generate_network(20, seed=1), move_states(generate_network(20, seed=1), random.Random(2), 0.5)
    tracker = UsageTracker(MAX_STALENESS_S)
    tracker.observe(before, 0.0, WALL_OFFSET_S)
    counted_before = tracker.observe(before, 300.0, 300.0 + WALL_OFFSET_S)
    across = tracker.observe(after, 300.0 + MAX_STALENESS_S + 0.5, 1500.0 + WALL_OFFSET_S)
    for name, usage in across.stations.items():
        assert usage.seconds == counted_before.stations[name].seconds
    assert [u.seconds for u in across.network.values()] == [u.seconds for u in counted_before.network.values()]
    # A session that began during the outage is still one: the connector was seen not charging, then charging.
    assert counted(across)["station_sessions"] == without_zeros(answer([(0, before), (1, after)]))["station_sessions"]
    # Exactly the maximum staleness is not an outage yet.
    tracker.observe(after, 300.0 + 2 * MAX_STALENESS_S + 0.5, 0)
    assert sum(sum(u.seconds) for u in tracker.view.network.values()) == (300.0 + MAX_STALENESS_S) * (
        before.connector_count
    )


def station(name: str, *states: SimpleState, speed_kw: float = 22.0) -> Station:
    connectors = tuple(
        Connector(f"{name}1 - {position}", position, speed_kw, state.name, state)
        for position, state in enumerate(states, start=1)
    )
    return Station(name, "", None, None, (Device(f"{name}1", connectors),))


def test_unknown_time_is_counted_apart_and_begins_no_session() -> None:
    available, charging, _, unknown = SimpleState
    tracker = UsageTracker(MAX_STALENESS_S)
    tracker.observe(Snapshot((station("U", unknown, available),)), 0, WALL_OFFSET_S)
    view = tracker.observe(Snapshot((station("U", charging, charging),)), 300, 300 + WALL_OFFSET_S)
    assert view.stations["U"].seconds == (300, 0, 0, 300)
    assert view.stations["U"].sessions == 1  # the connector that was available; not the one that was unknown


def test_a_station_that_leaves_and_returns() -> None:
    available, charging, unavailable, _ = SimpleState
    a = station("A", available, charging)
    tracker = UsageTracker(MAX_STALENESS_S)

    def at(t: float, *stations: Station) -> UsageView:
        return tracker.observe(Snapshot(stations), t, t + WALL_OFFSET_S)

    at(0, a, station("B", unavailable, speed_kw=150))
    view = at(300, a)  # B left: its connector seen at 0 still counts to 300
    assert view.stations["B"].seconds == (0, 0, 300, 0) and view.network["150"].seconds == (0, 0, 300, 0)
    view = at(600, a, station("B", charging, speed_kw=150))  # back within the staleness: not seen at 300
    assert view.stations["B"].seconds == (0, 0, 300, 0) and view.stations["B"].sessions == 0
    assert view.stations["B"].created == WALL_OFFSET_S
    for t in (900, 1200, 1500):
        view = at(t, a)
    assert "B" in view.stations and "150" in view.network  # last seen at 600: 900 s ago, not more
    view = at(1501, a)
    assert "B" not in view.stations and "150" not in view.network  # no connector of 150 kW since 600
    assert view.stations["A"].seconds == (1501, 1501, 0, 0)
    view = at(1800, a, station("B", charging, speed_kw=150))  # a new start: zeros, a new _created, no session
    assert view.stations["B"] == replace(view.stations["B"], seconds=(0, 0, 0, 0), sessions=0)
    assert view.stations["B"].created == 1800 + WALL_OFFSET_S
    at(2100, a, station("B", available, speed_kw=150))
    view = at(2400, a, station("B", charging, speed_kw=150))
    assert view.stations["B"].seconds == (300, 300, 0, 0) and view.stations["B"].sessions == 1
    assert view.network["150"].seconds == (300, 300, 0, 0) and view.network["150"].sessions == 1  # also since 1800
    assert view.network["150"].created == 1800 + WALL_OFFSET_S
    assert view.network["22"].created == WALL_OFFSET_S and view.stations["A"].sessions == 0


def test_a_feed_that_changes_names_and_powers_at_every_refresh_holds_only_the_recent_ones() -> None:
    """New station names and new powers (so new speeds) at every refresh: the counters hold those seen
    within the maximum staleness, not every one the feed ever showed."""
    base = generate_network(30, seed=3)
    tracker = UsageTracker(MAX_STALENESS_S)
    shown: list[tuple[float, Snapshot]] = []
    for generation in range(1, 31):
        t = generation * 300.0
        shown.append((t, relabel(base, generation)))
        view = tracker.observe(shown[-1][1], t, t + WALL_OFFSET_S)
        recent = [network for seen_at, network in shown if t - seen_at <= MAX_STALENESS_S]
        assert set(view.stations) == {station.name for network in recent for station in network.stations}
        assert set(view.network) == {connector.speed for network in recent for _, _, connector in network.connectors()}
    assert len(view.network) < len(
        {connector.speed for _, network in shown for _, _, connector in network.connectors()}
    )


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + WALL_OFFSET_S


def awkward_sequence() -> list[Snapshot]:
    odd = Station('Gare "Centrale"\\\nX', "", None, None, generate_network(1).stations[0].devices)
    first = Snapshot((odd, *generate_network(30, seed=4).stations))
    return [first, move_states(first, random.Random(1), 0.5)]


def publish_awkward(holder: SnapshotHolder, clock: Clock) -> None:
    """Two refreshes 299.75 s apart, the first at the Unix time 1,764,000,123.25."""
    first, second = awkward_sequence()
    holder.publish(first, 1_764_000_123.25)
    clock.now += 299.75
    holder.publish(second, 1_764_000_423.0)


def sdk_rendering(holder: SnapshotHolder) -> tuple[str, str]:
    """What the SDK's Prometheus reader renders for observable counters reading the holder: (text, OpenMetrics)."""
    reader = CountingPrometheusReader()
    provider = build_meter_provider(
        [reader], build_resource(), ServedFeed(holder.served), OverflowTally([]), USAGE_METRICS
    )
    text, openmetrics = generate_latest(reader.registry).decode(), generate_openmetrics(reader.registry).decode()  # type: ignore[no-untyped-call]
    provider.shutdown()
    names = {spec.prometheus_name.removesuffix("_total") for spec in USAGE_METRICS}

    def ours(exposition: str) -> str:
        blocks = ["# HELP " + block for block in exposition.removesuffix("# EOF\n").split("# HELP ")[1:]]
        return "".join(block for block in blocks if block.split(" ", 3)[2].removesuffix("_total") in names)

    return ours(text), ours(openmetrics)


def test_rendered_counters_are_what_the_sdk_reader_renders_with_created_in_openmetrics() -> None:
    clock = Clock()
    holder = SnapshotHolder(Outputs(observed=USAGE_METRICS, exposition=True), MAX_STALENESS_S, clock.monotonic)
    publish_awkward(holder, clock)
    publication = holder.latest
    assert publication is not None and publication.exposition is not None
    rendered = render_usage(publication.usage)
    text, openmetrics = sdk_rendering(holder)
    assert rendered.text.decode() == text
    ours = rendered.openmetrics.decode()
    assert "".join(line + "\n" for line in ours.splitlines() if "_created{" not in line) == openmetrics
    # The publication serves them after the snapshot's families.
    assert publication.counters == rendered
    # Strict OpenMetrics: each series with its _created, the Unix time its counters started.
    families = {family.name: family for family in parse_openmetrics(ours + "# EOF\n")}
    assert set(families) == {
        "chargy_station_connector_seconds",
        "chargy_station_charging_sessions",
        "chargy_network_connector_seconds",
        "chargy_network_charging_sessions",
    }
    stations = families["chargy_station_charging_sessions"].samples
    created = {sample.labels["station"]: sample.value for sample in stations if sample.name.endswith("_created")}
    assert created == {name: usage.created for name, usage in publication.usage.stations.items()}
    assert created['Gare "Centrale"\\\nX'] == 1_764_000_123.25


def metrics_answers(environ: dict[str, str]) -> tuple[str, str]:
    """/metrics as OpenMetrics and as text, the service wired with the configuration `environ` gives."""
    clock = Clock()
    wiring = wire_metrics(
        prometheus=CountingPrometheusReader(),
        push_readers=(),
        resource=RESOURCE,
        max_staleness_s=MAX_STALENESS_S,
        monotonic=clock.monotonic,
        created_series=load_config([], environ).created_series,
    )
    publish_awkward(wiring.holder, clock)
    assert wiring.exposition is not None
    answers = tuple(
        b"".join(wiring.exposition.render(accept, None).chunks).decode()
        for accept in ("application/openmetrics-text; version=1.0.0", "text/plain")
    )
    for provider in wiring.providers:
        provider.shutdown()
    return answers[0], answers[1]


RESOURCE = build_resource()  # one service.instance.id for every answer compared


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "t"])
def test_disabling_created_series_removes_every_created_line_and_nothing_else(value: str) -> None:
    with_created, text = metrics_answers({})
    without_created, text_without = metrics_answers({"PROMETHEUS_DISABLE_CREATED_SERIES": value})
    created_lines = [line for line in with_created.splitlines(keepends=True) if "_created{" in line]
    assert len(created_lines) > 30  # one a station and one a speed, for each counter family
    assert without_created == "".join(
        line for line in with_created.splitlines(keepends=True) if line not in created_lines
    )
    assert text_without == text  # the text format has no _created lines either way
    families = {family.name: family for family in parse_openmetrics(without_created)}
    assert len(families) == len(parse_openmetrics(with_created))
    samples = [sample for family in families.values() for sample in family.samples]
    assert samples and not any(sample.name.endswith("_created") for sample in samples)
    assert {family.name for family in text_string_to_metric_families(text_without)} >= {
        spec.prometheus_name.removesuffix("_total") for spec in USAGE_METRICS
    }


@pytest.mark.parametrize("value", ["false", "0", "f", ""])
def test_created_series_stay_unless_disabled(value: str) -> None:
    assert metrics_answers({"PROMETHEUS_DISABLE_CREATED_SERIES": value})[0] == metrics_answers({})[0]


def test_a_value_prometheus_client_would_read_as_false_silently_is_refused() -> None:
    with pytest.raises(ConfigError, match="PROMETHEUS_DISABLE_CREATED_SERIES 'yes'"):
        load_config([], {"PROMETHEUS_DISABLE_CREATED_SERIES": "yes"})


def test_a_publication_carries_the_counters_and_a_304_counts_again_without_building_the_snapshot_anew() -> None:
    clock = Clock()
    holder = SnapshotHolder(Outputs(observed=SNAPSHOT_METRICS, exposition=True), MAX_STALENESS_S, clock.monotonic)
    publish_awkward(holder, clock)
    published = holder.latest
    clock.now += 300
    holder.confirm(clock.wall())
    confirmed = holder.latest
    assert published is not None and confirmed is not None
    assert published.exposition is not None and confirmed.exposition is not None
    snapshot = confirmed.snapshot
    assert snapshot is published.snapshot
    assert confirmed.observations[CONNECTOR_STATE] is published.observations[CONNECTOR_STATE]
    total_s = sum(sum(usage.seconds) for usage in confirmed.usage.network.values())
    assert total_s == (299.75 + 300) * snapshot.connector_count
    assert sum(o.value for o in confirmed.observations[NETWORK_CONNECTOR_TIME]) == total_s
    assert confirmed.exposition is published.exposition
    assert confirmed.counters == render_usage(confirmed.usage) != published.counters


@pytest.mark.parametrize("detail", list(Detail))
def test_push_readers_get_the_counters_of_their_detail_level(detail: Detail) -> None:
    reader = InMemoryMetricReader()
    clock = Clock()
    wiring = wire_metrics(
        prometheus=None,
        push_readers=[reader],
        resource=build_resource(),
        max_staleness_s=MAX_STALENESS_S,
        detail=detail,
        monotonic=clock.monotonic,
    )
    publish_awkward(wiring.holder, clock)
    data = reader.get_metrics_data()
    for provider in wiring.providers:
        provider.shutdown()
    assert data is not None
    points: dict[str, list[Any]] = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    usage_names = {spec.name for spec in USAGE_METRICS}
    assert {name for name in points if name in usage_names} == {
        spec.name for spec in DETAIL_METRICS[detail] if spec in USAGE_METRICS
    }
    publication = wiring.holder.latest
    assert publication is not None
    view = publication.usage
    assert {p.attributes["speed"]: p.value for p in points["chargy.network.charging_sessions"]} == {
        speed: usage.sessions for speed, usage in view.network.items()
    }
    time_points = points["chargy.network.connector"]
    assert len(time_points) == len(SimpleState) * len(view.network)
    assert sum(p.value for p in time_points) == sum(sum(u.seconds) for u in view.network.values())
    assert sum(u.sessions for u in view.network.values()) > 0


def test_through_the_real_feed_and_refresher(feed: FeedServer) -> None:
    """Successes, 304s (one after a failure), failures, and an outage over the maximum staleness, over HTTP;
    then the counters are withdrawn with the snapshot once it is older than the maximum staleness."""
    clock = Clock()
    with Rig(feed.url(), max_staleness_s=MAX_STALENESS_S, refresh_interval_s=300, monotonic=clock.monotonic) as rig:
        rng = random.Random(8)
        network = generate_network(50, seed=8)
        successes: list[tuple[float, Snapshot]] = []
        steps: list[tuple[float, str]] = [
            (0, "new"), (300, "new"), (300, "304"), (250, "new"), (300, "error"), (300, "304"), (1200, "error"),
            (300, "new"), (300, "304"), (60, "new"),
        ]  # fmt: skip
        for step, (elapsed_s, kind) in enumerate(steps):
            clock.now += elapsed_s
            if kind == "new":
                network = move_states(network, rng, fraction=0.4)
                last_good = FeedResponse(render_kml(network), etag=f'"{step}"')
            feed.serve(FeedResponse(b"down", status=503) if kind == "error" else last_good)
            outcome = rig.refresher.refresh_once().outcome
            assert outcome is {"new": Outcome.SUCCESS, "304": Outcome.NOT_MODIFIED, "error": Outcome.HTTP_ERROR}[kind]
            if kind != "error":
                successes.append((clock.now, network))
        publication = rig.holder.latest
        assert publication is not None
        view = publication.usage
        assert counted(view) == without_zeros(answer(successes))
        total_s = (300 + 300 + 250 + 600 + 300 + 60) * network.connector_count
        assert sum(sum(u.seconds) for u in view.network.values()) == total_s  # the 1,500 s across the outage: nowhere
        served = rig.metrics()
        assert served["chargy_station_connector_seconds"].samples
        assert sum(s.value for s in served["chargy_network_connector_seconds"].samples) == pytest.approx(total_s)
        assert sum(s.value for s in served["chargy_station_charging_sessions"].samples) == sum(
            usage.sessions for usage in view.stations.values()
        )
        clock.now += MAX_STALENESS_S + 1
        assert not {spec.prometheus_name.removesuffix("_total") for spec in USAGE_METRICS} & set(rig.metrics())


def openmetrics_samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in parse_openmetrics(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def test_the_service_serves_the_counters_on_metrics(feed: FeedServer) -> None:
    network = generate_network(30, seed=6)
    feed.serve(FeedResponse(render_kml(network)))
    port = free_port()
    config = load_config(
        ["--kml-url", feed.url(), "--refresh-interval", "0.5", "--web.listen-address", f"127.0.0.1:{port}"], {}
    )
    service = Service(config, Redactor([]))
    service.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            accept = {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"}

            def time_samples() -> list[tuple[str, dict[str, str], float]]:
                text = client.get("/metrics", headers=accept).text  # httpx inflates the gzip member
                return [s for s in openmetrics_samples(text) if "connector_seconds" in s[0]]

            wait_until(lambda: [s for s in time_samples() if s[0].endswith("_total") and s[2] > 0], "time to count")
            samples = time_samples()
    finally:
        service.stop()
    totals: dict[str, dict[str, float]] = {"station": defaultdict(float), "network": defaultdict(float)}
    for name, labels, value in samples:
        level = "station" if name.startswith("chargy_station") else "network"
        if name.endswith("_total"):
            totals[level][labels["chargy_connector_state"]] += value
        else:
            assert name.endswith("_created") and value > WALL_OFFSET_S
    assert sum(totals["station"].values()) > 0
    for state, seconds in totals["station"].items():  # summed in another order: equal to rounding
        assert abs(seconds - totals["network"][state]) <= 1e-9 * max(seconds, 1.0), state
    stations = {labels["station"] for name, labels, _ in samples if name.startswith("chargy_station")}
    assert stations == {s.name for s in network.stations}


def test_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "usage.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/usage.py", "--sizes", "30", "--repeats", "1", "--output", str(output)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(output.read_text())["sizes"]["30"]
    assert figures["connectors"] > 50 and figures["usage_openmetrics_bytes"] > figures["usage_text_bytes"] > 0
    assert "| render_usage_ms |" in result.stdout
