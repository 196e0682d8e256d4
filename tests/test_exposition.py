"""The cached Prometheus exposition: byte for byte what the SDK's reader renders, one publication a
response, and never stale."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from otel_chargy.catalog import SNAPSHOT_METRICS, USAGE_METRICS
from otel_chargy.exposition import CountingPrometheusReader, Exposition
from otel_chargy.generator import generate_network
from otel_chargy.holder import SnapshotHolder
from otel_chargy.model import Connector, Device, SimpleState, Snapshot, Station
from otel_chargy.render import render_snapshot
from otel_chargy.telemetry import build_resource, wire_metrics


def awkward_network() -> Snapshot:
    """Label values that need escaping, odd numbers, missing coordinates, an unknown state."""
    connectors = (
        Connector('Quote " and \\ back', 1, 22.08, "AVAILABLE", SimpleState.AVAILABLE),
        Connector("Line\nbreak", 2, 0.0, "", SimpleState.UNAVAILABLE),
        Connector("Ünïcode ☀ ok", 3, 1234567.5, "BLOCKED", SimpleState.UNAVAILABLE),
        Connector("tiny", 4, 0.001, "CHARGING", SimpleState.CHARGING),
    )
    stations = (
        Station('Gare "Centrale"\\', "1 rue\nX", None, None, (Device("CP\\1", connectors),)),
        *generate_network(50, seed=9).stations,
    )
    return Snapshot(stations=stations)


# The snapshot's own families; the usage counters that follow them are tested in tests/test_usage.py.
SNAPSHOT_FAMILIES = [spec for spec in SNAPSHOT_METRICS if spec not in USAGE_METRICS]


def reader_rendering(snapshot: Snapshot, encode: Callable[[CollectorRegistry], bytes]) -> bytes:
    """What the SDK's Prometheus reader renders for the snapshot metrics of `snapshot`, collecting them
    as a push reader does."""
    reader = CountingPrometheusReader()
    wiring = wire_metrics(prometheus=None, push_readers=[reader], resource=build_resource(), max_staleness_s=600)
    wiring.holder.publish(snapshot, fetched_at=0)
    text = encode(reader.registry).decode()
    for provider in wiring.providers:
        provider.shutdown()
    names = {spec.prometheus_name for spec in SNAPSHOT_FAMILIES}
    blocks = ["# HELP " + block for block in text.removesuffix("# EOF\n").split("# HELP ")[1:]]
    return "".join(block for block in blocks if block.split(" ", 3)[2] in names).encode()


@pytest.mark.parametrize("network", [awkward_network(), generate_network(400, seed=2)], ids=["awkward", "generated"])
def test_cached_text_is_what_the_reader_renders(network: Snapshot) -> None:
    rendered = render_snapshot(network)
    assert rendered.text == reader_rendering(network, generate_latest)
    assert rendered.openmetrics == reader_rendering(network, generate_openmetrics)
    families = {family.name for family in text_string_to_metric_families(rendered.text.decode())}
    assert families == {spec.prometheus_name for spec in SNAPSHOT_FAMILIES}


def serving(network: Snapshot) -> tuple[Exposition, SnapshotHolder, list[float]]:
    now = [0.0]
    wiring = wire_metrics(
        prometheus=CountingPrometheusReader(),
        push_readers=[],
        resource=build_resource(),
        max_staleness_s=10,
        monotonic=lambda: now[0],
    )
    assert wiring.exposition is not None
    wiring.holder.publish(network, fetched_at=0)
    return wiring.exposition, wiring.holder, now


@pytest.mark.parametrize("accept", ["text/plain", "application/openmetrics-text; version=1.0.0"])
def test_gzip_holds_the_plain_body(accept: str) -> None:
    exposition, _, _ = serving(generate_network(200, seed=3))
    plain = b"".join(exposition.render(accept, None).chunks)
    compressed = b"".join(exposition.render(accept, "gzip, deflate").chunks)
    assert gzip.decompress(compressed) == plain
    families = {family.name for family in text_string_to_metric_families(plain.decode().removesuffix("# EOF\n"))}
    assert {"chargy_connector_state", "chargy_station_connectors", "chargy_feed_up", "target_info"} <= families
    if "openmetrics" in accept:
        assert plain.endswith(b"# EOF\n") and plain.count(b"# EOF") == 1


def test_cache_follows_the_snapshot_and_staleness() -> None:
    first, second = generate_network(30, seed=1), generate_network(30, seed=2)
    exposition, holder, now = serving(first)
    response = exposition.render(None, None)
    assert exposition.render(None, None) is response  # served from memory
    assert b"".join(response.chunks).startswith(render_snapshot(first).text)
    holder.publish(second, fetched_at=1)
    changed = exposition.render(None, None)
    assert b"".join(changed.chunks).startswith(render_snapshot(second).text)
    now[0] += 11  # older than the maximum staleness of 10 s
    stale = b"".join(exposition.render(None, None).chunks)
    assert b"chargy_connector_state{" not in stale and b"chargy_feed_up" in stale


@pytest.mark.usefixtures("refresh_after_every_read")
def test_a_response_shows_one_publication() -> None:
    """A refresh lands right after every read of the holder: the snapshot text and the feed-health
    part of each response still come from the same publication."""
    exposition, _, _ = serving(generate_network(10))
    for _ in range(4):
        text = b"".join(exposition.render(None, None).chunks).decode()
        families = {family.name: family for family in text_string_to_metric_families(text)}
        connectors = len(families["chargy_connector_state"].samples) / len(SimpleState)
        (feed_connectors,) = families["chargy_feed_connectors"].samples
        (feed_stations,) = families["chargy_feed_stations"].samples
        assert feed_connectors.value == connectors
        assert feed_stations.value == len(families["chargy_station_info"].samples)
        assert sum(sample.value for sample in families["chargy_network_connectors"].samples) == connectors


PROMETHEUS_ACCEPT_HEADERS = {
    "2.x": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    **{
        f"3.x {escaping}": f"application/openmetrics-text;version=1.0.0;escaping={escaping};q=0.6,"
        f"application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping={escaping};q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        for escaping in ("underscores", "allow-utf-8")
    },
}


@pytest.mark.parametrize("accept", PROMETHEUS_ACCEPT_HEADERS.values(), ids=PROMETHEUS_ACCEPT_HEADERS.keys())
def test_prometheus_asking_for_openmetrics_gets_valid_openmetrics(accept: str) -> None:
    """Whatever parameters the content type carries (`escaping=...`), the snapshot part is the OpenMetrics one."""
    network = generate_network(30, seed=5)
    exposition, _, _ = serving(network)
    response = exposition.render(accept, None)
    assert response.content_type.startswith("application/openmetrics-text;")
    body = b"".join(response.chunks).decode()
    assert body.endswith("# EOF\n") and body.count("# EOF") == 1
    # Strict: raises on the text format.
    families = {family.name: family for family in parse_openmetrics(body)}  # type: ignore[no-untyped-call]
    assert "# UNIT chargy_connector_max_power_watts watts\n" in body
    assert "# UNIT chargy_network_connector_seconds seconds\n" in body
    expected = {spec.prometheus_name.removesuffix("_total") for spec in SNAPSHOT_METRICS}
    assert expected | {"chargy_feed_up", "target"} <= set(families)
    assert len(families["chargy_connector_state"].samples) == len(SimpleState) * network.connector_count


def test_a_rendering_that_reuses_the_previous_one_is_what_a_fresh_one_is() -> None:
    """Stations that changed, moved, left or came, and a name given to other content: copied lines
    from the previous rendering must never show an old state."""
    before = awkward_network()
    stations = list(before.stations)
    first_device = stations[3].devices[0]
    flipped = replace(first_device.connectors[0], raw_state="FAULTED", state=SimpleState.UNAVAILABLE)
    stations[3] = replace(stations[3], devices=(replace(first_device, connectors=(flipped,)),))
    stations[5] = replace(stations[5], address="elsewhere")
    stations[10], stations[20] = stations[20], stations[10]
    del stations[30]
    stations.insert(0, generate_network(1, seed=5).stations[0])
    after = Snapshot(stations=tuple(stations))
    reused = render_snapshot(after, render_snapshot(before))
    fresh = render_snapshot(after)
    assert (reused.text, reused.openmetrics) == (fresh.text, fresh.openmetrics)
    assert b'state="FAULTED",station="' + stations[4].name.encode() in reused.text
    assert reused.text != render_snapshot(before).text
