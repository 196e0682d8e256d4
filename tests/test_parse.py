"""The parser against every variant FEED.md describes, and against hostile documents."""

from __future__ import annotations

import json

import pytest

from otel_chargy.generator import generate_network, render_kml
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import ISSUE_KINDS, SizeBounds, parse_kml

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


@pytest.mark.parametrize("coordinates", ["", "abc", "6.1", "200,100"])
def test_bad_coordinates_keep_the_station_and_count(coordinates: str) -> None:
    snapshot = parse(document(placemark("S", device(), coordinates=coordinates)))
    assert (snapshot.stations[0].latitude, snapshot.stations[0].longitude) == (None, None)
    assert snapshot.connector_count == 1
    assert snapshot.issues == {"invalid_coordinates": 1}


@pytest.mark.parametrize(
    ("raw", "simple"),
    [
        ("AVAILABLE", SimpleState.AVAILABLE),
        ("CHARGING", SimpleState.CHARGING),
        ("PREPARING", SimpleState.CHARGING),
        ("FINISHING", SimpleState.CHARGING),
        ("SUSPENDED_EV", SimpleState.CHARGING),
        ("SUSPENDED_EVSE", SimpleState.CHARGING),
        ("OCCUPIED", SimpleState.CHARGING),
        ("UNAVAILABLE", SimpleState.UNAVAILABLE),
        ("OFFLINE", SimpleState.UNAVAILABLE),
        ("FAULT", SimpleState.UNAVAILABLE),
        ("FAULTED", SimpleState.UNAVAILABLE),
        ("RESERVED", SimpleState.UNAVAILABLE),
    ],
)
def test_state_table(raw: str, simple: SimpleState) -> None:
    entry = {"name": "C", "maxchspeed": 22, "connector": 1, "description": raw}
    snapshot = parse(document(placemark("S", device("CP1", entry))))
    connector = only_connector(snapshot)[2]
    assert (connector.raw_state, connector.state) == (raw, simple)
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


def test_placemark_without_name_is_skipped_and_counted() -> None:
    snapshot = parse(document(placemark("", device("CP1")), placemark("S2", device("CP2"))))
    assert [s.name for s in snapshot.stations] == ["S2"]
    assert snapshot.issues == {"placemark_without_name": 1}


def test_issue_kinds_are_all_documented() -> None:
    assert set(ISSUE_KINDS) >= {
        "placemark_without_name", "invalid_coordinates", "invalid_device_json", "device_without_name",
        "invalid_connector", "invalid_power", "duplicate_connector", "duplicate_station", "unknown_state",
    }  # fmt: skip


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
        (document(placemark("S\xff", device())).encode().replace(b"S\xc3\xbf", b"S\xff\xfe"), Outcome.INVALID_XML),
        (b'{"stations": []}', Outcome.NOT_KML),
        (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><hr></body></html>", Outcome.NOT_KML),
        (b"<html><body><p>Maintenance<br></body></html>", Outcome.NOT_KML),
        (b'<?xml version="1.0"?><rss><channel/></rss>', Outcome.NOT_KML),
    ],
    ids=["truncated", "mismatched", "empty-body", "bad-utf8", "json", "html-doctype", "html", "other-xml"],
)
def test_unusable_documents(body: bytes, outcome: Outcome) -> None:
    with pytest.raises(FeedError) as caught:
        parse_kml(body)
    assert caught.value.outcome is outcome


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
