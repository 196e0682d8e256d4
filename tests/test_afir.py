"""DATEX II v3 (AFIR) and OICP feeds: real publications served as they are, the two parts on their own
schedules, failures of either part, and hostile documents. Expectations come from the fixtures, counted
with the standard library apart from the parser (tests/data/README.md), or from the generator's truth."""

from __future__ import annotations

import gzip
import json
import logging
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from otel_chargy.config import ConfigError, load_config
from otel_chargy.generator_afir import (
    TwoPartNetwork,
    generate_two_part_network,
    render_datex2_status_json,
    render_datex2_status_xml,
    render_datex2_table_json,
    render_datex2_table_xml,
    render_oicp_data,
    render_oicp_status,
    with_new_statuses,
)
from otel_chargy.labels import MAX_LABEL_CHARS
from otel_chargy.livetable import LiveTable, TableOptions
from otel_chargy.main import main
from otel_chargy.model import SimpleState
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import SizeBounds
from otel_chargy.parse_datex2 import (
    DATEX2_ISSUE_KINDS,
    DATEX2_STATUSES,
    parse_datex2_status,
    parse_datex2_table,
)
from otel_chargy.parse_oicp import OICP_ISSUE_KINDS, parse_oicp_data, parse_oicp_status
from tests.feedserver import FeedResponse, FeedServer
from tests.rig import Rig
from tests.truth import assert_serves

DATA = Path(__file__).parent / "data"
DATEX2 = DATA / "afir-datex2"
OICP = DATA / "oicp-ch"
JSON = "application/json"


def read(path: Path) -> bytes:
    body = path.read_bytes()
    return gzip.decompress(body) if path.suffix == ".gz" else body


def serve_pair(feed: FeedServer, static: bytes, status: bytes, etag: str | None = None) -> None:
    feed.serve_path("/static", FeedResponse(static, content_type=JSON, etag=etag))
    feed.serve_path("/status", FeedResponse(status, content_type=JSON))


def paired_rig(feed: FeedServer, feed_format: str, *extra: str, clock: list[float] | None = None) -> Rig:
    """`clock`: a one-item list, the static part's monotonic time, set by the test."""
    urls = ["--feed.url", feed.url("/static"), "--feed.status-url", feed.url("/status")]
    config = load_config(["--feed.format", feed_format, *urls, *extra], {})
    return Rig(feed.url("/static"), paired=config, clock=(lambda: clock[0]) if clock is not None else None)


def states_served(rig: Rig) -> dict[tuple[str, str], tuple[str, str]]:
    """(device, connector) -> (simple state, raw state), as /metrics says."""
    metrics = rig.metrics()
    simple = {
        (s.labels["device"], s.labels["connector"]): s.labels["chargy_connector_state"]
        for s in metrics["chargy_connector_state"].samples
        if s.value == 1
    }
    raw = {
        (s.labels["device"], s.labels["connector"]): s.labels["state"]
        for s in metrics["chargy_connector_detailed_state_info"].samples
    }
    assert simple.keys() == raw.keys()
    return {key: (simple[key], raw[key]) for key in simple}


# The state tables as the issue states them, written out apart from the parsers.
DATEX2_STATES = {
    "available": "available",
    "charging": "charging",
    "occupied": "charging",
    "blocked": "unavailable",
    "faulted": "unavailable",
    "inoperative": "unavailable",
    "outOfOrder": "unavailable",
    "outOfStock": "unavailable",
    "unavailable": "unavailable",
    "reserved": "unavailable",
    "unknown": "unknown",
}
OICP_STATES = {
    "Available": "available",
    "Occupied": "charging",
    "Reserved": "unavailable",
    "OutOfService": "unavailable",
}


def json_refill_points(table: object) -> list[dict[str, Any]]:
    """Every refill point of a table publication: the objects in `refillPoint` lists, class wrapper removed."""
    found: list[dict[str, Any]] = []

    def walk(value: object, key: str) -> None:
        if isinstance(value, dict):
            for member, inner in value.items():
                walk(inner, member)
        elif isinstance(value, list):
            for item in value:
                if key == "refillPoint" and isinstance(item, dict):
                    found.append(next(iter(item.values())))
                else:
                    walk(item, key)

    walk(table, "")
    return found


