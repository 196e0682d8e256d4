"""OCPI as operators really publish it (issue 18): 2.1.1 fields, three-phase voltages given line to line,
EVSEs without uid, statuses outside OCPI, their own wrappers; and real operators' captures
(tests/data/ocpi-real/, provenance in tests/data/README.md) read exactly against figures computed apart
from the parser: by hand for the connectors named here, and by a separate reading of the JSON (python's
json module and the rules of docs/ocpi.md) for the totals."""

from __future__ import annotations

import json
import math
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse_ocpi import parse_ocpi
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess, command

REAL = Path(__file__).parent / "data" / "ocpi-real"


def location(*evses: dict[str, object], **fields: object) -> dict[str, object]:
    """A 2.2.1 Location of the given EVSEs (fields replace or add its members)."""
    document: dict[str, object] = {
        "country_code": "NL",
        "party_id": "ABC",
        "id": "LOC1",
        "publish": True,
        "name": "Station",
        "address": "Straat 1",
        "city": "Stad",
        "coordinates": {"latitude": "52.1", "longitude": "5.1"},
        "evses": list(evses),
        "last_updated": "2026-11-20T10:00:00Z",
    }
    return {**document, **fields}


def evse(uid: object = "E1", status: object = "AVAILABLE", **fields: object) -> dict[str, object]:
    connector = {"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE"}
    document: dict[str, object] = {
        "uid": uid,
        "status": status,
        "connectors": [{**connector, "max_electric_power": 22000}],
    }
    return {**document, **fields}


def parse(*locations: dict[str, object]) -> Snapshot:
    return parse_ocpi(json.dumps(list(locations)).encode())


def only_connector(snapshot: Snapshot) -> tuple[str, str, float, SimpleState, str]:
    ((_, device, connector),) = snapshot.connectors()
    return device.name, connector.speed, round(connector.max_power_kw * 1000, 1), connector.state, connector.raw_state


# --- acceptance 1 and 2: versions and power


def test_a_2_1_1_location_is_read_with_its_voltage_and_amperage() -> None:
    # OCPI 2.1.1: no country_code, party_id or publish; a connector's voltage and amperage, line to neutral.
    connector: dict[str, object] = {"id": "1", "standard": "IEC_62196_T2", "power_type": "AC_3_PHASE"}
    connector |= {"voltage": 230, "amperage": 16}
    location_2_1_1 = {
        "id": "L1",
        "type": "ON_STREET",
        "address": "Noordwal 6",
        "city": "'s-Hertogenbosch",
        "country": "NLD",
        "coordinates": {"latitude": "51.692144", "longitude": "5.309348"},
        "evses": [{"uid": "U1", "evse_id": "NL*NUO*E1", "status": "AVAILABLE", "connectors": [connector]}],
        "last_updated": "2021-06-23T21:39:52Z",
    }
    snapshot = parse_ocpi(json.dumps([location_2_1_1]).encode())
    assert only_connector(snapshot) == ("NL*NUO*E1", "11", 11_040.0, SimpleState.AVAILABLE, "AVAILABLE")  # 230 x 16 x 3
    assert snapshot.version == "OCPI 2.1.1" and snapshot.issues == {}


def test_a_document_mixing_versions_says_both_with_their_counts() -> None:
    old: dict[str, object] = {"id": "OLD", "type": "ON_STREET", "name": "Old", "evses": [evse("E9")]}
    snapshot = parse(location(evse("E1")), location(evse("E2"), id="LOC2", name="Other"), old)
    assert snapshot.version == "OCPI 2.2+ (2 Locations) and 2.1.1 (1 Locations)"


@pytest.mark.parametrize(
    ("volts", "amperes", "watts", "rule"),
    [
        (400, 32, 400 * 32 * math.sqrt(3), "line to line"),  # 22,170 W: the 22 kW charger it is
        (415, 32, 415 * 32 * math.sqrt(3), "line to line"),
        (380, 16, 380 * 16 * math.sqrt(3), "line to line"),
        (230, 32, 230 * 32 * 3, "line to neutral"),  # 22,080 W
        (240, 16, 240 * 16 * 3, "line to neutral"),
    ],
)
def test_three_phase_power_reads_the_voltage_as_it_is_given(volts: int, amperes: int, watts: float, rule: str) -> None:
    connector = {"id": "1", "power_type": "AC_3_PHASE", "max_voltage": volts, "max_amperage": amperes}
    snapshot = parse(location(evse(connectors=[connector])))
    assert only_connector(snapshot)[2] == pytest.approx(watts, abs=0.1)
    assert [key for key in snapshot.power_rules if rule in key] == list(snapshot.power_rules)


