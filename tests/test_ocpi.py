"""OCPI 2.2.1 feeds through the real data path: a real local HTTP server serves them (arrays, paged
envelopes, gzip, zip) to the real HttpSource, Refresher and exposition in process (tests/rig.py). The
official examples of the specification (tests/data/ocpi-2.2.1/, unmodified) and generated networks
whose truth is known are the fixtures."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from otel_chargy.config import ConfigError, load_config
from otel_chargy.fetch import OCPI_ACCEPT, Validators
from otel_chargy.generator import (
    OcpiNetwork,
    generate_network,
    generate_ocpi_network,
    gzipped,
    ocpi_pages,
    render_kml,
    render_ocpi,
    zipped,
)
from otel_chargy.health import advise
from otel_chargy.main import main
from otel_chargy.model import SimpleState, Snapshot, Station
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import SizeBounds
from otel_chargy.parse_ocpi import (
    MAX_DEPTH,
    MAX_LOCATION_VALUES,
    MAX_SPAN_BYTES,
    OCPI_ISSUE_KINDS,
    BoundingBox,
    OcpiOptions,
    parse_ocpi,
)
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.rig import Rig
from tests.service import ServiceProcess
from tests.truth import assert_serves

EXAMPLES = Path(__file__).parent / "data" / "ocpi-2.2.1"
EXAMPLE = json.loads((EXAMPLES / "location_example.json").read_bytes())
JSON = "application/json"
MAX_BYTES = 20_000_000
OPTIONS = OcpiOptions(max_bytes=MAX_BYTES)
PARSE = partial(parse_ocpi, options=OPTIONS)
NETWORK = generate_ocpi_network(3000, seed=5)
SMALL = generate_ocpi_network(40, seed=6)


def ocpi_rig(url: str, **arguments: object) -> Rig:
    return Rig(url, paged=True, accept=OCPI_ACCEPT, max_bytes=MAX_BYTES, parse=PARSE, **arguments)  # type: ignore[arg-type]


def serve_pages(feed: FeedServer, pages: list[bytes], *, gzip_pages: bool = False, path: str = "/ocpi") -> str:
    """The pages at path, path?offset=1, ...; each links to the next, absolute URL on the same host."""
    urls = [path] + [f"{path}?offset={number}" for number in range(1, len(pages))]
    for number, body in enumerate(pages):
        headers = {"Link": f'<{feed.url(urls[number + 1])}>; rel="next"'} if number + 1 < len(pages) else {}
        feed.serve_path(urls[number], FeedResponse(body, content_type=JSON, headers=headers, gzip=gzip_pages))
    return feed.url(path)


def connector_states(snapshot: Snapshot) -> list[tuple[str, str, str, str, SimpleState, str]]:
    return [(s.name, d.name, c.name, c.raw_state, c.state, c.speed) for s, d, c in snapshot.connectors()]


EXAMPLE_STATES = [
    ("Gent Zuid", "BE*BEC*E041503001", "1", "AVAILABLE", SimpleState.AVAILABLE, "10"),
    ("Gent Zuid", "BE*BEC*E041503001", "2", "AVAILABLE", SimpleState.AVAILABLE, "10"),
    ("Gent Zuid", "BE*BEC*E041503002", "1", "RESERVED", SimpleState.UNAVAILABLE, "10"),
]


# --- acceptance 1: the specification's example, as an array and as a paged envelope


def test_the_example_served_as_an_array_gives_exactly_its_connectors(feed: FeedServer) -> None:
    feed.serve(FeedResponse(json.dumps([EXAMPLE]).encode(), content_type=JSON))
    with ocpi_rig(feed.url("/locations")) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert rig.holder.latest is not None
        snapshot = rig.holder.latest.snapshot
        assert connector_states(snapshot) == EXAMPLE_STATES
        assert snapshot.device_count == 2
        (station,) = snapshot.stations
        assert (station.address, station.latitude, station.longitude) == (
            "F.Rooseveltlaan 3A, 9000 Gent",
            51.047599,
            3.729944,
        )
        labels = {"station": "Gent Zuid", "device": "BE*BEC*E041503002", "connector": "1", "speed": "10"}
        assert rig.sample("chargy_connector_state", **labels, chargy_connector_state="unavailable") == 1
        assert rig.sample("chargy_connector_detailed_state_info", **labels, state="RESERVED") == 1
        assert rig.sample("chargy_connector_max_power_watts", **{k: labels[k] for k in labels if k != "speed"}) == (
            220 * 16 * 3
        )


def test_the_example_served_as_a_paged_envelope_gives_exactly_its_connectors(feed: FeedServer) -> None:
    pages = [render_ocpi([EXAMPLE], form="envelope"), render_ocpi([], form="envelope")]
    with ocpi_rig(serve_pages(feed, pages)) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert rig.holder.latest is not None
        assert connector_states(rig.holder.latest.snapshot) == EXAMPLE_STATES
    assert [path for path, _ in feed.requests] == ["/ocpi", "/ocpi?offset=1"]
    assert feed.requests[0][1]["Accept"].startswith("application/json")


def test_the_example_alone_and_the_other_official_examples_parse() -> None:
    assert connector_states(parse_ocpi((EXAMPLES / "location_example.json").read_bytes())) == EXAMPLE_STATES
    for name in (
        "location_example_uc2_destination_charger.json",
        "location_example_parking_garage_opening_hours.json",
    ):
        snapshot = parse_ocpi((EXAMPLES / name).read_bytes())
        assert snapshot.connector_count >= 1, name
    for name in (  # publish: false, and nothing else
        "location_example_uc3_destination_charger_not_published.json",
        "location_example_uc4_limited_visibility.json",
    ):
        with pytest.raises(FeedError) as raised:
            parse_ocpi((EXAMPLES / name).read_bytes())
        assert raised.value.outcome is Outcome.EMPTY, name


# --- acceptance 2: a generated network in 3 gzip pages; the bbox filter


def test_a_generated_network_in_three_gzip_pages_gives_every_connector_state(feed: FeedServer) -> None:
    url = serve_pages(feed, ocpi_pages(NETWORK.locations, 3), gzip_pages=True)
    with ocpi_rig(url) as rig:
        result = rig.refresher.refresh_once()
        assert result.outcome is Outcome.SUCCESS, result.reason
        assert rig.holder.latest is not None
        assert rig.holder.latest.snapshot.stations == NETWORK.truth.stations
        assert_serves(rig.metrics(), NETWORK.truth)
    assert len(feed.requests) == 3


def test_planned_and_removed_evses_and_unpublished_locations_are_absent() -> None:
    published = [location for location in NETWORK.locations if location["publish"]]
    absent = [
        evse["uid"]
        for location in published
        for evse in location["evses"]  # type: ignore[attr-defined]
        if evse["status"] in ("PLANNED", "REMOVED")
    ]
    assert len(absent) > 10 and len(published) < len(NETWORK.locations)
    snapshot = parse_ocpi(render_ocpi(NETWORK.locations))
    raw_states = {connector.raw_state for _, _, connector in snapshot.connectors()}
    assert not raw_states & {"PLANNED", "REMOVED"}
    assert len(snapshot.stations) == len(published)
    evses = sum(len(location["evses"]) for location in published)  # type: ignore[arg-type,misc]
    assert snapshot.device_count == evses - len(absent)


def test_the_bbox_keeps_exactly_the_stations_inside_it(feed: FeedServer) -> None:
    box = BoundingBox(4.5, 51.5, 5.5, 52.5)
    inside = tuple(
        station
        for station in NETWORK.truth.stations
        if station.latitude is not None
        and station.longitude is not None
        and box.holds(station.latitude, station.longitude)
    )
    assert 0 < len(inside) < len(NETWORK.truth.stations) / 2
    feed.serve(FeedResponse(gzipped(render_ocpi(NETWORK.locations)), content_type="application/gzip"))
    config = load_config(["--feed.format", "ocpi", "--feed.bbox", "4.5,51.5,5.5,52.5", "check", "/nl.json.gz"], {})
    options = OcpiOptions(max_bytes=MAX_BYTES, bbox=config.feed_bbox)
    with Rig(feed.url("/nl.json.gz"), max_bytes=MAX_BYTES, parse=partial(parse_ocpi, options=options)) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert rig.holder.latest is not None
        kept = rig.holder.latest.snapshot.stations
    # Names are labelled within what is kept: a name shared only with a station outside the box loses its id.
    assert [replace(station, name="") for station in kept] == [replace(station, name="") for station in inside]
    assert [station.name for station in kept] == relabelled(inside)


def relabelled(stations: tuple[Station, ...]) -> list[str]:
    """The truth's labels, as the rule gives them among these stations only."""
    named = [(station.name.partition(" (LOC")[0], station.name.partition(" (")[2].rstrip(")")) for station in stations]
    counts = Counter(name for name, _ in named)
    return [name if counts[name] == 1 else f"{name} ({location_id})" for name, location_id in named]