def json_statuses(status: object) -> dict[str, str]:
    """refill point id -> its current status (not a planned one)."""
    found: dict[str, str] = {}

    def walk(value: object, key: str) -> None:
        if isinstance(value, dict):
            for member, inner in value.items():
                walk(inner, member)
        elif isinstance(value, list):
            for item in value:
                if key == "refillPointStatus" and isinstance(item, dict):
                    entry = next(iter(item.values()))
                    found[entry["reference"]["idG"]] = entry["status"]["value"]
                else:
                    walk(item, key)

    walk(status, "")
    return found


# --- the real publications


def test_the_mobilithek_json_example_pair_serves_exactly_its_refill_points_and_states(feed: FeedServer) -> None:
    table_body = read(DATEX2 / "mobilithek-01-00-00-table.json")
    status_body = read(DATEX2 / "mobilithek-01-00-00-status.json")
    points = json_refill_points(json.loads(table_body))
    statuses = json_statuses(json.loads(status_body))
    assert len(points) == 4 and statuses == {"73ABE928-707D-4A99-8043-4293EE685504": "charging"}
    serve_pair(feed, table_body, status_body)
    with paired_rig(feed, "datex2") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        served = states_served(rig)
    connectors_by_device = Counter(device for device, _ in served)
    # Labels: the EVSE id where the table gives one (externalIdentifier of type evseId), else the id.
    assert connectors_by_device == {
        "DE*ABC*EXXXXXXXX12345": 2,
        "35E5FC89-E2C9-4946-8E70-6A2C56E0BD7E": 1,
        "CAEBDA8A-210A-48EA-856A-EA9595FDDD10": 2,
        "D8CF0A86-037F-449C-8BE2-5820EECC9036": 1,
    }
    assert sum(connectors_by_device.values()) == sum(len(point["connector"]) for point in points)
    assert served[("DE*ABC*EXXXXXXXX12345", "DE*ABC*EXXXXXXXX12345 - 1")] == ("charging", "charging")
    # The third refill point's connectors carry their own EVSE ids.
    assert ("CAEBDA8A-210A-48EA-856A-EA9595FDDD10", "DEABCEXXXXXXXX12347") in served
    others = [state for (device, _), state in served.items() if device != "DE*ABC*EXXXXXXXX12345"]
    assert others == [("unknown", "unknown")] * 4


def test_the_mobilithek_xml_example_pair_serves_exactly_its_refill_points_and_states(feed: FeedServer) -> None:
    table_body = read(DATEX2 / "mobilithek-00-00-02-table.xml")
    status_body = read(DATEX2 / "mobilithek-00-00-02-status.xml")
    local = "{http://datex2.eu/schema/3/energyInfrastructure}"
    table = ElementTree.fromstring(table_body)  # a trusted fixture: the standard library counts it
    points = {point.get("id"): len(point.findall(f"{local}connector")) for point in table.iter(f"{local}refillPoint")}
    status = ElementTree.fromstring(status_body)
    current = [element.findtext(f"{local}status") for element in status.iter(f"{local}refillPointStatus")]
    assert sum(points.values()) == 6 and current == ["charging"]
    serve_pair(feed, table_body, status_body)
    with paired_rig(feed, "datex2") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        served = states_served(rig)
        station = rig.metrics()["chargy_station_info"].samples[0].labels
    assert Counter(device for device, _ in served) == {
        "DEABCEXXXXXXXX12345": 2,
        "35E5FC89-E2C9-4946-8E70-6A2C56E0BD7E": 1,
        "DEABCEXXXXXXXX54321": 2,
        "D8CF0A86-037F-449C-8BE2-5820EECC9036": 1,
    }
    assert sorted(state for state, _ in served.values()) == ["charging"] * 2 + ["unknown"] * 4
    assert station["address"] == "Hauptstraße 12, 55555 Musterstadt"
    assert (station["latitude"], station["longitude"]) == ("50.779599", "6.104507")


def test_a_real_operators_delta_status_updates_the_refill_points_it_names(feed: FeedServer) -> None:
    table_body = read(DATEX2 / "enbw-static-reduced.json.gz")
    status_body = read(DATEX2 / "enbw-realtime-reduced.json")
    points = json_refill_points(json.loads(table_body))
    statuses = json_statuses(json.loads(status_body))
    assert (len(points), len(statuses)) == (57, 11)
    serve_pair(feed, table_body, status_body)
    with paired_rig(feed, "datex2") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        served = states_served(rig)
    expected = {
        str(point["idG"]): (DATEX2_STATES[statuses[point["idG"]]], statuses[point["idG"]])
        if point["idG"] in statuses
        else ("unknown", "unknown")
        for point in points
    }
    assert {device: state for (device, _), state in served.items()} == expected