def test_400_volts_at_32_amperes_without_a_power_serves_22170_watts() -> None:
    connector = {"id": "1", "power_type": "AC_3_PHASE", "max_voltage": 400, "max_amperage": 32}
    assert only_connector(parse(location(evse(connectors=[connector]))))[2] == pytest.approx(22_170, rel=0.01)


def test_max_electric_power_comes_first_and_a_figure_under_1000_is_kilowatts() -> None:
    given = {"id": "1", "power_type": "AC_3_PHASE", "max_voltage": 400, "max_amperage": 32, "max_electric_power": 11000}
    in_kw = {"id": "2", "power_type": "AC_3_PHASE", "max_voltage": 400, "max_amperage": 32, "max_electric_power": 22}
    snapshot = parse(location(evse(connectors=[given, in_kw])))
    assert [c.max_power_kw for _, _, c in snapshot.connectors()] == [11.0, 22.0]
    assert snapshot.issues == {"power_in_kilowatts": 1}


# --- statuses: case, OCPP's names, unknown


@pytest.mark.parametrize(
    ("status", "state", "issue"),
    [
        ("AVAILABLE", SimpleState.AVAILABLE, None),
        ("available", SimpleState.AVAILABLE, "nonstandard_state"),
        ("Charging ", SimpleState.CHARGING, "nonstandard_state"),
        ("preparing", SimpleState.CHARGING, "nonstandard_state"),
        ("SuspendedEV", SimpleState.CHARGING, "nonstandard_state"),
        ("SUSPENDED_EVSE", SimpleState.CHARGING, "nonstandard_state"),
        ("Faulted", SimpleState.UNAVAILABLE, "nonstandard_state"),
        ("OUTOFORDER", SimpleState.UNAVAILABLE, None),
        ("UNKNOWN", SimpleState.UNKNOWN, None),
        ("WORKING", SimpleState.UNKNOWN, "unknown_state"),
        ("", SimpleState.UNKNOWN, "unknown_state"),
        (None, SimpleState.UNKNOWN, "unknown_state"),
        (7, SimpleState.UNKNOWN, "unknown_state"),
    ],
)
def test_a_status_is_read_case_insensitively_with_ocpp_names_and_else_unknown(
    status: object, state: SimpleState, issue: str | None
) -> None:
    snapshot = parse(location(evse(status=status)))
    assert only_connector(snapshot)[3] is state
    assert snapshot.issues == ({issue: 1} if issue else {})


def test_unknown_statuses_are_counted_by_value() -> None:
    evses = [evse(f"E{n}", "WORKING") for n in range(4)] + [evse("E9", "UNKNOWN"), evse("E8", "AVAILABLE")]
    snapshot = parse(location(*evses))
    assert snapshot.unknown_raw_states() == {"WORKING": 4, "UNKNOWN": 1}
    assert snapshot.count_by_state()[SimpleState.UNKNOWN] == 5


# --- acceptance 4: identity


def test_an_evse_with_evse_id_but_uid_null_is_served_and_one_with_neither_is_skipped_and_counted() -> None:
    snapshot = parse(
        location(
            evse(None, evse_id="NL*ABC*E100"),
            evse("", id=42),  # OCPI 2.1.1 receivers' numeric ids
            evse(None),  # nothing names it
            {"status": "AVAILABLE"},  # no connectors, no name
        )
    )
    assert [device.name for device in snapshot.stations[0].devices] == ["NL*ABC*E100", "42"]
    assert snapshot.issues == {"evse_without_uid": 2, "invalid_evse": 2}


def test_a_document_of_evses_nothing_identifies_is_refused_naming_them_and_their_count() -> None:
    locations = [location(*(evse(None) for _ in range(3)), id=f"L{n}") for n in range(30)]
    with pytest.raises(FeedError) as refused:
        parse(*locations)
    assert refused.value.outcome is Outcome.EMPTY
    assert refused.value.reason.endswith(": 90 EVSEs without uid, evse_id or id")
    assert refused.value.issues == {"invalid_evse": 90}


def test_numeric_ids_are_read_as_text() -> None:
    numeric = location(evse(5000326, evse_id=5000326, connectors=[{"id": 1, "max_electric_power": 50000}]), id=50106)
    snapshot = parse(numeric)
    ((_, device, connector),) = snapshot.connectors()
    assert (device.name, connector.name, connector.position) == ("5000326", "1", 1)


