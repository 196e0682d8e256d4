"""Issue 17, the parser's surfaces, played from outside: hostile feeds served by a real local server to the
real service, which must keep each promise of the README at a bounded cost, measured on the process.

Rows 1-3 (labels, codecs, archive directories): peak RSS under 300 MiB and /metrics under 20 MB; row 9
(text no UTF-8 can hold): a counted parse issue, never `internal_error`; row 14: the outcome table."""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from collections.abc import Iterator

import pytest

from otel_chargy.labels import MAX_LABEL_CHARS
from otel_chargy.model import SimpleState
from tests.attack import (
    JSON,
    KML,
    MAX_METRICS_BYTES,
    MAX_PEAK_RSS_MIB,
    attacked_service,
    device,
    evse,
    family_of,
    kml_body,
    label_values,
    location,
    metrics_text,
    ocpi_body,
    peak_rss_mib,
    placemark,
    play,
    refreshes,
    series,
)
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess

KIB = 1024
STATES = len(SimpleState)
# The last good snapshot stays served through a failed attack, and through a slow refresh on a busy machine;
# a feed of 2,000 connectors may be followed by one of 2.
KEEP_SERVING = ("--max-staleness", "600", "--max-shrink", "1")
Attacked = tuple[FeedServer, ServiceProcess]


@pytest.fixture(scope="module")
def ocpi() -> Iterator[Attacked]:
    with attacked_service("--feed.format", "ocpi", *KEEP_SERVING) as attacked:
        yield attacked


@pytest.fixture(scope="module")
def kml() -> Iterator[Attacked]:
    with attacked_service(*KEEP_SERVING) as attacked:
        yield attacked


# --- row 1: every label bounded, whatever the number of connectors it labels


def _connector_ids(count: int, padding: int = 0) -> list[str]:
    """Ids that differ in their first characters, so that cut ones stay distinct."""
    return [str(number) + "c" * padding for number in range(count)]


def ocpi_long_labels(case: str) -> bytes:
    """One Location with 2,000 connectors (100 EVSEs of 20): its name 20 KiB long (the issue's row), or
    its name and address 64 KiB and every other label long too."""
    if case == "every_label":
        evses = [
            evse(
                f"{number:03d}",
                "AVAILABLE" + "X" * 4 * KIB,
                _connector_ids(20, 512),
                evse_id=f"{number:03d}" + "E" * 4 * KIB,
            )
            for number in range(100)
        ]
        return ocpi_body(location("1", "N" * 64 * KIB, evses, address="A" * 64 * KIB))
    evses = [evse(f"{number:03d}", "AVAILABLE", _connector_ids(20)) for number in range(100)]
    return ocpi_body(location("1", "N" * 20 * KIB, evses))


def kml_long_labels(case: str) -> bytes:
    """One placemark with 2,000 connectors (100 devices of 20), as `ocpi_long_labels`, within the 1 MiB a
    placemark may span."""
    long = case == "every_label"
    devices = [
        device(
            number,
            f"CP{number:03d}" + ("D" * 2 * KIB if long else ""),
            [
                (
                    number * 100 + position,
                    f"C{position}" + ("c" * 300 if long and position < 2 else ""),
                    "AVAILABLE" + ("x" * 4 * KIB if long and number < 2 else ""),
                )
                for position in range(20)
            ],
        )
        for number in range(100)
    ]
    return kml_body(placemark("N" * (64 if long else 20) * KIB, devices, address="A" * (64 * KIB if long else 10)))


LONG_LABEL_CASES = ["name_20_kib", "every_label"]


def _assert_bounded_labels(service: ServiceProcess, text: str) -> None:
    samples = series(text)
    assert max(samples.values()) == 1
    assert sum(1 for line in samples if family_of(line) == "chargy_connector_state") == 2_000 * STATES  # each connector
    values = [value for line in samples for value in label_values(line)]
    assert max(len(value) for value in values) == MAX_LABEL_CHARS
    assert any(value.endswith("…") for value in values)
    assert len(text.encode()) < MAX_METRICS_BYTES
    assert peak_rss_mib(service) < MAX_PEAK_RSS_MIB


@pytest.mark.parametrize("case", LONG_LABEL_CASES)
def test_ocpi_labels_are_cut_and_counted_and_the_refresh_stays_small(ocpi: Attacked, case: str) -> None:
    feed, service = ocpi
    status = play(feed, service, FeedResponse(ocpi_long_labels(case), content_type=JSON), "success")
    assert status["snapshot"]["parse_issues"]["long_text"] >= 1
    _assert_bounded_labels(service, metrics_text(service))