def test_a_table_without_evse_ids_labels_refill_points_by_their_ids() -> None:
    body = read(DATEX2 / "giroe-static-reduced.json.gz")
    points = json_refill_points(json.loads(body))
    live = LiveTable(DATEX2_STATUSES)
    live.replace_table(parse_datex2_table(body))
    snapshot = live.snapshot(Counter())
    assert sorted(device.name for station in snapshot.stations for device in station.devices) == sorted(
        str(point["idG"]) for point in points
    )
    assert len(points) == 72 and snapshot.count_by_state()[SimpleState.UNKNOWN] == 72


def test_a_swiss_pair_serves_the_static_evses_with_their_live_states(feed: FeedServer) -> None:
    data_body = read(OICP / "opendata-swiss-EVSEData-reduced.json.gz")
    status_body = read(OICP / "opendata-swiss-EVSEStatus-reduced.json")
    records = [record for operator in json.loads(data_body)["EVSEData"] for record in operator["EVSEDataRecord"]]
    statuses = {
        record["EvseID"]: record["EVSEStatus"]
        for operator in json.loads(status_body)["EVSEStatuses"]
        for record in operator["EVSEStatusRecord"]
    }
    serve_pair(feed, data_body, status_body)
    with paired_rig(feed, "oicp") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        served = states_served(rig)
        power = {s.labels["device"]: s.value for s in rig.metrics()["chargy_connector_max_power_watts"].samples}
    assert {device: state for (device, _), state in served.items()} == {
        record["EvseID"]: (OICP_STATES.get(statuses[record["EvseID"]], "unknown"), statuses[record["EvseID"]])
        for record in records
    }
    # kW, as numbers or as text ("22"), to W.
    assert power == {record["EvseID"]: float(record["ChargingFacilities"][0]["power"]) * 1000 for record in records}
    assert any(evse.startswith("+41*031*") for evse in power)


def test_evses_known_only_to_the_status_file_are_counted_not_served(feed: FeedServer) -> None:
    """The reduced EVSEData of May 2025 with the whole national EVSEStatus of November 2025."""
    data_body = read(OICP / "opendata-swiss-EVSEData-reduced.json.gz")
    status_body = read(OICP / "EVSEStatuses.json.gz")
    static_ids = {r["EvseID"] for o in json.loads(data_body)["EVSEData"] for r in o["EVSEDataRecord"]}
    status_ids = {r["EvseID"] for o in json.loads(status_body)["EVSEStatuses"] for r in o["EVSEStatusRecord"]}
    serve_pair(feed, data_body, status_body)
    with paired_rig(feed, "oicp") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        served = states_served(rig)
        counted = rig.sample("chargy_feed_parse_issues_total", kind="status_of_unknown_refill_point")
    assert {device for device, _ in served} == static_ids
    assert counted == len(status_ids - static_ids) > 14_000


# --- the generator's networks: both encodings and both formats from one truth


@pytest.mark.parametrize("encoding", ["json", "xml"])
def test_a_generated_datex2_pair_serves_its_truth(feed: FeedServer, encoding: str) -> None:
    network = generate_two_part_network(60, seed=3)
    if encoding == "json":
        serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network))
    else:
        serve_pair(feed, render_datex2_table_xml(network), render_datex2_status_xml(network))
    with paired_rig(feed, "datex2") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), network.truth("datex2"))


def test_a_generated_oicp_pair_serves_its_truth(feed: FeedServer) -> None:
    network = generate_two_part_network(60, seed=4)
    serve_pair(feed, render_oicp_data(network), render_oicp_status(network))
    with paired_rig(feed, "oicp") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), network.truth("oicp"))


# --- static and live on their own schedules


def test_a_status_change_shows_without_the_static_part_being_downloaded_again(feed: FeedServer) -> None:
    network = generate_two_part_network(40, seed=5)
    changed = with_new_statuses(network, 0.5)
    serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network), etag='"v1"')
    with paired_rig(feed, "datex2") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        feed.serve_path("/status", FeedResponse(render_datex2_status_json(changed), content_type=JSON))
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), changed.truth("datex2"))
    assert [path for path, _ in feed.requests] == ["/static", "/status", "/status"]