def test_a_location_without_id_is_kept_when_its_party_and_name_or_its_evses_identify_it() -> None:
    by_name = location(evse("A"), id=None, name="Marktplein")
    by_evses = location(evse("B"), evse("C"), party_id="", name="", address="Kerkstraat 2")
    del by_evses["id"]
    nothing = location(evse(None), party_id="", name="")
    del nothing["id"]
    snapshot = parse(by_name, by_evses, nothing)
    assert [station.name for station in snapshot.stations] == ["Marktplein", "Kerkstraat 2"]
    assert snapshot.issues == {"location_without_id": 2, "invalid_location": 1}


# --- acceptance 5: wrappers


@pytest.mark.parametrize(
    "wrap",
    [
        lambda items: {"locations": items},
        lambda items: {"data": {"locations": {"data": items}}},
        lambda items: {"next": "https://example.org/locations?page=2", "items": items},
        lambda items: {"content": items, "totalPages": 1, "last": True},
    ],
    ids=["locations", "data-locations-data", "next-items", "spring-page"],
)
def test_operators_wrappers_are_read(wrap: object) -> None:
    items = [location(evse("E1")), location(evse("E2"), id="LOC2", name="Other")]
    body = json.dumps(wrap(items)).encode()  # type: ignore[operator]
    assert parse_ocpi(body).connector_count == 2


@pytest.mark.parametrize(
    ("document", "keys"),
    [
        ({"results": [location(evse())]}, "results"),
        ({"data": {"sites": [location(evse())], "count": 1}}, "count, sites"),
        ({"payload": {"locations": "none"}}, "payload"),
    ],
)
def test_an_unknown_wrapper_is_refused_as_not_ocpi_naming_its_keys(document: object, keys: str) -> None:
    with pytest.raises(FeedError) as refused:
        parse_ocpi(json.dumps(document).encode())
    assert refused.value.outcome is Outcome.NOT_OCPI
    assert f"(keys: {keys})" in refused.value.reason


def test_wrappers_within_wrappers_share_the_bound_of_one_location() -> None:
    """An attacker's tree of wrappers, each under the bound on its own, together far over it: refused
    before it is held, not read whole into memory."""
    leaf = {"padding": list(range(10_000))}
    middle = {key: leaf for key in ("data", "locations", "Locations", "items", "content")}
    document = {key: middle for key in ("data", "locations", "Locations", "items", "content")}
    with pytest.raises(FeedError) as refused:
        parse_ocpi(json.dumps(document).encode())
    assert refused.value.outcome is Outcome.FORBIDDEN_JSON


# --- acceptance 7: real operators' captures


def read_real(name: str) -> Snapshot:
    return parse_ocpi((REAL / name).read_bytes())


def by_state(snapshot: Snapshot) -> dict[str, int]:
    return {state.value: count for state, count in snapshot.count_by_state().items() if count}


def speeds(snapshot: Snapshot) -> dict[str, int]:
    return dict(sorted(Counter(c.speed for _, _, c in snapshot.connectors()).items(), key=lambda item: int(item[0])))