@pytest.mark.parametrize("case", LONG_LABEL_CASES)
def test_kml_labels_are_cut_and_counted_and_the_refresh_stays_small(kml: Attacked, case: str) -> None:
    feed, service = kml
    status = play(feed, service, FeedResponse(kml_long_labels(case), content_type=KML), "success")
    assert status["snapshot"]["parse_issues"]["long_text"] >= 1
    _assert_bounded_labels(service, metrics_text(service))


# --- rows 2 and 3: decompression bounded whatever the codec, a zip's directory bounded

# locations.json, 2 GiB of spaces (JSON whitespace) compressed with bzip2 into a 1.6 KB zip (zip64).
BZIP2_BOMB = base64.b64decode(
    "UEsDBC4AAAAMAAAAIQBv481R//////////8OABQAbG9jYXRpb25zLmpzb24BABAAAAAAgAAAAADyBQAAAAAAAEJaaDkxQVkmU1m1ImW/AV+OEADA"
    "AAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBN"
    "RkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFf"
    "jhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCX"
    "MUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUi"
    "Zb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAl"
    "qQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADA"
    "AAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBN"
    "RkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFf"
    "jhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCX"
    "MUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUi"
    "Zb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAl"
    "qQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADA"
    "AAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWTlUV/YBFKUQgMAAAAQACCAAMMwFKaZIkSGxSJEh4u5IpwoSAdurFYBQSwECLgMuAAAA"
    "DAAAACEAb+PNUf//////////DgAUAAAAAAAAAAAAgAEAAAAAbG9jYXRpb25zLmpzb24BABAAAAAAgAAAAADyBQAAAAAAAFBLBQYAAAAAAQABAFAA"
    "AAAyBgAAAAA="
)


def lzma_zip(megabytes: int) -> bytes:
    archive = io.BytesIO()
    with (
        zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_LZMA) as writer,
        writer.open("locations.json", "w") as member,
    ):
        for _ in range(megabytes):
            member.write(b" " * (1 << 20))
    return archive.getvalue()


@pytest.mark.parametrize("codec", ["bzip2", "lzma"])
def test_a_zip_member_in_another_codec_is_refused_without_inflating(ocpi: Attacked, codec: str) -> None:
    feed, service = ocpi
    body = BZIP2_BOMB if codec == "bzip2" else lzma_zip(8)
    status = play(feed, service, FeedResponse(body, content_type="application/zip"), "not_ocpi")
    assert f"compressed with {'bzip2' if codec == 'bzip2' else 'LZMA'}" in status["reason"]
    assert peak_rss_mib(service) < MAX_PEAK_RSS_MIB


def zip_with_directory_entries(count: int) -> bytes:
    """One stored JSON file, then a central directory of it and `count - 1` folder entries."""
    data = ocpi_body(location("1", "S", [evse("1", "AVAILABLE", ["1"])]))
    name = b"locations.json"
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0) + name
    entry = (
        struct.pack(
            "<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0, 0, 0, 0, 0, 0
        )
        + name
    )
    folder = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 16, 0) + b"d/"
    directory = entry + folder * (count - 1)
    offset = len(local) + len(data)
    end = struct.pack(
        "<4s4H2IH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), len(directory), offset, 0
    )
    return local + data + directory + end


def test_a_zip_with_a_million_directory_entries_is_refused(ocpi: Attacked) -> None:
    feed, service = ocpi
    body = zip_with_directory_entries(1_000_000)
    assert len(body) < 50_000_000  # within --max-bytes: the directory, not the size, must stop it
    status = play(feed, service, FeedResponse(body, content_type="application/zip"), "not_ocpi")
    assert "directory holds" in status["reason"]
    assert peak_rss_mib(service) < MAX_PEAK_RSS_MIB


def test_a_zip_with_a_few_directory_entries_is_read(ocpi: Attacked) -> None:
    feed, service = ocpi
    play(feed, service, FeedResponse(zip_with_directory_entries(3), content_type="application/zip"), "success")


# --- row 9: text no UTF-8 can hold


