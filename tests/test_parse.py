"""The parser against every variant FEED.md describes, and against hostile documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otel_chargy.generator import generate_network, render_kml
from otel_chargy.labels import MAX_LABEL_CHARS
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import ISSUE_KINDS, SizeBounds, parse_kml
from tests.truth import SIMPLE_STATE_OF_RAW

DOCS = Path(__file__).parent.parent / "docs"
KML_NS = ' xmlns="http://www.opengis.net/kml/2.2"'


def placemark(name: str, *devices: str, coordinates: str = "6.2,49.6", address: str = "1 rue X") -> str:
    data = "".join(f'<Data name="chargingdevice"><value>{device}</value></Data>' for device in devices)
    return (
        f"<Placemark><name>{name}</name><address>{address}</address>"
        f'<ExtendedData><Data name="CPnum"><value>{len(devices)}</value></Data>{data}</ExtendedData>'
        f"<Point><coordinates>{coordinates}</coordinates></Point></Placemark>"
    )


def document(
    *placemarks: str, namespace: str = KML_NS, declaration: str = '<?xml version="1.0" encoding="UTF-8"?>'
) -> str:
    return f"{declaration}<kml{namespace}><Document><name>Stations</name>{''.join(placemarks)}</Document></kml>"


def device(name: str = "CP1", *connectors: dict[str, object], list_name: str = "connectors") -> str:
    entries = list(connectors) or [
        {"id": 1, "name": f"{name} - 1", "maxchspeed": 22.0, "connector": 1, "description": "AVAILABLE"}
    ]
    return json.dumps({"id": 10, "name": name, "numberOfConnectors": len(entries), list_name: entries}).replace(
        "&", "&amp;"
    )


def parse(text: str, encoding: str = "utf-8") -> Snapshot:
    return parse_kml(text.encode(encoding))


def only_connector(snapshot: Snapshot):  # type: ignore[no-untyped-def]
    connectors = list(snapshot.connectors())
    assert len(connectors) == 1
    return connectors[0]


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("namespace", [True, False])
def test_generated_network_is_read_back_exactly(legacy: bool, namespace: bool) -> None:
    network = generate_network(200, seed=3)
    snapshot = parse_kml(render_kml(network, legacy=legacy, namespace=namespace))
    assert snapshot.stations == network.stations
    assert snapshot.issues == {}
    # The generator's states come from the product's table: check them against the tests' own.
    states = [(c.raw_state, c.state.value) for _, _, c in snapshot.connectors()]
    assert {raw for raw, _ in states} == set(SIMPLE_STATE_OF_RAW)
    assert all(SIMPLE_STATE_OF_RAW[raw] == simple for raw, simple in states)


def test_station_fields_are_read() -> None:
    station, device_, connector = only_connector(
        parse(
            document(
                placemark("Schuttrange - Parking Eglise", device("CP2417"), address="12 rue A, L-5360 Schuttrange")
            )
        )
    )
    assert (station.name, station.address) == ("Schuttrange - Parking Eglise", "12 rue A, L-5360 Schuttrange")
    assert (station.longitude, station.latitude) == (6.2, 49.6)
    assert (device_.name, connector.name, connector.position, connector.max_power_kw) == (
        "CP2417",
        "CP2417 - 1",
        1,
        22.0,
    )
    assert connector.speed == "22"


def test_legacy_list_without_names_gets_derived_names() -> None:
    connectors = [
        {"maxchspeed": 22.08, "connector": 2, "description": "CHARGING"},
        {"maxchspeed": 22, "description": "AVAILABLE"},
    ]
    snapshot = parse(document(placemark("S", device("CP9", *connectors, list_name="chargingPointList"))))
    assert [connector.name for _, _, connector in snapshot.connectors()] == ["CP9 - 2"]
    # The second entry has no position: its place in the list (2) is used, which collides with the first.
    assert snapshot.issues == {"duplicate_connector": 1}


def test_position_falls_back_to_place_in_list() -> None:
    connectors = [{"maxchspeed": 11, "description": "AVAILABLE"}, {"maxchspeed": 11, "description": "AVAILABLE"}]
    snapshot = parse(document(placemark("S", device("CP9", *connectors, list_name="chargingPointList"))))
    assert [c.name for _, _, c in snapshot.connectors()] == ["CP9 - 1", "CP9 - 2"]


def test_device_without_name_uses_its_id_and_without_either_is_skipped() -> None:
    entry = {"maxchspeed": 22, "connector": 1, "description": "AVAILABLE"}
    with_id = json.dumps({"id": 77, "connectors": [entry]})
    without = json.dumps({"connectors": [entry]})
    snapshot = parse(document(placemark("S", with_id, without)))
    assert [(d.name, c.name) for _, d, c in snapshot.connectors()] == [("77", "77 - 1")]
    assert snapshot.issues == {"device_without_name": 1}


def test_json_in_cdata() -> None:
    snapshot = parse(document(placemark("S", f"<![CDATA[{device('CP5')}]]>")))
    assert only_connector(snapshot)[2].name == "CP5 - 1"


def test_several_devices_in_one_placemark() -> None:
    snapshot = parse(document(placemark("Super", device("CP1"), device("CP2"), device("CP3"))))
    assert [d.name for d in snapshot.stations[0].devices] == ["CP1", "CP2", "CP3"]


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "windows-1252", "UTF-16", "ISO-8859-15"])
def test_any_declared_encoding(encoding: str) -> None:
    text = document(
        placemark("Pétange - Gare", device("CP1")), declaration=f'<?xml version="1.0" encoding="{encoding}"?>'
    )
    assert parse(text, encoding).stations[0].name == "Pétange - Gare"


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [("6.1,49.6", (49.6, 6.1)), ("  6.1,49.6,0 \n", (49.6, 6.1)), ("\n\t6.1,49.6,120.5\n", (49.6, 6.1))],
)
def test_coordinates_longitude_first_with_optional_altitude(coordinates: str, expected: tuple[float, float]) -> None:
    station = parse(document(placemark("S", device(), coordinates=coordinates))).stations[0]
    assert (station.latitude, station.longitude) == expected


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [("180,90", (90.0, 180.0)), ("-180,-90", (-90.0, -180.0)), ("-0.0,0", (0.0, -0.0))],
)
def test_coordinates_on_the_edges_of_the_globe_are_kept(coordinates: str, expected: tuple[float, float]) -> None:
    snapshot = parse(document(placemark("S", device(), coordinates=coordinates)))
    assert (snapshot.stations[0].latitude, snapshot.stations[0].longitude) == expected
    assert snapshot.issues == {}


# Each axis out of range on its own (the other one valid), just past each edge, and non-finite.
@pytest.mark.parametrize(
    "coordinates",
    [
        "",
        "abc",
        "6.1",
        "200,100",
        "6.1,90.001",
        "6.1,-90.001",
        "180.001,49.6",
        "-180.001,49.6",
        "6.1,nan",
        "nan,49.6",
        "6.1,inf",
        "-inf,49.6",
    ],
)
def test_bad_coordinates_keep_the_station_and_count(coordinates: str) -> None:
    snapshot = parse(document(placemark("S", device(), coordinates=coordinates)))
    assert (snapshot.stations[0].latitude, snapshot.stations[0].longitude) == (None, None)
    assert snapshot.connector_count == 1
    assert snapshot.issues == {"invalid_coordinates": 1}


@pytest.mark.parametrize(("raw", "simple"), SIMPLE_STATE_OF_RAW.items())
def test_state_table(raw: str, simple: str) -> None:
    entry = {"name": "C", "maxchspeed": 22, "connector": 1, "description": raw}
    snapshot = parse(document(placemark("S", device("CP1", entry))))
    connector = only_connector(snapshot)[2]
    assert (connector.raw_state, connector.state.value) == (raw, simple)
    assert snapshot.issues == {}


def test_state_case_and_space_are_normalised() -> None:
    entry = {"name": "C", "maxchspeed": 22, "connector": 1, "description": "  charging \n"}
    connector = only_connector(parse(document(placemark("S", device("CP1", entry)))))[2]
    assert (connector.raw_state, connector.state) == ("CHARGING", SimpleState.CHARGING)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("", ""), ("Blocked", "BLOCKED"), (None, ""), ("working", "WORKING"), ("UNKNOWN", "UNKNOWN")],
)
def test_unknown_or_empty_state_is_unknown_kept_and_counted(raw: str | None, normalised: str) -> None:
    entry = {"name": "C", "maxchspeed": 22, "connector": 1, "description": raw}
    snapshot = parse(document(placemark("S", device("CP1", entry))))
    connector = only_connector(snapshot)[2]
    assert (connector.raw_state, connector.state) == (normalised, SimpleState.UNKNOWN)
    assert snapshot.issues == {"unknown_state": 1}
    assert snapshot.unknown_raw_states() == {normalised: 1}


def test_broken_device_json_is_skipped_and_the_rest_used() -> None:
    snapshot = parse(document(placemark("S1", "{not json", device("CP2")), placemark("S2", "[1, 2]", device("CP3"))))
    assert [d.name for _, d, _ in snapshot.connectors()] == ["CP2", "CP3"]
    assert snapshot.issues == {"invalid_device_json": 2}


def test_broken_connector_entries_are_skipped_or_repaired() -> None:
    connectors = ["text", {"name": "A", "maxchspeed": "fast", "connector": 1, "description": "AVAILABLE"}]
    snapshot = parse(document(placemark("S", device("CP1", *connectors))))  # type: ignore[arg-type]
    connector = only_connector(snapshot)[2]
    assert (connector.name, connector.max_power_kw, connector.speed) == ("A", 0.0, "0")
    assert snapshot.issues == {"invalid_connector": 1, "invalid_power": 1}


# JSON literals for maxchspeed: negative, non-finite (Python's json reads NaN and Infinity), overflowing.
@pytest.mark.parametrize(
    "power", ["-22", "-0.5", '"-22"', "NaN", '"NaN"', "Infinity", "-Infinity", '"inf"', "1e999", '"1e999"', "1e6"]
)
def test_a_negative_or_non_finite_power_is_0_and_counted(power: str) -> None:
    entry = f'{{"name": "C", "maxchspeed": {power}, "connector": 1, "description": "AVAILABLE"}}'
    snapshot = parse(document(placemark("S", f'{{"id": 1, "name": "CP1", "connectors": [{entry}]}}')))
    connector = only_connector(snapshot)[2]
    assert (connector.max_power_kw, connector.speed) == (0.0, "0")
    assert snapshot.issues == {"invalid_power": 1}


@pytest.mark.parametrize(("power", "kw"), [("0", 0.0), ("22.08", 22.08), ('"150"', 150.0), ("999999.5", 999999.5)])
def test_a_power_in_range_is_kept(power: str, kw: float) -> None:
    entry = f'{{"name": "C", "maxchspeed": {power}, "connector": 1, "description": "AVAILABLE"}}'
    snapshot = parse(document(placemark("S", f'{{"id": 1, "name": "CP1", "connectors": [{entry}]}}')))
    assert only_connector(snapshot)[2].max_power_kw == kw
    assert snapshot.issues == {}


def test_placemark_without_name_is_skipped_and_counted() -> None:
    snapshot = parse(document(placemark("", device("CP1")), placemark("S2", device("CP2"))))
    assert [s.name for s in snapshot.stations] == ["S2"]
    assert snapshot.issues == {"placemark_without_name": 1}


def documented_kinds(page: str, heading: str) -> set[str]:
    """The `kind`s of the table under a heading of a page in docs/."""
    section = (DOCS / page).read_text().split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_issue_kinds_are_all_documented() -> None:
    """A document with every fault the parser repairs: each kind it counts is in docs/faults.md's table,
    and the table lists no kind the parser never counts."""
    unnamed = json.dumps({"connectors": [{"name": "X", "maxchspeed": 22, "connector": 1, "description": "AVAILABLE"}]})
    twice = {"name": "T", "maxchspeed": 22, "connector": 1, "description": "AVAILABLE"}
    snapshot = parse(
        document(
            placemark("", device("CP1")),
            placemark("Bad place", device("CP2"), coordinates="abc"),
            placemark("Broken", "{not json", unnamed, device("CP3", "text", twice, twice)),  # type: ignore[arg-type]
            placemark(
                "Odd", device("CP4", {"name": "O", "maxchspeed": "fast", "connector": 1, "description": "BLOCKED"})
            ),
            placemark("Odd", device("CP5")),
            placemark("L" * (MAX_LABEL_CHARS + 1), device("CP6", {**twice, "name": "T - \udc00"})),
        )
    )
    counted = set(snapshot.issues)
    assert counted == {
        "placemark_without_name", "invalid_coordinates", "invalid_device_json", "device_without_name",
        "invalid_connector", "invalid_power", "duplicate_connector", "duplicate_station", "unknown_state",
        "long_text", "invalid_text",
    }  # fmt: skip
    assert documented_kinds("faults.md", "## Parse issues") == counted == set(ISSUE_KINDS)


def test_each_issue_is_counted_as_often_as_it_is_met() -> None:
    """Every kind twice in one document: each is counted 2, not once per kind."""
    unnamed = json.dumps({"connectors": [{"name": "X", "maxchspeed": 22, "connector": 1, "description": "AVAILABLE"}]})
    twice = {"name": "T", "maxchspeed": 22, "connector": 1, "description": "AVAILABLE"}
    odd = {"name": "O", "maxchspeed": "fast", "connector": 1, "description": "BLOCKED"}
    placemarks = [
        placemark(name, "{not json", unnamed, device(f"{name}-CP", "text", twice, twice, odd), coordinates="abc")  # type: ignore[arg-type]
        for name in ("A", "B")
    ]
    unnamed_placemarks = [placemark("", device("CP9")), placemark("", device("CP8"))]
    again = [placemark("A", device("CP7")), placemark("B", device("CP6"))]
    snapshot = parse(document(*placemarks, *unnamed_placemarks, *again))
    assert snapshot.issues == {
        "placemark_without_name": 2, "invalid_coordinates": 2, "invalid_device_json": 2, "device_without_name": 2,
        "invalid_connector": 2, "invalid_power": 2, "duplicate_connector": 2, "duplicate_station": 2,
        "unknown_state": 2,
    }  # fmt: skip


def test_a_duplicate_connector_is_skipped_and_the_ones_after_it_kept() -> None:
    entries = [
        {"name": name, "maxchspeed": 22, "connector": n, "description": "AVAILABLE"}
        for n, name in enumerate(["A", "A", "B", "A", "C"], 1)
    ]
    snapshot = parse(document(placemark("S", device("CP1", *entries))))
    assert [c.name for _, _, c in snapshot.connectors()] == ["A", "B", "C"]
    assert snapshot.issues == {"duplicate_connector": 2}


@pytest.mark.parametrize(
    ("positions", "read"),
    [([2, 1], [2, 1]), ([1, 1], [1, 1]), ([0, -3], [1, 2]), ([True, "2"], [1, 2]), ([3, 0], [3, 2])],
)
def test_a_connector_keeps_its_position_unless_it_is_not_a_whole_number_from_1(
    positions: list[object], read: list[int]
) -> None:
    """FEED.md: a device may list its second connector first; a position that cannot be one is the place
    in the list instead."""
    entries = [
        {"name": f"C{n}", "maxchspeed": 22, "connector": position, "description": "AVAILABLE"}
        for n, position in enumerate(positions)
    ]
    snapshot = parse(document(placemark("S", device("CP1", *entries))))
    assert [c.position for _, _, c in snapshot.connectors()] == read


def test_a_placemark_missing_its_name_address_or_point_elements() -> None:
    """FEED.md: every field is optional. No <address>: an empty address; no <Point>: no coordinates,
    counted; no <name> at all: skipped and counted."""
    data = f'<ExtendedData><Data name="chargingdevice"><value>{device("CP1")}</value></Data></ExtendedData>'
    snapshot = parse(
        document(
            f"<Placemark><name>Bare</name>{data}</Placemark>",
            f"<Placemark><address>1 rue X</address>{data.replace('CP1', 'CP2')}</Placemark>",
        )
    )
    assert [(s.name, s.address, s.latitude, s.longitude) for s in snapshot.stations] == [("Bare", "", None, None)]
    assert snapshot.issues == {"invalid_coordinates": 1, "placemark_without_name": 1}


def test_the_same_device_and_connector_names_at_two_stations_are_two_connectors() -> None:
    """A duplicate is a connector whose station, device and name were all seen (docs/faults.md)."""
    snapshot = parse(document(placemark("S1", device("CP1")), placemark("S2", device("CP1"))))
    assert [(s.name, d.name, c.name) for s, d, c in snapshot.connectors()] == [
        ("S1", "CP1", "CP1 - 1"),
        ("S2", "CP1", "CP1 - 1"),
    ]
    assert snapshot.issues == {}


def test_duplicate_station_is_merged_into_the_first_and_counted() -> None:
    snapshot = parse(
        document(
            placemark("S", device("CP1"), address="1 first street", coordinates="6.1,49.5"),
            placemark("T", device("CP2")),
            placemark("S", device("CP3"), device("CP1"), address="2 second street", coordinates="6.3,49.7"),
        )
    )
    assert [station.name for station in snapshot.stations] == ["S", "T"]
    first = snapshot.stations[0]
    assert (first.address, first.latitude, first.longitude) == ("1 first street", 49.5, 6.1)
    # The second placemark's devices join the first's; its CP1 connector was already seen there.
    assert [(d.name, len(d.connectors)) for d in first.devices] == [("CP1", 1), ("CP3", 1), ("CP1", 0)]
    assert snapshot.issues == {"duplicate_station": 1, "duplicate_connector": 1}


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<kml><Document><Placemark><name>&lol3;</name></Placemark></Document></kml>"""
QUADRATIC = (
    '<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY a "'
    + "x" * 50_000
    + '">]><kml><Document><Placemark><name>'
    + "&a;" * 1000
    + "</name></Placemark></Document></kml>"
)
EXTERNAL_ENTITY = """<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<kml><Document><Placemark><name>&xxe;</name></Placemark></Document></kml>"""
EXTERNAL_DTD = """<?xml version="1.0"?><!DOCTYPE kml SYSTEM "http://127.0.0.1:1/evil.dtd">
<kml><Document><Placemark><name>S</name></Placemark></Document></kml>"""
PARAMETER_ENTITY = """<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/x">%remote;]>
<kml/>"""


