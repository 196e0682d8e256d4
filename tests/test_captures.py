"""Published files in the Chargy feed's own shape (tests/data/README.md says where each comes from), read
exactly: the truth is read apart from the parser, with the standard library's XML reader and json, and
for one file written out by hand."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import parse_kml
from tests.truth import SIMPLE_STATE_OF_RAW

CAPTURES = Path(__file__).parent / "data" / "chargy-kml"
KML = "{http://www.opengis.net/kml/2.2}"
Row = tuple[str, str, float, float, str, str, int, float, str, str]


def independent_rows(document: bytes) -> list[Row]:
    """Every connector as a row, read with ElementTree and json, as FEED.md describes the file."""
    rows: list[Row] = []
    for placemark in ElementTree.fromstring(document).iter(f"{KML}Placemark"):
        longitude, latitude = (
            float(axis) for axis in placemark.findtext(f"{KML}Point/{KML}coordinates", "").split(",")[:2]
        )
        for data in placemark.iter(f"{KML}Data"):
            if data.get("name") != "chargingdevice":
                continue
            device = json.loads(data.findtext(f"{KML}value", ""))
            for connector in device["connectors"]:
                raw = connector["description"]
                rows.append(
                    (placemark.findtext(f"{KML}name", ""), placemark.findtext(f"{KML}address", ""), latitude,
                     longitude, device["name"], connector["name"], connector["connector"],
                     float(connector["maxchspeed"]), raw, SIMPLE_STATE_OF_RAW[raw])
                )  # fmt: skip
    return rows


def parsed_rows(document: bytes) -> list[Row]:
    snapshot = parse_kml(document)
    assert snapshot.issues == {}
    return [
        (s.name, s.address, s.latitude or 0.0, s.longitude or 0.0, d.name, c.name, c.position, c.max_power_kw,
         c.raw_state, c.state.value)
        for s, d, c in snapshot.connectors()
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["valid_station_with_one_charging_point", "broken_mismatched_connector_count"])
def test_a_published_file_is_read_exactly(name: str) -> None:
    document = (CAPTURES / f"{name}.kml").read_bytes()
    assert parsed_rows(document) == independent_rows(document)


def test_the_published_file_holds_what_it_says() -> None:
    """Written from reading the file, not from any code: its one placemark, device and two connectors."""
    document = (CAPTURES / "valid_station_with_one_charging_point.kml").read_bytes()
    station = ("PLACEHOLDER_NAME", "PLACEHOLDER_ADDRESS", 49.8, 5.8, "CP5007")
    assert parsed_rows(document) == [
        (*station, "CP5007 - 1", 1, 22.0, "AVAILABLE", "available"),
        (*station, "CP5007 - 2", 2, 22.0, "AVAILABLE", "available"),
    ]


def test_cpnum_disagreeing_with_the_connectors_listed_is_not_an_issue() -> None:
    """CPnum says 3, the device lists 2 (FEED.md: they can disagree): the connectors listed are the truth."""
    document = (CAPTURES / "broken_mismatched_connector_count.kml").read_bytes()
    (cpnum,) = [data for data in ElementTree.fromstring(document).iter(f"{KML}Data") if data.get("name") == "CPnum"]
    assert cpnum.findtext(f"{KML}value") == "3"
    assert [row[5] for row in parsed_rows(document)] == ["CP5008 - 1", "CP5008 - 2"]


def test_a_published_file_whose_only_device_is_broken_json_is_refused_not_empty() -> None:
    document = (CAPTURES / "broken_mismatched_connector_count_charging_point.kml").read_bytes()
    with pytest.raises(json.JSONDecodeError):
        independent_rows(document)
    with pytest.raises(FeedError) as refused:
        parse_kml(document)
    assert refused.value.outcome is Outcome.EMPTY
    assert "invalid_device_json: 1" in str(refused.value)