def test_the_operator_filter_keeps_the_named_parties() -> None:
    options = OcpiOptions(operators=frozenset({"NL*ABC", "BE*BEC"}))
    snapshot = parse_ocpi(render_ocpi(NETWORK.locations), options)
    published = [location for location in NETWORK.locations if location["publish"]]
    expected = tuple(
        station
        for station, location in zip(NETWORK.truth.stations, published, strict=True)
        if f"{location['country_code']}*{location['party_id']}" in options.operators
    )
    assert 0 < len(expected) < len(published)
    assert [station.name for station in snapshot.stations] == relabelled(expected)
    assert [replace(station, name="") for station in snapshot.stations] == [replace(s, name="") for s in expected]


# --- acceptance 3: the shapes real feeds take


def test_a_myfah_shaped_zip_with_a_byte_order_mark_parses() -> None:
    body = zipped(render_ocpi(SMALL.locations, form="wrapped", bom=True), name="GR.IDRO.dynamic.data.latest.json")
    assert body.startswith(b"PK")
    assert parse_ocpi(body).stations == SMALL.truth.stations


def test_a_myfah_shaped_zip_served_over_http_parses(feed: FeedServer) -> None:
    body = zipped(render_ocpi(SMALL.locations, form="wrapped", bom=True))
    feed.serve(FeedResponse(body, content_type="application/zip"))
    with ocpi_rig(feed.url("/latest.json.zip")) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), SMALL.truth)