def test_lone_surrogates_and_bad_bytes_in_ocpi_become_replacement_characters(ocpi: Attacked) -> None:
    feed, service = ocpi
    lone = "\udc00"
    body = ocpi_body(
        location(
            "1",
            f"Gare{lone}",
            [evse(f"U{lone}", f"AVAILABLE{lone}", [f"1{lone}"], evse_id=f"E{lone}")],
            address=f"Rue{lone}",
        ),
        location("2", "Bad bytes <X>", [evse("U2", "CHARGING", ["1"])]),
    )
    assert b"\\udc00" in body  # json.dumps wrote the escape a feed would send
    body = body.replace(b"<X>", b"\xff\xfe")
    status = play(feed, service, FeedResponse(body, content_type=JSON), "success")
    # name, address, uid, evse_id, status, connector, and the 2 bad bytes
    assert status["snapshot"]["parse_issues"]["invalid_text"] == 8
    text = metrics_text(service)
    assert 'station="Gare\ufffd"' in text and 'device="E\ufffd"' in text and 'connector="1\ufffd"' in text
    assert 'station="Bad bytes \ufffd\ufffd"' in text
    stations = service.get("/api/v1/stations")
    assert stations.status_code == 200 and "Gare\ufffd" in json.dumps(stations.json(), ensure_ascii=False)
    assert refreshes(service, "internal_error") == 0


def test_a_lone_surrogate_and_bad_bytes_in_kml_become_replacement_characters(kml: Attacked) -> None:
    feed, service = kml
    body = kml_body(
        placemark("Gare", [device(1, "CP1", [(11, "CP1 - 1\udc00", "AVAILABLE"), (12, "CP1 - 2", "CHARGING")])]),
        placemark("Bad bytes #X#", [device(2, "CP2", [(21, "CP2 - 1", "AVAILABLE")])]),
    )
    assert b"\\udc00" in body
    body = body.replace(b"#X#", b"\xff")
    status = play(feed, service, FeedResponse(body, content_type=KML), "success")
    assert status["snapshot"]["parse_issues"]["invalid_text"] == 2
    text = metrics_text(service)
    assert 'connector="CP1 - 1\ufffd"' in text and 'station="Bad bytes \ufffd"' in text
    assert service.get("/api/v1/stations/Gare").status_code == 200
    assert refreshes(service, "internal_error") == 0


# --- row 14: the outcome table


def test_a_later_page_answering_304_is_broken_paging(ocpi: Attacked) -> None:
    feed, service = ocpi
    feed.serve_path("/page-2", FeedResponse(status=304))
    first = FeedResponse(
        ocpi_body(location("1", "S", [evse("1", "AVAILABLE", ["1"])])),
        content_type=JSON,
        headers={"Link": f'<{feed.url("/page-2")}>; rel="next"'},
    )
    status = play(feed, service, first, "broken_paging")
    assert "page 2 of the feed answered 304" in status["reason"]


@pytest.mark.parametrize("status", [206, 299])
def test_a_partial_or_odd_success_is_http_error(ocpi: Attacked, status: int) -> None:
    feed, service = ocpi
    body = ocpi_body(location("1", "S", [evse("1", "AVAILABLE", ["1"])]))
    served = play(feed, service, FeedResponse(body, status=status, content_type=JSON), "http_error")
    assert f"answered HTTP {status}" in served["reason"]


def test_an_empty_zip_is_not_ocpi(ocpi: Attacked) -> None:
    feed, service = ocpi
    archive = io.BytesIO()
    zipfile.ZipFile(archive, "w").close()
    assert archive.getvalue().startswith(b"PK\x05\x06")  # the end record alone
    status = play(feed, service, FeedResponse(archive.getvalue(), content_type="application/zip"), "not_ocpi")
    assert "holds 0 files" in status["reason"]


def test_a_20_digit_integer_in_a_field_not_read_changes_nothing(ocpi: Attacked) -> None:
    feed, service = ocpi
    plain = location("20", "Twenty", [evse("1", "CHARGING", ["1", "2"])])
    play(feed, service, FeedResponse(ocpi_body(plain), content_type=JSON), "success")
    expected = [line for line in series(metrics_text(service)) if line.startswith("chargy_connector")]
    huge = dict(
        plain, operator={"name": "O", "registration": 12345678901234567890}, charging_when_closed=-98765432109876543210
    )
    assert b"12345678901234567890" in ocpi_body(huge)
    assert not play(feed, service, FeedResponse(ocpi_body(huge), content_type=JSON), "success")["snapshot"][
        "parse_issues"
    ]
    served = [line for line in series(metrics_text(service)) if line.startswith("chargy_connector")]
    assert served == expected and len(served) == 2 * (
        STATES + 2
    )  # two connectors: the state set, a detailed state, a power