@pytest.mark.parametrize(
    "text", [BILLION_LAUGHS, QUADRATIC, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY],
    ids=["billion-laughs", "quadratic", "external-entity", "external-dtd", "parameter-entity"],
)  # fmt: skip
def test_hostile_documents_are_refused(text: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse(text)
    assert caught.value.outcome is Outcome.FORBIDDEN_XML


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (document(placemark("S", device()))[:-20].encode(), Outcome.INVALID_XML),
        (b"<kml><Document><Placemark></Document></kml>", Outcome.INVALID_XML),
        (b"", Outcome.INVALID_XML),
        (
            document(placemark("S\xff", device()), declaration='<?xml version="1.0" encoding="US-ASCII"?>')
            .encode()
            .replace(b"S\xc3\xbf", b"S\xff\xfe"),
            Outcome.INVALID_XML,
        ),
        (b'{"stations": []}', Outcome.NOT_KML),
        (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><hr></body></html>", Outcome.NOT_KML),
        (b"<html><body><p>Maintenance<br></body></html>", Outcome.NOT_KML),
        (b'<?xml version="1.0"?><rss><channel/></rss>', Outcome.NOT_KML),
        # Cut before their first element is whole: told apart by their first bytes only.
        (b"<!DOCTYPE html PUBLIC", Outcome.NOT_KML),
        (b"<!doctype html><", Outcome.NOT_KML),
        (b"<HTML", Outcome.NOT_KML),
        (b"X<kml><Document>", Outcome.NOT_KML),
        (b" \r\n\t<kml><Document><Placem", Outcome.INVALID_XML),
        (b"\xef\xbb\xbf<kml><Document><Placem", Outcome.INVALID_XML),
        (b"\xef\xbb\xbf\n<!-- cut", Outcome.INVALID_XML),
    ],
    ids=[
        "truncated",
        "mismatched",
        "empty-body",
        "bad-ascii",
        "json",
        "html-doctype",
        "html",
        "other-xml",
        "cut-in-html-doctype",
        "cut-after-html-doctype",
        "cut-upper-case-html",
        "text-then-kml",
        "cut-after-whitespace",
        "cut-after-bom",
        "cut-comment-after-bom",
    ],
)
def test_unusable_documents(body: bytes, outcome: Outcome) -> None:
    with pytest.raises(FeedError) as caught:
        parse_kml(body)
    assert caught.value.outcome is outcome


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<!DOCTYPE html><html><body><hr></body></html>", "the document is an HTML page, not KML"),
        (b'{"stations": []}', "the document is not XML"),
    ],
)
def test_a_page_that_is_not_kml_says_what_it_is(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_kml(body)
    assert str(caught.value) == reason


def attributes(count: int, prefix: str = "a") -> str:
    return " ".join(f'{prefix}{n}="1"' for n in range(count))


# Each refusal's reason as the operator reads it (logs, the status page, the refresh span).
@pytest.mark.parametrize(
    ("body", "outcome", "reason"),
    [
        (b'<!DOCTYPE kml SYSTEM "x"><kml/>', Outcome.FORBIDDEN_XML, "the document declares a DTD, which is refused"),
        (b"<rss><channel/></rss>", Outcome.NOT_KML, "the root element is <rss>, not <kml>"),
        (b"<kml><Document></Document></kml>", Outcome.EMPTY, "the document holds no usable placemark"),
        (document(placemark("S", "{not json")).encode(), Outcome.EMPTY,
         "the document's 1 stations hold no usable connector (invalid_device_json: 1)"),
        (document(placemark("S", "{not json"), placemark("", "[]"), placemark("T")).encode(), Outcome.EMPTY,
         "the document's 2 stations hold no usable connector (invalid_device_json: 1, placemark_without_name: 1)"),
        (document(placemark("S"), placemark("T")).encode(), Outcome.EMPTY,
         "the document's 2 stations hold no usable connector"),
        (b"<kml><Document>", Outcome.INVALID_XML,
         "the document is not well-formed XML: no element found: line 1, column 15"),
        (f"<kml {attributes(101)}/>".encode(), Outcome.FORBIDDEN_XML,
         "over 100 attributes on an element or 40000 in all"),
    ],
    ids=["dtd", "root", "no-placemark", "no-connector", "no-connector-issues", "no-connector-no-issue", "cut",
         "attributes"],
)  # fmt: skip
def test_each_refusal_says_why(body: bytes, outcome: Outcome, reason: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_kml(body)
    assert (caught.value.outcome, str(caught.value)) == (outcome, reason)


def test_attributes_are_bounded_on_each_element_and_in_all() -> None:
    """At most 100 on an element (exactly 100 is read) and --max-connectors in all (exactly that is read)."""
    entry = {"name": "C", "maxchspeed": 22, "connector": 1, "description": "AVAILABLE"}
    at_the_bound = document(placemark("S", device("CP1", entry))).replace("<Document>", f"<Document {attributes(100)}>")
    assert parse_kml(at_the_bound.encode()).connector_count == 1
    over = at_the_bound.replace("<Document ", '<Document b="1" ')
    with pytest.raises(FeedError, match="over 100 attributes on an element"):
        parse_kml(over.encode())
    # The placemark's two Data attributes (name="CPnum", name="chargingdevice") count too: 98 + 100 + 2.
    in_all = document(placemark("S", device("CP1", entry))).replace("<Document>", f"<Document {attributes(98)}>")
    spread = in_all.replace("<Placemark>", f"<Placemark {attributes(100, 'p')}>")
    bounds = SizeBounds(connectors=200)
    assert parse_kml(spread.encode(), bounds).connector_count == 1
    with pytest.raises(FeedError, match="or 200 in all"):
        parse_kml(spread.replace("<Point>", '<Point q="1">').encode(), bounds)


@pytest.mark.parametrize("declaration", ['<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0"?>', ""])
def test_bytes_that_are_not_utf8_in_a_utf8_document_become_replacement_characters(declaration: str) -> None:
    text = document(placemark("Gare \xff", device(), address="Rue \xff"), declaration=declaration)
    body = text.encode().replace("\xff".encode(), b"\xff\xfe")  # two bytes that begin no UTF-8 character
    snapshot = parse_kml(body)
    assert (snapshot.stations[0].name, snapshot.stations[0].address) == ("Gare \ufffd\ufffd", "Rue \ufffd\ufffd")
    assert snapshot.issues == {"invalid_text": 4}


def test_a_utf8_replacement_character_the_feed_wrote_is_no_issue() -> None:
    snapshot = parse(document(placemark("Gare \ufffd", device())))
    assert snapshot.stations[0].name == "Gare \ufffd" and not snapshot.issues


def test_a_lone_surrogate_escape_in_device_json_becomes_a_replacement_character() -> None:
    connector = {"id": 1, "name": "CP1 - \udc00", "maxchspeed": 22.0, "connector": 1, "description": "AVAILABLE"}
    snapshot = parse(document(placemark("S", device("CP1", connector))))
    assert only_connector(snapshot)[2].name == "CP1 - \ufffd" and snapshot.issues == {"invalid_text": 1}


def test_every_label_is_cut_at_its_bound_and_counted() -> None:
    long = "x" * (MAX_LABEL_CHARS + 1)
    connector = {"id": 1, "name": "C" + long, "maxchspeed": 22.0, "connector": 1, "description": "A" + long}
    snapshot = parse(document(placemark("S" + long, device("D" + long, connector), address="R" + long)))
    station, device_read, connector_read = next(iter(snapshot.connectors()))
    texts = [station.name, station.address, device_read.name, connector_read.name, connector_read.raw_state]
    assert [len(text) for text in texts] == [MAX_LABEL_CHARS] * 5 and all(text.endswith("…") for text in texts)
    assert [text[0] for text in texts] == ["S", "R", "D", "C", "A"]
    assert snapshot.issues == {"long_text": 5, "unknown_state": 1}
    exact = "y" * MAX_LABEL_CHARS
    assert parse(document(placemark(exact, device()))).stations[0].name == exact


def test_kml_without_placemarks_is_empty() -> None:
    with pytest.raises(FeedError) as caught:
        parse(document())
    assert caught.value.outcome is Outcome.EMPTY


def test_kml_whose_placemarks_are_all_unusable_is_empty_and_counts_its_parse_issues() -> None:
    with pytest.raises(FeedError) as caught:
        parse(document(placemark("", device()), placemark("", device())))
    assert caught.value.outcome is Outcome.EMPTY
    assert caught.value.issues == {"placemark_without_name": 2}


@pytest.mark.parametrize(
    ("devices", "counted"),
    [((), ""), (("{not json",), "(invalid_device_json: 2)"), ((device("CP1", list_name="other"),), "")],
    ids=["no-device-json", "invalid-device-json", "devices-without-connectors"],
)
def test_kml_whose_placemarks_hold_no_connector_is_empty(devices: tuple[str, ...], counted: str) -> None:
    """A feed whose placemarks lost their device JSON still parses as KML: it is not a network without connectors."""
    with pytest.raises(FeedError) as caught:
        parse(document(placemark("S1", *devices), placemark("S2", *devices)))
    assert caught.value.outcome is Outcome.EMPTY
    assert "2 stations hold no usable connector" in caught.value.reason
    assert counted in caught.value.reason
    assert caught.value.issues == ({"invalid_device_json": 2} if counted else {})


def test_one_station_with_a_connector_is_enough() -> None:
    snapshot = parse(document(placemark("S1", "{not json"), placemark("S2", device())))
    assert snapshot.connector_count == 1 and len(snapshot.stations) == 2


def test_max_connectors_bounds_the_network() -> None:
    network = generate_network(300)
    body = render_kml(network)
    assert parse_kml(body, SizeBounds(network.connector_count)).connector_count == network.connector_count
    with pytest.raises(FeedError) as caught:
        parse_kml(body, SizeBounds(network.connector_count - 1))
    assert caught.value.outcome is Outcome.TOO_LARGE
    assert "--max-connectors" in caught.value.reason


def test_counts_by_state_are_per_station_and_for_the_network() -> None:
    """Two stations: 2 available, 1 charging and 1 fault; then 1 available and 2 charging. Counted by hand."""

    def entry(position: int, raw: str) -> dict[str, object]:
        return {"name": f"C{position}", "maxchspeed": 22, "connector": position, "description": raw}

    first = device("CP1", *(entry(n, raw) for n, raw in enumerate(["AVAILABLE", "CHARGING", "FAULT", "AVAILABLE"], 1)))
    second = device("CP2", *(entry(n, raw) for n, raw in enumerate(["PREPARING", "AVAILABLE", "CHARGING"], 1)))
    snapshot = parse(document(placemark("S1", first), placemark("S2", second)))

    def counts(available: int, charging: int, unavailable: int) -> dict[str, int]:
        return {**{state.value: 0 for state in SimpleState}, "available": available, "charging": charging,
                "unavailable": unavailable}  # fmt: skip

    assert [{s.value: n for s, n in station.count_by_state().items()} for station in snapshot.stations] == [
        counts(2, 1, 1),
        counts(1, 2, 0),
    ]
    assert {s.value: n for s, n in snapshot.count_by_state().items()} == counts(3, 3, 1)


@pytest.mark.parametrize(("extra", "refused"), [(991, False), (992, True)])
def test_a_placemark_holds_at_most_1000_elements(extra: int, refused: bool) -> None:
    """placemark() writes 9 elements inside the Placemark (name, address, ExtendedData, 2 Data, 2 value,
    Point, coordinates): with 991 more it holds exactly 1,000."""
    body = document(placemark("S", device())).replace("</Placemark>", "<x/>" * extra + "</Placemark>").encode()
    if refused:
        with pytest.raises(FeedError, match="a placemark holds over 1000 elements") as caught:
            parse_kml(body)
        assert caught.value.outcome is Outcome.FORBIDDEN_XML
    else:
        assert parse_kml(body).connector_count == 1


@pytest.mark.parametrize(("extra", "refused"), [(9_997, False), (9_998, True)])
def test_at_most_10000_elements_stand_outside_placemarks(extra: int, refused: bool) -> None:
    """document() writes 3 elements outside placemarks (kml, Document, name): with 9,997 more, 10,000."""
    body = document(placemark("S", device())).replace("<Placemark>", "<x/>" * extra + "<Placemark>").encode()
    if refused:
        with pytest.raises(FeedError, match="over 10000 elements stand outside placemarks") as caught:
            parse_kml(body)
        assert caught.value.outcome is Outcome.FORBIDDEN_XML
    else:
        assert parse_kml(body).connector_count == 1


def test_a_legitimate_document_larger_than_a_span_is_read() -> None:
    """The span bounds are on one tag, text or comment and on one placemark, not on the document: a
    2 MB network, and a document whose first 100 kB are one comment, are read whole."""
    network = generate_network(2_500, seed=2)
    body = render_kml(network)
    assert len(body) > 2 * 1024 * 1024
    assert parse_kml(body).stations == network.stations
    comment = "<!--" + "c" * 100_000 + "-->"
    commented = document(placemark("S", device()), declaration=f'<?xml version="1.0"?>{comment}').encode()
    assert parse_kml(commented).connector_count == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<kml><Document><name>" + b"x" * (1024 * 1024 + 200_000) + b"</name></Document></kml>",
         "a single tag, text or comment spans over 1048576 bytes"),
        (document(placemark("S", device())).replace("</Placemark>", f"<x>{'y' * 1400}</x>" * 900 + "</Placemark>")
         .encode(), "a placemark spans over 1048576 bytes"),
    ],
    ids=["one-text", "one-placemark"],
)  # fmt: skip
def test_a_span_over_1_mib_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_kml(body)
    assert (caught.value.outcome, str(caught.value)) == (Outcome.FORBIDDEN_XML, reason)