@pytest.mark.parametrize(
    "body",
    [
        render_ocpi(SMALL.locations, bom=True),
        render_ocpi(SMALL.locations, form="envelope"),
        gzipped(render_ocpi(SMALL.locations, form="envelope")),
        gzipped(b"\n".join(ocpi_pages(SMALL.locations, 4))),
        b"".join(gzipped(page) for page in ocpi_pages(SMALL.locations, 4)),  # one gzip member a page
    ],
    ids=["array-with-bom", "envelope", "gzip-envelope", "gzip-pages", "gzip-members"],
)
def test_every_shape_gives_the_same_snapshot(body: bytes) -> None:
    assert parse_ocpi(body).stations == SMALL.truth.stations


def test_duplicate_location_ids_keep_the_latest_and_count_an_issue() -> None:
    older = dict(EXAMPLE, name="Old name", last_updated="2015-01-01T00:00:00Z")
    newer = dict(EXAMPLE, name="New name", last_updated="2016-01-01T00:00:00+00:00")
    for listed in ([older, newer], [newer, older]):
        snapshot = parse_ocpi(json.dumps(listed).encode())
        assert [station.name for station in snapshot.stations] == ["New name"]
        assert snapshot.issues == {"duplicate_location": 1}


def test_a_shared_name_labels_every_station_of_it_with_its_id() -> None:
    other = dict(EXAMPLE, id="LOC2")
    third = dict(EXAMPLE, id="LOC3", name="Elsewhere")
    snapshot = parse_ocpi(json.dumps([EXAMPLE, other, third]).encode())
    assert [station.name for station in snapshot.stations] == ["Gent Zuid (LOC1)", "Gent Zuid (LOC2)", "Elsewhere"]


def test_series_are_keyed_on_identity_not_list_order() -> None:
    shuffled = list(reversed(SMALL.locations))
    first, second = parse_ocpi(render_ocpi(SMALL.locations)), parse_ocpi(render_ocpi(shuffled))
    assert sorted(connector_states(first)) == sorted(connector_states(second))


def test_power_from_voltage_and_amperage_single_phase_and_dc() -> None:
    connectors = [
        {"id": "1", "power_type": "AC_1_PHASE", "max_voltage": 230, "max_amperage": 32},
        {"id": "2", "power_type": "DC", "max_voltage": 920, "max_amperage": 500, "max_electric_power": 350000},
        {"id": "3", "power_type": "AC_3_PHASE"},
    ]
    location = dict(EXAMPLE, evses=[{"uid": "u", "status": "CHARGING", "connectors": connectors}])
    snapshot = parse_ocpi(json.dumps([location]).encode())
    assert [(c.name, c.speed, c.state) for _, _, c in snapshot.connectors()] == [
        ("1", "7", SimpleState.CHARGING),
        ("2", "350", SimpleState.CHARGING),
        ("3", "0", SimpleState.CHARGING),
    ]
    assert snapshot.issues == {"invalid_power": 1}
    (device,) = snapshot.stations[0].devices
    assert device.name == "u"  # no evse_id: the uid


