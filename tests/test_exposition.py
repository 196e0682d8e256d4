"""The cached Prometheus exposition: byte for byte what the SDK's reader renders, and never stale."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from otel_chargy.exposition import CountingPrometheusReader, Exposition, render_snapshot
from otel_chargy.generator import generate_network
from otel_chargy.holder import RefreshStatus, SnapshotHolder
from otel_chargy.metrics import SNAPSHOT_METRICS, OverflowTally, ServedFeed, build_meter_provider, prepare_observations
from otel_chargy.model import Connector, Device, SimpleState, Snapshot, Station
from otel_chargy.publication import Publication, publisher
from otel_chargy.telemetry import build_resource


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


def reader_rendering(snapshot: Snapshot, encode: Callable[[CollectorRegistry], bytes]) -> bytes:
    """What the SDK's Prometheus reader renders for the snapshot-sized metrics of `snapshot`."""
    overflow = OverflowTally([])
    reader = CountingPrometheusReader(overflow)
    observations = prepare_observations(snapshot)
    served = ServedFeed(lambda: RefreshStatus(), lambda: (0, 0), lambda: observations)
    provider = build_meter_provider([reader], build_resource(), overflow, served)
    text = encode(reader.registry).decode()
    provider.shutdown()
    names = {spec.prometheus_name for spec in SNAPSHOT_METRICS}
    blocks = ["# HELP " + block for block in text.removesuffix("# EOF\n").split("# HELP ")[1:]]
    return "".join(block for block in blocks if block.split(" ", 3)[2] in names).encode()


@pytest.mark.parametrize("network", [awkward_network(), generate_network(400, seed=2)], ids=["awkward", "generated"])
def test_cached_text_is_what_the_reader_renders(network: Snapshot) -> None:
    rendered = render_snapshot(network)
    assert b"".join(rendered.text) == reader_rendering(network, generate_latest)
    assert b"".join(rendered.openmetrics) == reader_rendering(network, generate_openmetrics)


def serving(network: Snapshot) -> tuple[Exposition, SnapshotHolder[Publication], list[float]]:
    now = [0.0]
    holder = SnapshotHolder(publisher(observations=False, exposition=True), 10, monotonic=lambda: now[0])
    overflow = OverflowTally([])
    reader = CountingPrometheusReader(overflow)
    build_meter_provider([reader], build_resource(), overflow, ServedFeed(lambda: holder.status, lambda: (0, 0)))

    def cached() -> object:
        published = holder.current
        return published.prepared.exposition if published else None

    holder.publish(network, fetched_at=0)
    return Exposition(reader, cached, lambda: holder.version), holder, now  # type: ignore[arg-type]


@pytest.mark.parametrize("accept", ["text/plain", "application/openmetrics-text; version=1.0.0"])
def test_gzip_is_one_valid_member_holding_the_plain_body(accept: str) -> None:
    exposition, _, _ = serving(generate_network(200, seed=3))
    plain = b"".join(exposition.render(accept, None).chunks)
    compressed = b"".join(exposition.render(accept, "gzip, deflate").chunks)
    assert gzip.decompress(compressed) == plain
    single_member = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert single_member.decompress(compressed) == plain and single_member.eof and not single_member.unused_data
    families = {family.name for family in text_string_to_metric_families(plain.decode().removesuffix("# EOF\n"))}
    assert {"chargy_connector_state", "chargy_feed_up", "target_info"} <= families
    if "openmetrics" in accept:
        assert plain.endswith(b"# EOF\n") and plain.count(b"# EOF") == 1


def test_cache_follows_the_snapshot_and_staleness() -> None:
    first, second = generate_network(30, seed=1), generate_network(30, seed=2)
    exposition, holder, now = serving(first)
    response = exposition.render(None, None)
    assert exposition.render(None, None) is response  # served from memory
    assert render_snapshot(first).text[1] in response.chunks
    holder.publish(second, fetched_at=1)
    changed = exposition.render(None, None)
    assert render_snapshot(second).text[1] in changed.chunks
    now[0] += 11  # older than the maximum staleness of 10 s
    stale = b"".join(exposition.render(None, None).chunks)
    assert b"chargy_connector_state{" not in stale and b"chargy_feed_up" in stale