def test_the_static_part_is_asked_again_conditionally_at_its_interval(feed: FeedServer) -> None:
    network = generate_two_part_network(40, seed=6)
    serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network), etag='"v1"')
    clock = [0.0]
    with paired_rig(feed, "datex2", "--feed.static-interval", "3600", clock=clock) as rig:
        for now in (0.0, 3599.0, 3601.0):
            clock[0] = now
            assert rig.refresher.refresh_once().outcome.succeeded
        assert_serves(rig.metrics(), network.truth("datex2"))
    static_requests = [headers for path, headers in feed.requests if path == "/static"]
    assert len(static_requests) == 2 and static_requests[1].get("If-None-Match") == '"v1"'


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        (FeedResponse(b"upstream down", status=503), Outcome.HTTP_ERROR),
        (FeedResponse(b'{"messageContainer": {"payload": [', content_type=JSON), Outcome.INVALID_JSON),
        (FeedResponse(b"<html><body>maintenance</body></html>", content_type="text/html"), Outcome.NOT_DATEX2),
    ],
    ids=["http-503", "truncated-json", "html-page"],
)
def test_a_failing_status_part_keeps_the_last_good_snapshot_and_names_the_part(
    feed: FeedServer, response: FeedResponse, outcome: Outcome
) -> None:
    network = generate_two_part_network(30, seed=7)
    serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network))
    with paired_rig(feed, "datex2") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        feed.serve_path("/status", response)
        result = rig.refresher.refresh_once()
        assert result.outcome is outcome and result.reason.startswith("the status part failed: ")
        assert rig.sample("chargy_feed_up") == 0
        assert_serves(rig.metrics(), network.truth("datex2"))
        refresh = rig.spans("chargy.refresh")[-1]
        assert refresh.status.description == result.reason


def test_a_failing_static_part_keeps_the_last_good_one_and_says_so(
    feed: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    network = generate_two_part_network(30, seed=8)
    changed = with_new_statuses(network, 0.5)
    serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network))
    clock = [0.0]
    with paired_rig(feed, "datex2", "--feed.static-interval", "60", clock=clock) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        clock[0] = 100.0
        feed.serve_path("/static", FeedResponse(b"gone", status=500))
        feed.serve_path("/status", FeedResponse(render_datex2_status_json(changed), content_type=JSON))
        with caplog.at_level(logging.WARNING):
            result = rig.refresher.refresh_once()
        assert result.outcome is Outcome.SUCCESS
        assert "the static part failed (http_error" in result.reason and "stays in use" in result.reason
        assert_serves(rig.metrics(), changed.truth("datex2"))
        assert rig.sample("chargy_feed_parse_issues_total", kind="static_part_stale") == 1
    assert any("the static part failed" in record.getMessage() for record in caplog.records)


def test_without_a_static_part_a_refresh_fails_naming_it(feed: FeedServer) -> None:
    network = generate_two_part_network(10, seed=9)
    feed.serve_path("/static", FeedResponse(b"no", status=404))
    feed.serve_path("/status", FeedResponse(render_oicp_status(network), content_type=JSON))
    with paired_rig(feed, "oicp") as rig:
        result = rig.refresher.refresh_once()
        assert result.outcome is Outcome.HTTP_ERROR and result.reason.startswith("the static part failed: ")
        assert rig.holder.latest is None


def test_a_delta_leaves_the_statuses_it_does_not_name_as_they_were(feed: FeedServer) -> None:
    network = generate_two_part_network(40, seed=10)
    changed = with_new_statuses(network, 1.0)
    named = [point.key for site in changed.sites[:5] for point in site.points]
    serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network))
    with paired_rig(feed, "datex2") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        delta = render_datex2_status_json(changed, keys=named)
        feed.serve_path("/status", FeedResponse(delta, content_type=JSON))
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        served = rig.metrics()
    # The five sites' refill points took the delta's statuses; the others kept the first publication's.
    assert_serves(served, TwoPartNetwork(changed.sites[:5] + network.sites[5:]).truth("datex2"))


def test_a_status_for_a_refill_point_the_table_lacks_is_counted_not_served(feed: FeedServer) -> None:
    network = generate_two_part_network(20, seed=11)
    extra = [("NOT-IN-TABLE-1", "available"), ("NOT-IN-TABLE-2", "charging")]
    serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network, extra=extra))
    with paired_rig(feed, "datex2") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), network.truth("datex2"))
        assert rig.sample("chargy_feed_parse_issues_total", kind="status_of_unknown_refill_point") == 2