# Negative, non-finite and overflowing figures, as numbers and as text. A bare NaN, Infinity or 1e999 is
# not JSON: the whole document is refused as invalid_json, so non-finite figures come as text.
BAD_FIGURES = ["-7400", "-0.5", '"-7400"', '"NaN"', '"inf"', '"-Infinity"', '"1e999"', '"-1e999"']


@pytest.mark.parametrize("figure", BAD_FIGURES)
@pytest.mark.parametrize("field", ["max_electric_power", "max_voltage", "max_amperage"])
def test_a_negative_or_non_finite_power_is_0_and_counted(field: str, figure: str) -> None:
    good = {"max_electric_power": None, "max_voltage": "230", "max_amperage": "32"}
    fields = dict(good, **{field: figure})
    if field == "max_electric_power":
        fields = {field: figure}
    connector = ", ".join(f'"{name}": {value}' for name, value in fields.items() if value is not None)
    evse = (
        f'{{"uid": "u", "status": "AVAILABLE", "connectors": [{{"id": "1", "power_type": "AC_1_PHASE", {connector}}}]}}'
    )
    location = json.dumps(dict(EXAMPLE, evses=[])).replace('"evses": []', f'"evses": [{evse}]')
    snapshot = parse_ocpi(f"[{location}]".encode())
    ((_, _, parsed),) = snapshot.connectors()
    assert (parsed.max_power_kw, parsed.speed) == (0.0, "0")
    assert snapshot.issues == {"invalid_power": 1}


def test_a_bad_max_electric_power_falls_back_to_voltage_and_amperage() -> None:
    connectors = [
        {"id": "1", "power_type": "AC_1_PHASE", "max_electric_power": -7400, "max_voltage": 230, "max_amperage": 32}
    ]
    location = dict(EXAMPLE, evses=[{"uid": "u", "status": "AVAILABLE", "connectors": connectors}])
    snapshot = parse_ocpi(json.dumps([location]).encode())
    ((_, _, parsed),) = snapshot.connectors()
    assert parsed.max_power_kw == 230 * 32 / 1000 and snapshot.issues == {}


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [("90.000001", "6.1"), ("-90.000001", "6.1"), ("49.6", "180.000001"), ("49.6", "-180.000001"),
     ("NaN", "6.1"), ("49.6", "inf"), ("49.6", None), (None, "6.1"), ("north", "6.1")],
)  # fmt: skip
def test_a_coordinate_out_of_range_on_either_axis_keeps_the_station_without_them(
    latitude: str | None, longitude: str | None
) -> None:
    coordinates = {axis: value for axis, value in (("latitude", latitude), ("longitude", longitude)) if value}
    location = dict(EXAMPLE, coordinates=coordinates)
    snapshot = parse_ocpi(json.dumps([location]).encode())
    assert [(s.latitude, s.longitude) for s in snapshot.stations] == [(None, None)]
    assert snapshot.issues == {"invalid_coordinates": 1}


@pytest.mark.parametrize(("latitude", "longitude"), [("90", "180"), ("-90", "-180"), (-90, 180)])
def test_coordinates_on_the_edges_of_the_globe_are_kept(latitude: str | float, longitude: str | float) -> None:
    location = dict(EXAMPLE, coordinates={"latitude": latitude, "longitude": longitude})
    snapshot = parse_ocpi(json.dumps([location]).encode())
    assert [(s.latitude, s.longitude) for s in snapshot.stations] == [(float(latitude), float(longitude))]
    assert "invalid_coordinates" not in snapshot.issues


def test_an_unknown_status_counts_as_unknown_and_is_kept() -> None:
    location = dict(EXAMPLE, evses=[{"uid": "u", "status": "out_of_order", "connectors": [{"id": "1"}]}])
    snapshot = parse_ocpi(json.dumps([location]).encode())
    ((_, _, connector),) = snapshot.connectors()
    assert (connector.raw_state, connector.state) == ("OUT_OF_ORDER", SimpleState.UNKNOWN)
    assert snapshot.issues["unknown_state"] == 1


# --- acceptance 4: broken chains, OCPI errors and hostile JSON fail; the last good snapshot stays


