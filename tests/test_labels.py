"""Labels as the parsers make them: bounded, valid text, unique in the snapshot whatever the names, and
never what the usage counters follow; archives and numbers as feeds send them. In process and cheap;
tests/test_attack_parse.py plays the same attacks against the running service."""

from __future__ import annotations

import bz2
import io
import json
import zipfile

import pytest

from otel_chargy.labels import MAX_LABEL_CHARS
from otel_chargy.model import Snapshot
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import SizeBounds, parse_kml
from otel_chargy.parse_ocpi import MAX_ZIP_ENTRIES, OcpiOptions, parse_ocpi
from otel_chargy.usage import UsageTracker, connector_key
from tests.attack import device, evse, kml_body, location, ocpi_body, placemark


def labels(snapshot: Snapshot) -> list[tuple[str, str, str]]:
    return [(station.name, device.name, connector.name) for station, device, connector in snapshot.connectors()]


def test_a_suffix_never_lands_on_a_label_already_taken() -> None:
    snapshot = parse_ocpi(
        ocpi_body(
            location("1", "S", [evse("a", "AVAILABLE", ["1"])]),
            location("2", "S", [evse("a", "AVAILABLE", ["1"])]),
            location("3", "S (1)", [evse("a", "AVAILABLE", ["1"])]),
            location("4", "S (LU*ATK*1)", [evse("a", "AVAILABLE", ["1"])]),
        )
    )
    names = [station.name for station in snapshot.stations]
    assert names == ["S (LU*ATK*1) (2)", "S (2)", "S (1)", "S (LU*ATK*1)"]


def test_an_evse_suffix_never_lands_on_an_evse_id_already_taken() -> None:
    evses = [
        evse("c", "AVAILABLE", ["1"], evse_id="E (b)"),
        evse("a", "AVAILABLE", ["1"], evse_id="E"),
        evse("b", "AVAILABLE", ["1"], evse_id="E"),
    ]
    snapshot = parse_ocpi(ocpi_body(location("1", "S", evses)))
    assert [device.name for device in snapshot.stations[0].devices] == ["E (b)", "E", "E (b) (2)"]


def test_connector_keys_are_the_feeds_ids_and_unique() -> None:
    snapshot = parse_ocpi(
        ocpi_body(
            location("1", "S", [evse("a", "CHARGING", ["1"], evse_id="E")]),
            location("3", "S (1)", [evse("a", "AVAILABLE", ["1"], evse_id="E")]),
        )
    )
    keys = [connector_key(*connector) for connector in snapshot.connectors()]
    assert keys == [("('LU', 'ATK', '1')", "a", "1", ""), ("('LU', 'ATK', '3')", "a", "1", "")]


def test_every_ocpi_label_is_cut_at_its_bound_and_counted() -> None:
    long = "x" * (MAX_LABEL_CHARS + 10)
    body = ocpi_body(location("1" + long, "N" + long, [evse("U" + long, "S" + long, ["C" + long], evse_id="E" + long)]))
    snapshot = parse_ocpi(body)
    ((station, device, connector),) = snapshot.connectors()
    texts = [station.name, device.name, connector.name, connector.raw_state]
    assert all(len(text) == MAX_LABEL_CHARS and text.endswith("…") for text in texts)
    # The Location id, name, uid, evse_id, status and connector id.
    assert snapshot.issues["long_text"] == 6


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_zip_member_neither_stored_nor_deflated_is_refused_before_inflating(method: int) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=method) as writer:
        writer.writestr("locations.json", ocpi_body(location("1", "S", [evse("a", "AVAILABLE", ["1"])])))
    with pytest.raises(FeedError) as refused:
        parse_ocpi(archive.getvalue())
    assert refused.value.outcome is Outcome.NOT_OCPI and "only deflate and stored" in refused.value.reason
    assert bz2  # the codec is installed: the refusal is a choice, not a missing module


@pytest.mark.parametrize(("entries", "read"), [(MAX_ZIP_ENTRIES, True), (MAX_ZIP_ENTRIES + 1, False)])
def test_a_zip_directory_is_bounded_in_entries(entries: int, read: bool) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as writer:
        writer.writestr("locations.json", ocpi_body(location("1", "S", [evse("a", "AVAILABLE", ["1"])])))
        for number in range(entries - 1):
            writer.writestr(f"folder{number}/", b"")
    if read:
        assert parse_ocpi(archive.getvalue()).connector_count == 1
    else:
        with pytest.raises(FeedError) as refused:
            parse_ocpi(archive.getvalue())
        assert refused.value.outcome is Outcome.NOT_OCPI and f"{entries} entries" in refused.value.reason