# The figures of a separate reading of each capture (python's json and the rules of docs/ocpi.md,
# nothing of otel_chargy): stations, connectors by state, total power in W, connectors by speed, version
# and parse issues.
REAL_FIGURES = {
    "fastned-2.1.1.json.gz": (
        106,
        {"available": 45, "charging": 2, "unknown": 608},
        39_186_070,
        {"22": 8, "37": 77, "43": 89, "44": 2, "50": 413, "120": 1, "174": 65},
        "OCPI 2.1.1",
        {},
    ),
    "evio-2.2.json.gz": (
        21,
        {"available": 19, "charging": 3, "unavailable": 7},
        1_064_290,
        {"3": 1, "11": 1, "22": 24, "103": 2, "311": 1},
        "OCPI 2.2+",
        {},
    ),
    "sitronics-2.2.1.json.gz": (
        62,
        {"available": 141, "charging": 1, "unavailable": 3, "unknown": 7},
        11_048_000,
        {"0": 1, "22": 29, "50": 49, "60": 13, "90": 5, "100": 1, "120": 49, "150": 5},
        "OCPI 2.2+",
        {"invalid_evse": 11, "invalid_power": 1},
    ),
    "toger-2.2.1.json.gz": (
        44,
        {"available": 88},
        2_112,
        {"0": 87, "2": 1},
        "OCPI 2.2+",
        {"invalid_power": 87, "evse_without_uid": 1, "invalid_coordinates": 3},
    ),
    "ev24-2.2.1.json.gz": (
        11,
        {"available": 20},
        434_000,
        {"11": 2, "22": 16, "30": 2},
        "OCPI 2.2+",
        {"power_in_kilowatts": 20},
    ),
    "ndw-test-2.1.1.json": (2, {"available": 2, "charging": 1, "unavailable": 1}, 44_160, {"11": 4}, "OCPI 2.1.1", {}),
    "ndw-test-page-2.1.1.json": (
        2,
        {"available": 2, "charging": 1, "unavailable": 1},
        44_160,
        {"11": 4},
        "OCPI 2.1.1",
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(REAL_FIGURES))
def test_a_real_capture_is_read_exactly(name: str) -> None:
    stations, states, watts, by_speed, version, issues = REAL_FIGURES[name]
    snapshot = read_real(name)
    assert len(snapshot.stations) == stations
    assert by_state(snapshot) == states
    assert round(sum(c.max_power_kw * 1000 for _, _, c in snapshot.connectors())) == watts
    assert speeds(snapshot) == by_speed
    assert (snapshot.version, dict(snapshot.issues)) == (version, issues)


def test_every_real_capture_comes_with_its_provenance() -> None:
    readme = (REAL.parent / "README.md").read_text()
    for path in REAL.iterdir():
        assert f"`ocpi-real/{path.name}`" in readme, path.name


def connector_of(snapshot: Snapshot, device: str, connector: str) -> tuple[str, float, SimpleState]:
    for _, each_device, each in snapshot.connectors():
        if (each_device.name, each.name) == (device, connector):
            return each.speed, round(each.max_power_kw * 1000, 1), each.state
    raise AssertionError(f"no connector {connector} of {device}")


def test_fastned_2_1_1_by_hand() -> None:
    """Fastned, OCPI 2.1.1 (2019): 252 of 273 EVSEs UNKNOWN. Location 50106 "Plugfest", Arnhem: EVSE
    NLFASE3100201 AVAILABLE, CHAdeMO and CCS at 400 V x 125 A (DC) = 50,000 W; NLFASE3100202 UNKNOWN."""
    snapshot = read_real("fastned-2.1.1.json.gz")
    assert connector_of(snapshot, "NLFASE3100201", "1") == ("50", 50_000.0, SimpleState.AVAILABLE)
    assert connector_of(snapshot, "NLFASE3100202", "3") == ("50", 50_000.0, SimpleState.UNKNOWN)
    assert snapshot.unknown_raw_states() == {"UNKNOWN": 608}
    # Its AC connectors: 230 V x 63 A, three phases line to neutral: 43,470 W, the 43 kW Fastned builds.
    three_phase = {c.max_power_kw for _, _, c in snapshot.connectors() if c.speed == "43"}
    assert three_phase == {230 * 63 * 3 / 1000}


def test_evio_three_phase_at_400_volts_by_hand() -> None:
    """EVIO (Portugal), OCPI 2.2, no max_electric_power: its 10 AC_3_PHASE connectors at 400 V x 32 A are
    22 kW chargers, 400 x 32 x sqrt(3) = 22,170 W; its 14 at 230 V x 32 A give 22,080 W (x 3)."""
    snapshot = read_real("evio-2.2.json.gz")
    powers = Counter(round(c.max_power_kw * 1000) for _, _, c in snapshot.connectors())
    assert powers[round(400 * 32 * math.sqrt(3))] == 10 and powers[230 * 32 * 3] == 14
    assert round(400 * 32 * math.sqrt(3)) == 22_170


def test_ndw_2_1_1_by_hand() -> None:
    """NDW's receiver test data: Nuon EVSEs in 's-Hertogenbosch, OCPI 2.1.1, AC_3_PHASE at 230 V x 16 A:
    11,040 W each; NL*NUO*EALF*0003812*2 BLOCKED, *1 CHARGING."""
    snapshot = read_real("ndw-test-2.1.1.json")
    assert connector_of(snapshot, "NL*NUO*EALF*0003812*2", "7351eff3-cbd8-42d7-b7fa-8075026358b7") == (
        "11",
        11_040.0,
        SimpleState.UNAVAILABLE,
    )
    assert connector_of(snapshot, "NL*NUO*EALF*0003812*1", "447ba298-ed42-4a4b-b8a5-e099cc8de460")[2] is (
        SimpleState.CHARGING
    )
    # No name: the station is its address.
    assert sorted(station.name for station in snapshot.stations) == ["Noordwal 6", "Pelssingel 22"]


def test_toger_and_sitronics_identity_by_hand() -> None:
    """Toger: an EVSE whose uid is "" is identified by its evse_id "40". Sitronics: 11 EVSEs whose uid,
    evse_id and connector ids are all null are skipped, and counted."""
    toger = read_real("toger-2.2.1.json.gz")
    assert "40" in {device.name for station in toger.stations for device in station.devices}
    sitronics = read_real("sitronics-2.2.1.json.gz")
    assert sitronics.issues["invalid_evse"] == 11


def test_ev24_power_given_in_kilowatts_by_hand() -> None:
    """EV24: max_electric_power 22, 11 and 30 beside 400 V x 32 A: kilowatts, not watts."""
    snapshot = read_real("ev24-2.2.1.json.gz")
    assert {c.max_power_kw for _, _, c in snapshot.connectors()} == {11.0, 22.0, 30.0}


def test_check_says_what_it_read_of_a_real_2_1_1_capture() -> None:
    path = REAL / "fastned-2.1.1.json.gz"
    result = subprocess.run(
        [*command(), "--feed.format", "ocpi", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "format: OCPI 2.1.1" in lines
    assert "  unknown: 608" in lines
    assert "unknown states, by connectors: UNKNOWN \u00d7608" in lines
    assert "  voltage x amperage (DC or one phase): 479 connectors" in lines
    assert "  voltage x amperage x 3 (three phases, voltage under 380 V: line to neutral): 176 connectors" in lines
    assert "parse issues: none" in lines


def test_check_names_the_parse_issues_of_a_refused_document(tmp_path: Path) -> None:
    path = tmp_path / "uidless.json"
    path.write_text(json.dumps([location(evse(None), evse(None, status="WORKING"))]))
    result = subprocess.run(
        [*command(), "--feed.format", "ocpi", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    reason = (
        "not usable: empty: the document's 1 Locations hold no usable connector: 2 EVSEs without uid, evse_id or id"
    )
    assert reason in result.stdout
    assert "  invalid_evse \u00d72: an EVSE that is not a JSON object, or has no uid, evse_id or id, was skipped" in (
        result.stdout.splitlines()
    )


def test_a_refused_document_counts_its_parse_issues_and_ocpi_kinds_are_registered(feed: FeedServer) -> None:
    """The real service: an OCPI feed's parse-issue kinds are exported at 0 (not KML's); a document refused
    as empty still counts what it met, in the metrics and the log line."""
    good = (REAL / "ndw-test-2.1.1.json").read_bytes()
    uidless = json.dumps([location(*(evse(None) for _ in range(90)))]).encode()
    feed.serve(FeedResponse(good, content_type="application/json"))
    arguments = ["--feed.format", "ocpi", "--feed.url", feed.url("/ocpi"), "--refresh-interval", "0.5"]
    with ServiceProcess(arguments) as service:
        service.wait_for_refreshes("success", 1)
        samples = service.metrics(only="chargy_feed_parse_issues_total")["chargy_feed_parse_issues"].samples
        kinds = {sample.labels["kind"]: sample.value for sample in samples if sample.name.endswith("_total")}
        assert set(kinds) >= {"evse_without_uid", "nonstandard_state", "unknown_state", "invalid_evse"}
        assert "placemark_without_name" not in kinds and set(kinds.values()) == {0}
        feed.serve(FeedResponse(uidless, content_type="application/json"))
        service.wait_for_refreshes("empty", 1)
        assert service.sample("chargy_feed_parse_issues_total", kind="invalid_evse") == 90
        page = service.get("/").text
    assert "OCPI 2.1.1" in page
    assert 'format="OCPI 2.1.1"' in service.logs()  # the log line of each successful refresh
    assert "90 EVSEs without uid, evse_id or id" in service.logs() and "invalid_evse=90" in service.logs()


def test_check_shows_the_ten_most_frequent_unknown_statuses_shortened(tmp_path: Path) -> None:
    statuses = ["WORKING"] * 3 + ["X" * 100] * 2 + [f"ODD{n}" for n in range(11)]
    path = tmp_path / "odd.json"
    path.write_text(json.dumps([location(*(evse(f"E{n}", status) for n, status in enumerate(statuses)))]))
    result = subprocess.run(
        [*command(), "--feed.format", "ocpi", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("unknown states")]
    assert line.startswith(f"unknown states, by connectors: WORKING \u00d73, {'X' * 40} \u00d72, ODD0 \u00d71, ")
    assert (
        line.endswith("ODD10 \u00d71, ODD2 \u00d71, ODD3 \u00d71, ODD4 \u00d71, ODD5 \u00d71, ODD6 \u00d71 and 3 more")
        and "X" * 41 not in line
    )