def _break_the_chain(feed: FeedServer, kind: str) -> None:
    """The feed at /ocpi, its chain of pages broken."""
    page = render_ocpi(SMALL.locations[:5], form="envelope")
    if kind == "another host":
        link = f'<http://localhost:{feed.url().split(":")[2].split("/")[0]}/ocpi?offset=1>; rel="next"'
        feed.serve_path("/ocpi", FeedResponse(page, content_type=JSON, headers={"Link": link}))
    elif kind == "a loop":
        feed.serve_path("/ocpi", FeedResponse(page, content_type=JSON, headers={"Link": '</ocpi?p=1>; rel="next"'}))
        feed.serve_path("/ocpi?p=1", FeedResponse(page, content_type=JSON, headers={"Link": '</ocpi>; rel="next"'}))
    else:  # more pages than the limit of 3
        for number in range(5):
            here = "/ocpi" if number == 0 else f"/ocpi?p={number}"
            headers = {"Link": f'</ocpi?p={number + 1}>; rel="next"'}
            feed.serve_path(here, FeedResponse(page, content_type=JSON, headers=headers))


@pytest.mark.parametrize("kind", ["another host", "a loop", "too many pages"])
def test_a_broken_page_chain_fails_and_keeps_the_last_good_snapshot(feed: FeedServer, kind: str) -> None:
    with ocpi_rig(serve_pages(feed, ocpi_pages(SMALL.locations, 2)), max_pages=3) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        published = rig.holder.latest
        _break_the_chain(feed, kind)
        result = rig.refresher.refresh_once()
        assert result.outcome is Outcome.BROKEN_PAGING, result.reason
        assert rig.holder.latest is published
        assert_serves(rig.metrics(), SMALL.truth)
        assert rig.sample("chargy_feed_up") == 0
        assert rig.sample("chargy_feed_refreshes_total", outcome="broken_paging") == 1


def _deep(depth: int) -> bytes:
    return b'[{"id": "X", "evses": ' + b"[" * depth + b"]" * depth + b"}]"


HOSTILE = {
    "status code 2001": (
        json.dumps({"data": [], "status_code": 2001, "status_message": "Invalid parameters"}).encode(),
        Outcome.OCPI_ERROR,
        "status_code is 2001, a client error, not 1000",
    ),
    "status code after the data": (
        json.dumps({"data": [EXAMPLE], "status_code": 3000}).encode(),
        Outcome.OCPI_ERROR,
        "3000",
    ),
    "nested deeper than the bound": (_deep(MAX_DEPTH + 1), Outcome.FORBIDDEN_JSON, "deeper"),
    "a depth bomb": (_deep(5_000_000), Outcome.FORBIDDEN_JSON, "deeper"),
    "a gzip depth bomb": (gzip.compress(_deep(9_000_000)), Outcome.FORBIDDEN_JSON, "deeper"),
    "a string over the span bound": (
        b'[{"id": "' + b"a" * (MAX_SPAN_BYTES + 1) + b'"}]',
        Outcome.FORBIDDEN_JSON,
        "spans",
    ),
    "too many values in a Location": (
        b'[{"id": "X", "evses": [' + b"1," * MAX_LOCATION_VALUES + b"1]}]",
        Outcome.FORBIDDEN_JSON,
        "values",
    ),
    "truncated": (render_ocpi(SMALL.locations)[:-100], Outcome.INVALID_JSON, "not well-formed"),
    "truncated gzip": (gzipped(render_ocpi(SMALL.locations))[:-100], Outcome.INVALID_JSON, "corrupt"),
    "an HTML page": (b"<!DOCTYPE html><html><body>Login</body></html>", Outcome.NOT_OCPI, "HTML"),
    "the Chargy KML": (render_kml(generate_network(3)), Outcome.NOT_OCPI, "XML"),
    "JSON that is not Locations": (b'{"hello": "world"}', Outcome.NOT_OCPI, "hello"),
    "a zip of two files": (b"", Outcome.NOT_OCPI, "2 files"),
    "empty": (b"", Outcome.EMPTY, "empty"),
}