def test_integers_past_64_bits_change_nothing_they_are_not_read_for() -> None:
    plain = location("1", "S", [evse("a", "CHARGING", ["1", "2"])])
    huge = dict(plain, registration=10**19, far=-(10**40), operator={"figures": [10**300, 2**64]})
    assert str(10**300).encode() in ocpi_body(huge)
    assert parse_ocpi(ocpi_body(huge)) == parse_ocpi(ocpi_body(plain))
    read = dict(
        plain,
        evses=[dict(evse("a", "CHARGING", [str(10**19)]), connectors=[{"id": 10**19, "max_electric_power": 10**30}])],
    )
    ((_, _, connector),) = parse_ocpi(ocpi_body(read)).connectors()
    assert (connector.name, connector.max_power_kw) == (str(10**19), 0.0)


def test_a_lone_surrogate_in_a_key_or_a_value_not_read_changes_nothing() -> None:
    plain = location("1", "S", [evse("a", "CHARGING", ["1"])])
    odd = dict(plain, description="\udc00", **{"\ud800key": "value"})
    assert json.dumps(odd).count("\\ud") == 2
    assert parse_ocpi(ocpi_body(odd)) == parse_ocpi(ocpi_body(plain))


def test_kml_connectors_are_followed_by_their_ids_not_their_names() -> None:
    """Names that move between connectors (FEED.md: a device may list "CP0212 - 2" first) move no state:
    the same connectors in the same states count no session."""

    def feed(first: str, second: str) -> bytes:
        return kml_body(placemark("S", [device(1, "CP1", [(11, first, "CHARGING"), (12, second, "AVAILABLE")])]))

    tracker = UsageTracker(max_staleness_s=900)
    for refresh, names in enumerate([("CP1 - 1", "CP1 - 2"), ("CP1 - 2", "CP1 - 1"), ("CP1 - 1", "CP1 - 2")]):
        view = tracker.observe(parse_kml(feed(*names)), refresh * 300.0, refresh * 300.0)
    assert view.stations["S"].sessions == 0 and view.network["22"].sessions == 0


def test_a_deflated_zip_member_counts_against_max_bytes_as_it_inflates() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as writer:
        writer.writestr(
            "locations.json", b" " * 3_000_000 + ocpi_body(location("1", "S", [evse("a", "AVAILABLE", ["1"])]))
        )
    assert len(archive.getvalue()) < 10_000
    with pytest.raises(FeedError) as refused:
        parse_ocpi(archive.getvalue(), OcpiOptions(max_bytes=1_000_000))
    assert refused.value.outcome is Outcome.TOO_LARGE
    assert parse_ocpi(archive.getvalue(), OcpiOptions(max_bytes=4_000_000)).connector_count == 1


def test_the_labels_of_every_connector_together_are_bounded_by_max_connectors() -> None:
    """256 characters a label, and 100 a connector on average: a feed of many connectors that all carry
    long labels costs what a real network at --max-connectors does, not a label times its connectors."""
    bounds = SizeBounds(connectors=1_000)  # 100,000 characters
    long = "x" * 250

    def feed(name: str, connectors: int) -> bytes:
        return kml_body(placemark(name, [device(1, name, [(i, f"C{i}", "AVAILABLE") for i in range(connectors)])]))

    assert parse_kml(feed(long, 180), bounds).connector_count == 180  # 180 x 513 = 92,340
    with pytest.raises(FeedError) as refused:
        parse_kml(feed(long, 200), bounds)  # 200 x 513 = 102,600
    assert refused.value.outcome is Outcome.TOO_LARGE and "over 100000" in refused.value.reason
    assert parse_kml(feed("S", 900), bounds).connector_count == 900
    location_long = location("1", long, [evse(long, "AVAILABLE", [f"C{i}" for i in range(200)])])
    with pytest.raises(FeedError) as refused:
        parse_ocpi(ocpi_body(location_long), OcpiOptions(bounds=bounds))
    assert refused.value.outcome is Outcome.TOO_LARGE