def test_bbox_keeps_the_sites_inside_and_ignores_the_statuses_of_the_others(feed: FeedServer) -> None:
    network = generate_two_part_network(200, seed=12)
    west, south, east, north = 8.0, 48.0, 11.0, 50.0
    inside = TwoPartNetwork(
        tuple(site for site in network.sites if west <= site.longitude <= east and south <= site.latitude <= north)
    )
    assert 0 < len(inside.sites) < len(network.sites)
    serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network))
    with paired_rig(feed, "datex2", "--feed.bbox", f"{west},{south},{east},{north}") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), inside.truth("datex2"))
        assert rig.sample("chargy_feed_parse_issues_total", kind="status_of_unknown_refill_point") is None


def test_a_status_outside_the_table_of_states_is_unknown_and_counted() -> None:
    live = LiveTable(DATEX2_STATUSES)
    network = generate_two_part_network(3, seed=13)
    live.replace_table(parse_datex2_table(render_datex2_table_json(network)))
    key = network.sites[0].points[0].key
    issues = live.apply(parse_datex2_status(render_datex2_status_json(network, keys=[], extra=[(key, "WORKING")])))
    snapshot = live.snapshot(issues)
    device = snapshot.stations[0].devices[0]
    assert {(c.state, c.raw_state) for c in device.connectors} == {(SimpleState.UNKNOWN, "WORKING")}
    assert snapshot.issues["unknown_state"] == 1


# --- hostile documents


def test_xml_with_a_dtd_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<d2:payload xmlns:d2='x'><energyInfrastructureSite id='1'><name>&b;</name></energyInfrastructureSite>"
        b"</d2:payload>"
    )
    with pytest.raises(FeedError) as raised:
        parse_datex2_table(bomb)
    assert raised.value.outcome is Outcome.FORBIDDEN_XML


def test_json_nested_past_the_bound_is_refused() -> None:
    deep = b'{"messageContainer": {"payload": [' + b'{"a": [' * 40 + b"1" + b"]}" * 40 + b"]}}"
    with pytest.raises(FeedError) as raised:
        parse_datex2_status(deep)
    assert raised.value.outcome is Outcome.FORBIDDEN_JSON


def test_a_status_flood_is_bounded_by_the_network_size() -> None:
    flood = [(f"X{index}", "available") for index in range(2_001)]
    body = render_datex2_status_json(generate_two_part_network(1), extra=flood)
    with pytest.raises(FeedError) as raised:
        parse_datex2_status(body, TableOptions(bounds=SizeBounds(2_000)))
    assert raised.value.outcome is Outcome.TOO_LARGE


def test_a_status_document_of_another_format_is_not_taken_for_an_empty_one() -> None:
    with pytest.raises(FeedError) as raised:
        parse_oicp_status(b'{"EVSEData": []}')
    assert raised.value.outcome is Outcome.NOT_OICP


def test_the_afir_page_lists_every_parse_issue() -> None:
    page = (Path(__file__).parent.parent / "docs" / "afir.md").read_text()
    for kinds in (DATEX2_ISSUE_KINDS, OICP_ISSUE_KINDS):
        for kind, meaning in kinds.items():
            assert f"| `{kind}` | {meaning} |" in page, kind


# --- the command line: settings and `check`


def test_a_two_part_format_needs_its_status_url_and_nothing_else_takes_one() -> None:
    with pytest.raises(ConfigError, match=r"--feed\.status-url"):
        load_config(["--feed.format", "datex2", "--feed.url", "https://nap.example/table"], {})
    with pytest.raises(ConfigError, match=r"status part of a datex2 or oicp feed"):
        load_config(
            ["--feed.format", "ocpi", "--feed.url", "https://a.example/l", "--feed.status-url", "https://b/s"], {}
        )
    with pytest.raises(ConfigError, match=r"--feed\.operator filters an OCPI feed"):
        load_config(
            ["--feed.format", "oicp", "--feed.url", "/d", "--feed.status-url", "/s", "--feed.operator", "NL*ABC"], {}
        )


def test_the_status_url_key_is_a_secret_in_configuration_errors() -> None:
    key = "b7e1c3d9a2f4"
    with pytest.raises(ConfigError) as raised:
        load_config(
            ["--feed.format", "datex2", "--feed.url", "/t", "--feed.status-url", f"htps://nap/s?api_key={key}"], {}
        )
    assert key not in str(raised.value) and "api_key=REDACTED" in str(raised.value)