def _two_file_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("a.json", "[]")
        writer.writestr("b.json", "[]")
    return archive.getvalue()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_bad_and_hostile_json_fails_and_keeps_the_last_good_snapshot(feed: FeedServer, case: str) -> None:
    body, outcome, reason = HOSTILE[case]
    if case == "a zip of two files":
        body = _two_file_zip()
    feed.serve(FeedResponse(render_ocpi(SMALL.locations), content_type=JSON))
    with ocpi_rig(feed.url("/locations")) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        published = rig.holder.latest
        feed.serve(FeedResponse(body, content_type=JSON))
        result = rig.refresher.refresh_once()
        assert result.outcome is outcome, result.reason
        assert reason in result.reason
        assert rig.holder.latest is published
        assert_serves(rig.metrics(), SMALL.truth)
        assert rig.sample("chargy_feed_up") == 0


def test_larger_than_max_bytes_once_decompressed_fails_and_keeps_the_last_good_snapshot(feed: FeedServer) -> None:
    good = render_ocpi(SMALL.locations)
    max_bytes = 2 * len(good)
    feed.serve(FeedResponse(gzipped(good), content_type="application/gzip"))
    parse = partial(parse_ocpi, options=OcpiOptions(max_bytes=max_bytes))
    with Rig(feed.url("/locations.json.gz"), paged=True, max_bytes=max_bytes, parse=parse) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        published = rig.holder.latest
        feed.serve(FeedResponse(gzipped(b"\n".join([good] * 3)), content_type="application/gzip"))
        result = rig.refresher.refresh_once()
        assert result.outcome is Outcome.TOO_LARGE and f"limit of {max_bytes} bytes" in result.reason
        assert rig.holder.latest is published


@pytest.mark.parametrize("form", ["envelope", "wrapped", "gzip"])
def test_a_document_cut_anywhere_is_invalid_json(form: str) -> None:
    whole = render_ocpi([EXAMPLE], form="array" if form == "gzip" else form)
    body = gzipped(whole) if form == "gzip" else whole
    for cut in range(1, len(body)):
        with pytest.raises(FeedError) as raised:
            parse_ocpi(body[:cut])
        assert raised.value.outcome is Outcome.INVALID_JSON, (cut, raised.value.reason)


def test_too_many_connectors_is_too_large() -> None:
    body = render_ocpi(NETWORK.locations)
    bounds = SizeBounds(NETWORK.truth.connector_count)
    assert parse_ocpi(body, OcpiOptions(bounds=bounds)).connector_count == NETWORK.truth.connector_count
    with pytest.raises(FeedError) as raised:
        parse_ocpi(body, OcpiOptions(bounds=SizeBounds(NETWORK.truth.connector_count - 1)))
    assert raised.value.outcome is Outcome.TOO_LARGE and "--max-connectors" in raised.value.reason


def test_filtered_out_locations_count_against_no_connector_bound() -> None:
    options = OcpiOptions(bounds=SizeBounds(1_000), bbox=BoundingBox(4.5, 51.5, 4.8, 51.8))
    snapshot = parse_ocpi(render_ocpi(NETWORK.locations), options)
    assert 0 < snapshot.connector_count < 1_000 < NETWORK.truth.connector_count


# --- configuration