def test_the_document_holds_at_most_6_elements_per_connector_bound() -> None:
    """--max-connectors 10 allows 60 elements: kml, Document, name, one placemark of 10 and 47 more."""
    bounds = SizeBounds(connectors=10)
    body = document(placemark("S", device()))
    assert parse_kml(body.replace("</Document>", "<x/>" * 47 + "</Document>").encode(), bounds).connector_count == 1
    with pytest.raises(FeedError) as caught:
        parse_kml(body.replace("</Document>", "<x/>" * 48 + "</Document>").encode(), bounds)
    assert (caught.value.outcome, str(caught.value)) == (Outcome.FORBIDDEN_XML, "the document holds over 60 elements")


def test_elements_nest_at_most_64_deep() -> None:
    """kml and Document are 2 deep: 62 nested elements in Document make 64."""
    body = document(placemark("S", device()))
    assert parse_kml(body.replace("</Document>", "<x>" * 62 + "</x>" * 62 + "</Document>").encode()).stations
    with pytest.raises(FeedError) as caught:
        parse_kml(body.replace("</Document>", "<x>" * 63 + "</x>" * 63 + "</Document>").encode())
    assert (caught.value.outcome, str(caught.value)) == (Outcome.FORBIDDEN_XML, "elements are nested deeper than 64")