@pytest.mark.usefixtures("restore_logging")
def test_check_reads_both_parts_and_reports_them(feed: FeedServer, capsys: pytest.CaptureFixture[str]) -> None:
    network = generate_two_part_network(25, seed=14)
    serve_pair(feed, render_oicp_data(network), render_oicp_status(network))
    status_url = feed.url("/status")
    assert main(["--feed.format", "oicp", "--feed.status-url", status_url, "check", feed.url("/static")]) == 0
    report = capsys.readouterr().out
    truth = network.truth("oicp")
    assert f"devices: {truth.device_count}" in report and f"connectors: {truth.connector_count}" in report
    for state, count in truth.count_by_state().items():
        assert f"  {state.value}: {count}\n" in report
    feed.serve_path("/status", FeedResponse(b"down", status=502))
    assert main(["--feed.format", "oicp", "--feed.status-url", status_url, "check", feed.url("/static")]) == 1
    assert "not usable: http_error: the status part failed" in capsys.readouterr().out


def test_a_status_xml_of_many_sites_is_read_whole() -> None:
    """Each site's and station's status wrapper stands outside the refill point statuses: their number
    follows the network's size, within a bound that does too."""
    network = generate_two_part_network(3_000, seed=15)
    update = parse_datex2_status(render_datex2_status_xml(network))
    published = [point for site in network.sites for point in site.points if point.status is not None]
    assert len(update.statuses) == len(published) > 3_000


@pytest.mark.parametrize("part", ["static", "status"])
def test_a_corrupt_or_bombing_gzip_part_is_refused_not_a_crash(part: str) -> None:
    network = generate_two_part_network(5, seed=16)
    good = render_datex2_table_json(network) if part == "static" else render_datex2_status_json(network)
    parse = parse_datex2_table if part == "static" else parse_datex2_status
    with pytest.raises(FeedError) as corrupt:
        parse(gzip.compress(good)[:40], TableOptions())
    assert corrupt.value.outcome is Outcome.INVALID_JSON
    bomb = gzip.compress(b"<x>" + b" " * 5_000_000 + b"</x>")
    with pytest.raises(FeedError) as bombing:
        parse(bomb, TableOptions(max_bytes=1_000_000))
    assert bombing.value.outcome is Outcome.TOO_LARGE


def test_a_national_status_publication_serves_a_city_within_a_citys_bounds(feed: FeedServer) -> None:
    """--max-connectors bounds what is kept: the table's refill points in the box and their statuses, not
    the statuses of the whole country that the status publication names."""
    network = generate_two_part_network(1_500, seed=17)
    west, south, east, north = 6.0, 47.3, 9.0, 49.0
    inside = TwoPartNetwork(
        tuple(site for site in network.sites if west <= site.longitude <= east and south <= site.latitude <= north)
    )
    assert network.refill_points > 3_000 and inside.truth("datex2").connector_count < 1_000
    serve_pair(feed, render_datex2_table_json(network), render_datex2_status_json(network))
    bbox = f"{west},{south},{east},{north}"
    with paired_rig(feed, "datex2", "--feed.bbox", bbox, "--max-connectors", "1000") as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), inside.truth("datex2"))


def test_connectors_that_repeat_an_evse_id_stay_apart() -> None:
    table = json.loads(read(DATEX2 / "mobilithek-01-00-00-table.json"))
    point = json_refill_points(table)[2]  # its two connectors carry EVSE ids of their own
    for connector in point["connector"]:
        connector["externalIdentifier"] = point["connector"][0]["externalIdentifier"]
    parsed = parse_datex2_table(json.dumps(table).encode())
    (refill_point,) = [p for site in parsed.sites for p in site.refill_points if p.key == point["idG"]]
    assert [outlet.name for outlet in refill_point.outlets] == [f"{point['idG']} - 1", f"{point['idG']} - 2"]


def test_oicp_labels_are_bounded_and_stay_distinct_as_the_other_formats_labels() -> None:
    """A hostile EVSEData: one station name of 20 KiB, and two stations whose names collide with each
    other's suffixed form. Every label fits MAX_LABEL_CHARS and no two stations share one."""
    document = json.loads(read(OICP / "opendata-swiss-EVSEData-reduced.json.gz"))
    records = [record for operator in document["EVSEData"] for record in operator["EVSEDataRecord"]]
    first, second, third = records[0], records[1], records[2]
    first["ChargingStationNames"] = [{"lang": "de", "value": "N" * 20_480}]
    second["ChargingStationNames"] = [{"lang": "de", "value": "Twin"}]
    third["ChargingStationNames"] = [{"lang": "de", "value": "Twin"}]
    table = parse_oicp_data(json.dumps(document).encode())
    names = [site.name for site in table.sites]
    assert len(names) == len(set(names))
    assert max(len(name) for name in names) == MAX_LABEL_CHARS
    assert table.issues["long_text"] == 1