def test_feed_settings() -> None:
    config = load_config(["--feed.format", "OCPI", "--feed.url", "https://h/locations"], {})
    assert (config.feed_format, config.feed_url, config.kml_url) == (
        "ocpi",
        "https://h/locations",
        "https://h/locations",
    )
    assert load_config([], {"FEED_URL": "/a.json", "KML_URL": "/a.json"}).feed_url == "/a.json"
    assert load_config([], {"KML_URL": "/b.kml"}).feed_url == "/b.kml"
    assert load_config([], {}).feed_format == "chargy-kml"
    config = load_config(
        ["--feed.format", "ocpi", "--feed.operator", "nl*abc, BE*BEC"],
        {"CHARGY_FEED_BBOX": "1,2,3,4", "FEED_URL": "/x.json"},
    )
    assert config.feed_operators == frozenset({"NL*ABC", "BE*BEC"})
    assert config.feed_bbox == BoundingBox(1, 2, 3, 4)


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--feed.url", "/a.json", "--kml-url", "/b.kml"], {}, "--feed.url and --kml-url name two different feeds"),
        ([], {"FEED_URL": "/a.json", "KML_URL": "/b.kml"}, "FEED_URL and KML_URL name two different feeds"),
        (["--feed.format", "json"], {}, "--feed.format 'json': not one of chargy-kml, ocpi"),
        (["--feed.bbox", "1,2,3,4"], {}, "--feed.bbox filters an OCPI, DATEX II or OICP feed"),
        (["--feed.format", "ocpi", "--feed.bbox", "1,2,3"], {}, "four numbers"),
        (["--feed.format", "ocpi", "--feed.bbox", "1,60,3,50"], {}, "south first"),
        (["--feed.format", "ocpi", "--feed.operator", "NLABC"], {}, "as in NL*ABC,BE*BEC"),
        (["--demo", "--feed.url", "/a.json"], {}, "--demo and --feed.url exclude each other"),
        (["--feed.format", "ocpi"], {}, "--feed.format ocpi needs the feed's URL"),
        (["--demo"], {"CHARGY_FEED_FORMAT": "ocpi"}, "--demo serves a generated Chargy KML network: not with"),
    ],
)
def test_bad_feed_settings_are_one_line(argv: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(argv, environ)
    assert message in str(raised.value)


def test_generated_networks_hold_what_the_truth_says() -> None:
    network: OcpiNetwork = generate_ocpi_network(200, seed=2)
    assert parse_ocpi(render_ocpi(network.locations)).stations == network.truth.stations


# --- the service and the check command


def test_the_service_serves_an_ocpi_network_with_the_seed_labels(feed: FeedServer) -> None:
    url = serve_pages(feed, ocpi_pages(SMALL.locations, 3), gzip_pages=True)
    with ServiceProcess(["--feed.format", "ocpi", "--feed.url", url]) as service:
        service.wait_for_refreshes("success", 1)
        assert_serves(service.metrics(), SMALL.truth)
        assert service.sample("chargy_feed_up") == 1


@pytest.mark.usefixtures("restore_logging")
def test_check_reads_an_ocpi_feed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "GR.IDRO.dynamic.data.latest.json.zip"
    path.write_bytes(zipped(render_ocpi(SMALL.locations, form="wrapped", bom=True)))
    assert main(["--feed.format", "ocpi", "check", str(path)]) == 0
    report = capsys.readouterr().out
    assert f"stations: {len(SMALL.truth.stations)}" in report
    assert f"connectors: {SMALL.truth.connector_count}" in report
    assert main(["check", str(path)]) == 1  # the KML parser: not KML
    assert "not_kml" in capsys.readouterr().out


def test_ocpi_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "ocpi.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/ocpi.py", "--locations", "300", "--bbox", "4,51,6,53", "--output", str(output)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["feed"]["locations"] == 300
    whole, city = report["cases"].values()
    assert whole["outcome"] == city["outcome"] == "success"
    assert whole["connectors"] == report["feed"]["connectors_published"] > city["connectors"]
    assert whole["peak_rss_mib"] > 0 and "| whole network | `success` |" in result.stdout


@pytest.mark.parametrize(
    ("outcome", "step"),
    [
        (Outcome.BROKEN_PAGING, "Report it to the provider"),
        (Outcome.OCPI_ERROR, "--feed.url"),
        (Outcome.INVALID_JSON, "--feed.format is ocpi"),
        (Outcome.FORBIDDEN_JSON, "--feed.format is ocpi"),
        (Outcome.NOT_OCPI, "--feed.format is ocpi"),
    ],
)
def test_each_ocpi_failure_names_what_to_do(outcome: Outcome, step: str) -> None:
    advice = advise(outcome, "a reason")
    assert advice is not None and step in advice.next_step and "bug" not in advice.cause


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _replaced(document: object, path: tuple[str | int, ...], value: object) -> object:
    if not path:
        return value
    copied = json.loads(json.dumps(document))
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return copied


def test_any_field_of_any_type_parses_or_fails_as_a_feed_error() -> None:
    """Every member of the example, at every depth, replaced by values of every JSON type: the parser
    either reads the document or refuses it with an outcome, never with another exception."""
    values = [None, True, 0, -5, 1e308, 1.5, "x", "", "²", [], {}, [1], {"a": 1}]
    filtered = OcpiOptions(bbox=BoundingBox(0, 40, 10, 60), operators=frozenset({"BE*BEC"}))
    issues: set[str] = set()
    for path in _paths(EXAMPLE):
        for value in values:
            document = _replaced(EXAMPLE, path, value)
            for body in (json.dumps([document]), json.dumps({"data": [document], "status_code": value})):
                for options in (OcpiOptions(), filtered):
                    with contextlib.suppress(FeedError):
                        issues |= set(parse_ocpi(body.encode(), options).issues)
    assert issues <= set(OCPI_ISSUE_KINDS) and len(issues) >= 5


# The outcomes only an OCPI feed can have.
OCPI_OUTCOMES = (
    Outcome.INVALID_JSON,
    Outcome.FORBIDDEN_JSON,
    Outcome.NOT_OCPI,
    Outcome.OCPI_ERROR,
    Outcome.BROKEN_PAGING,
)


def test_the_ocpi_page_lists_every_ocpi_parse_issue_and_outcome() -> None:
    page = (Path(__file__).parent.parent / "docs" / "ocpi.md").read_text()
    for kind, meaning in OCPI_ISSUE_KINDS.items():
        assert f"| `{kind}` | {meaning} |" in page
    outcomes = page.split("## Outcomes of OCPI feeds\n", 1)[1].split("\n## ", 1)[0]
    for outcome in OCPI_OUTCOMES:
        assert f"| `{outcome.value}` | `ocpi`: " in outcomes


def test_the_pages_together_stay_within_max_bytes(feed: FeedServer) -> None:
    pages = ocpi_pages(SMALL.locations, 4)
    max_bytes = sum(len(page) for page in pages[:2]) + 10
    url = serve_pages(feed, pages)
    parse = partial(parse_ocpi, options=OcpiOptions(max_bytes=max_bytes))
    with Rig(url, paged=True, max_bytes=max_bytes, parse=parse) as rig:
        result = rig.refresher.refresh_once()
    assert result.outcome is Outcome.TOO_LARGE and f"limit of {max_bytes} bytes" in result.reason
    assert len(feed.requests) == 3  # the third page broke the limit: the fourth was never asked for


def test_a_slow_later_page_ends_the_fetch_at_the_fetch_timeout(feed: FeedServer) -> None:
    url = serve_pages(feed, ocpi_pages(SMALL.locations, 3))
    feed.serve_path("/ocpi?offset=2", FeedResponse(b"[]", content_type=JSON, hold=True))
    with ocpi_rig(url, timeout_s=1.0) as rig:
        result = rig.refresher.refresh_once()
    assert result.outcome is Outcome.TIMEOUT and "not read in full within 1 s" in result.reason


def test_a_single_gzip_encoded_answer_is_inflated_by_the_parser_within_max_bytes(feed: FeedServer) -> None:
    body = render_ocpi(NETWORK.locations)
    feed.serve(FeedResponse(body, content_type=JSON, gzip=True))
    max_bytes = len(body) - 1  # the compressed body is far smaller: only the parser can tell
    parse = partial(parse_ocpi, options=OcpiOptions(max_bytes=max_bytes))
    with Rig(feed.url("/nl.json"), paged=True, max_bytes=max_bytes, parse=parse) as rig:
        fetched = rig.source.fetch(Validators())
        assert fetched.body is not None and fetched.body.startswith(b"\x1f\x8b")
        result = rig.refresher.refresh_once()
        assert result.outcome is Outcome.TOO_LARGE and f"limit of {max_bytes} bytes" in result.reason
    feed.serve(FeedResponse(render_ocpi(SMALL.locations), content_type=JSON, gzip=True))
    with ocpi_rig(feed.url("/small.json")) as rig:
        assert rig.refresher.refresh_once().outcome is Outcome.SUCCESS
        assert_serves(rig.metrics(), SMALL.truth)


def test_an_ocpi_error_does_not_repeat_the_providers_message() -> None:
    body = json.dumps({"data": [], "status_code": 2002, "status_message": f"token {TEST_API_KEY} unknown"})
    with pytest.raises(FeedError) as raised:
        parse_ocpi(body.encode())
    assert raised.value.outcome is Outcome.OCPI_ERROR and TEST_API_KEY not in raised.value.reason


def test_a_next_link_that_is_not_a_url_is_broken_paging_not_a_path_that_grows(feed: FeedServer) -> None:
    """`<ht tp://x y>` would be joined as a relative path, quoted, and grow at every hop until the deadline."""
    feed.serve_path(
        "/ocpi",
        FeedResponse(
            ocpi_pages(SMALL.locations, 1)[0], content_type=JSON, headers={"Link": '<ht tp://a b>; rel="next"'}
        ),
    )
    with ocpi_rig(feed.url("/ocpi")) as rig:
        result = rig.refresher.refresh_once()
    assert result.outcome is Outcome.BROKEN_PAGING and "not a URL" in result.reason
    assert len(feed.requests) == 1