def test_the_document_holds_at_most_half_as_many_placemarks_as_connectors_bound() -> None:
    """--max-connectors 10 allows 5 placemarks. Each here holds one attribute (its Data's name) and one
    connector, so that no other bound is reached first."""

    def bare(n: int) -> str:
        data = f'<Data name="chargingdevice"><value>{device(f"CP{n}")}</value></Data>'
        return f"<Placemark><name>S{n}</name><ExtendedData>{data}</ExtendedData></Placemark>"

    bounds = SizeBounds(connectors=10)
    assert len(parse_kml(document(*map(bare, range(5))).encode(), bounds).stations) == 5
    with pytest.raises(FeedError) as caught:
        parse_kml(document(*map(bare, range(6))).encode(), bounds)
    assert caught.value.outcome is Outcome.TOO_LARGE
    assert str(caught.value) == "the document holds over 5 placemarks or 10 connectors (--max-connectors)"


def test_a_flood_of_distinct_names_is_refused() -> None:
    """ElementTree and expat keep every name they meet: 2,000 distinct element names are refused."""
    body = ("<kml><Document>" + "".join(f"<e{n}/>" for n in range(2_000)) + "</Document></kml>").encode()
    with pytest.raises(FeedError) as caught:
        parse_kml(body)
    assert (caught.value.outcome, str(caught.value)) == (
        Outcome.FORBIDDEN_XML,
        "over 1000 distinct element or attribute names",
    )
