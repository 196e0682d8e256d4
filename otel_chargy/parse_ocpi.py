"""OCPI Locations (2.1.1, 2.2, 2.2.1, 2.3) -> Snapshot. Knows nothing of metrics or HTTP.

The body is what the fetch gathered: one JSON value, or several one after the other (the pages of a
paged feed), each a JSON array of Locations, an OCPI response envelope (`{"data": [...], "status_code":
1000}`), a wrapper operators use (`{"Locations": [...]}`, `{"locations": [...]}`, `{"items": [...]}`,
`{"data": {"locations": {"data": [...]}}}`) or a single Location; as it is, gzip-compressed, or the one
file of a zip archive; with or without a UTF-8 byte-order mark. It is read as a stream of JSON events
(ijson): one Location at a time stands in memory, so a national file costs the snapshot it yields,
and a Location that a filter drops costs nothing once read.
"""

from __future__ import annotations

import gzip
import io
import math
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

import ijson

from otel_chargy.labels import LABEL_ISSUE_KINDS, Utf8Repair, label_text, unique_label, valid_text
from otel_chargy.model import KNOWN_RAW_STATES, Connector, Device, SimpleState, Snapshot, Station, simple_state_of
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import SizeBounds, check_label_size

# Kinds of parse issue met in OCPI feeds (the `kind` label of `chargy_feed_parse_issues_total`).
OCPI_ISSUE_KINDS: dict[str, str] = {
    "invalid_location": "a Location that is not a JSON object, or that nothing identifies (no id, no party and "
    "name, no EVSE id), was skipped",
    "location_without_id": "a Location without an id was kept, identified by its party and name or its EVSEs' ids",
    "duplicate_location": "a Location whose country code, party and id were already seen: the one last updated "
    "was kept",
    "invalid_coordinates": "a station's coordinates could not be read; it is kept without them",
    "invalid_evse": "an EVSE that is not a JSON object, or has no uid, evse_id or id, was skipped",
    "evse_without_uid": "an EVSE without a uid was kept, identified by its evse_id or id",
    "invalid_connector": "a connector that is not a JSON object, or has no id, was skipped",
    "duplicate_connector": "a connector whose Location, EVSE uid and id were already seen was skipped",
    "invalid_power": "a connector's power is missing or not a number; 0 is used",
    "power_in_kilowatts": "a connector's max_electric_power under 1,000 W (no charger is that small): read as kW",
    "nonstandard_state": "an EVSE status in lower case or under an OCPP name (PREPARING, SUSPENDEDEV...), read "
    "by the state table",
    "unknown_state": "an EVSE status in no state table: its connectors count as unknown, neither up nor down",
    **LABEL_ISSUE_KINDS,
}

# OCPI's EVSE statuses. PLANNED and REMOVED EVSEs do not exist (yet, or any more): they are left out.
# OCPI's UNKNOWN says the operator does not know: not that the charger is down.
_SIMPLE_STATE_OF_STATUS: dict[str, SimpleState] = {
    "AVAILABLE": SimpleState.AVAILABLE,
    "CHARGING": SimpleState.CHARGING,
    "BLOCKED": SimpleState.UNAVAILABLE,
    "RESERVED": SimpleState.UNAVAILABLE,
    "OUTOFORDER": SimpleState.UNAVAILABLE,
    "INOPERATIVE": SimpleState.UNAVAILABLE,
    "UNKNOWN": SimpleState.UNKNOWN,
}
# OCPP's connector statuses, which some operators publish as they are: folded as the Chargy feed's table
# folds them (model.py), with and without OCPP 1.6's missing underscore (SuspendedEV).
_SIMPLE_STATE_OF_OCPP_STATUS: dict[str, SimpleState] = {
    **{raw: simple_state_of(raw) or SimpleState.UNKNOWN for raw in KNOWN_RAW_STATES},
    "SUSPENDEDEV": SimpleState.CHARGING,
    "SUSPENDEDEVSE": SimpleState.CHARGING,
    "OCCUPIED": SimpleState.CHARGING,
}
_ABSENT_STATUSES = frozenset({"PLANNED", "REMOVED"})
# The keys under which operators' wrappers hold the array of Locations (`content`: a Spring Data page).
_LIST_KEYS = frozenset({"data", "Locations", "locations", "items", "content"})
# {"data": {"locations": {"data": [...]}}}: a wrapper is read at most this deep.
_MAX_WRAPPER_DEPTH = 4
# Three-phase voltages from this up are line to line (400 V, 415 V): real feeds give them so, though
# OCPI's text says line to neutral (230 V, 240 V).
LINE_TO_LINE_MIN_VOLTS = 380.0
# How a connector's power was read: Snapshot.power_rules' keys, what `check` prints.
POWER_GIVEN = "max_electric_power as given"
POWER_GIVEN_IN_KW = "max_electric_power read as kW (under 1,000: no charger is that small in W)"
# IEC 61851's smallest charge, 6 A at 230 V, is 1.38 kW: a smaller figure in W is a figure in kW.
_SMALLEST_WATTS = 1000.0
POWER_SINGLE = "voltage x amperage (DC or one phase)"
POWER_LINE_TO_LINE = "voltage x amperage x sqrt(3) (three phases, voltage of 380 V or more: line to line)"
POWER_LINE_TO_NEUTRAL = "voltage x amperage x 3 (three phases, voltage under 380 V: line to neutral)"
POWER_MISSING = "none readable: 0 W"
_SUCCESS_STATUS_CODE = 1000

# A real Location nests 5 deep (Location, evses, EVSE, connectors, connector, tariff_ids) and holds some
# hundred values; a site of 100 EVSEs a few thousand. These bounds stop hostile documents early: the
# parser's cost is per value and byte, so they bound the CPU time and memory of a refresh too.
MAX_DEPTH = 32
MAX_LOCATION_VALUES = 50_000
# No Location, nor any other value read whole, may span more: the parser holds a whole token (a string)
# before it reports it, and a Location is built before it is mapped.
MAX_SPAN_BYTES = 4 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first; or the end record alone: an empty archive
# A feed's archive holds one file (perhaps beside a folder or some metadata). zipfile reads the whole
# central directory into objects of a few hundred bytes each before a member can be read: these bound it.
MAX_ZIP_ENTRIES = 100
MAX_ZIP_DIRECTORY_BYTES = 64 * 1024
_ZIP_END = b"PK\x05\x06"
_ZIP_END_BYTES = 22
_ZIP64_END_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
# Inflated as they are read, a chunk at a time (zipfile bounds neither bzip2 nor LZMA).
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_ZIP_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "deflate64"}
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class BoundingBox:
    """WGS 84 degrees: west, south, east, north (a box across the antimeridian has west > east)."""

    west: float
    south: float
    east: float
    north: float

    def holds(self, latitude: float, longitude: float) -> bool:
        if not self.south <= latitude <= self.north:
            return False
        if self.west <= self.east:
            return self.west <= longitude <= self.east
        return longitude >= self.west or longitude <= self.east


@dataclass(frozen=True)
class OcpiOptions:
    bounds: SizeBounds = field(default_factory=SizeBounds)
    max_bytes: int = 50_000_000
    """The largest body accepted after decompression (--max-bytes)."""
    bbox: BoundingBox | None = None
    """Only Locations inside it are kept; a Location without coordinates is dropped."""
    operators: frozenset[str] = field(default_factory=frozenset)
    """Only Locations of these parties are kept, as `CC*PARTY` in capitals; empty keeps every party."""


def _too_large(max_bytes: int) -> FeedError:
    return FeedError(Outcome.TOO_LARGE, f"the feed is larger than the limit of {max_bytes} bytes once decompressed")


class _BoundedReader:
    """The decoded document for ijson: decompressed as it is read, byte-order mark dropped, refused past
    --max-bytes, and past MAX_SPAN_BYTES read while one Location (or other value) is being read."""

    def __init__(self, raw: BinaryIO, max_bytes: int, issues: Counter[str]) -> None:
        self._raw = raw
        self._max_bytes = max_bytes
        self._utf8 = Utf8Repair(issues)
        self.read_bytes = 0
        self.progress = 0
        """Counted up by the consumer at each Location read: the reader refuses to read on while it stays."""
        self._progress_at_last_read = -1
        self._bytes_in_value = 0
        self._first = True

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self.progress != self._progress_at_last_read:
            self._progress_at_last_read, self._bytes_in_value = self.progress, 0
        try:
            data = self._raw.read(_CHUNK_BYTES)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
            raise FeedError(
                Outcome.INVALID_JSON, f"the feed's compressed body is corrupt or truncated: {error}"
            ) from None
        if self._first:
            self._first = False
            data = data.removeprefix(_BOM)
        self.read_bytes += len(data)
        if self.read_bytes > self._max_bytes:
            raise _too_large(self._max_bytes)
        self._bytes_in_value += len(data)
        if self._bytes_in_value > MAX_SPAN_BYTES:
            raise FeedError(
                Outcome.FORBIDDEN_JSON, f"a single Location or JSON value spans over {MAX_SPAN_BYTES} bytes"
            )
        return self._utf8.repair(data, final=not data)


def _open_document(body: bytes) -> BinaryIO:
    """The JSON bytes, decompressed as they are read: gzip (one member or several: pages), the one file
    of a zip archive, or the body as it is."""
    if body.startswith(_GZIP_MAGIC):
        return cast(BinaryIO, gzip.GzipFile(fileobj=io.BytesIO(body), mode="rb"))
    if body.startswith(_ZIP_MAGICS):
        _check_zip_directory(body)
        try:
            archive = zipfile.ZipFile(io.BytesIO(body))
            files = [member for member in archive.infolist() if not member.is_dir()]
            if len(files) != 1:
                raise FeedError(Outcome.NOT_OCPI, f"the zip archive holds {len(files)} files, not one JSON file")
            method = files[0].compress_type
            if method not in _ZIP_METHODS:
                name = _ZIP_METHOD_NAMES.get(method, f"method {method}")
                raise FeedError(
                    Outcome.NOT_OCPI,
                    f"the zip archive's file is compressed with {name}: only deflate and stored are read",
                )
            return cast(BinaryIO, archive.open(files[0]))
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, struct.error) as error:
            raise FeedError(Outcome.INVALID_JSON, f"the feed's zip archive cannot be read: {error}") from None
    return io.BytesIO(body)


def _check_zip_directory(body: bytes) -> None:
    """Refuses an archive whose central directory, as its end record (zip64's where there is one) states
    it, holds over MAX_ZIP_ENTRIES entries or MAX_ZIP_DIRECTORY_BYTES: zipfile would read it whole."""
    end = body.rfind(_ZIP_END, max(0, len(body) - _ZIP_END_BYTES - 0xFFFF))
    if end < 0 or len(body) < end + _ZIP_END_BYTES:
        raise FeedError(Outcome.INVALID_JSON, "the feed's zip archive has no end record: it is truncated or corrupt")
    entries, directory_bytes = struct.unpack_from("<HI", body, end + 10)
    locator = end - 20
    if locator >= 0 and body.startswith(_ZIP64_END_LOCATOR, locator):
        (zip64_end,) = struct.unpack_from("<Q", body, locator + 8)
        if zip64_end + 56 > len(body) or not body.startswith(_ZIP64_END, zip64_end):
            raise FeedError(Outcome.INVALID_JSON, "the feed's zip archive has a corrupt zip64 end record")
        entries, directory_bytes = struct.unpack_from("<QQ", body, zip64_end + 32)
    if entries > MAX_ZIP_ENTRIES or directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise FeedError(
            Outcome.NOT_OCPI,
            f"the zip archive's directory holds {entries} entries in {directory_bytes} bytes: over"
            f" {MAX_ZIP_ENTRIES} entries or {MAX_ZIP_DIRECTORY_BYTES} bytes",
        )


def parse_ocpi(body: bytes, options: OcpiOptions = OcpiOptions()) -> Snapshot:
    """Parse OCPI Locations. Raises FeedError when the document cannot be used."""
    try:
        return _parse(body, options, _FAST_BACKEND)
    except _NeedsExactBackend:
        return _parse(body, options, _EXACT_BACKEND)


# ijson's fastest backend installed, yajl's C one, reads integers as 64-bit and strings as UTF-8: an
# integer past 2**63 (in any field, read or not) or a lone surrogate escape ("\udc00") stops it. The
# pure-Python backend reads both, some 15 times slower: the document is read again with it only when
# yajl stopped on one of these.
_FAST_BACKEND: Any = ijson
_EXACT_BACKEND: Any = ijson.get_backend("python")


class _NeedsExactBackend(Exception):
    pass


def _parse(body: bytes, options: OcpiOptions, backend: Any) -> Snapshot:
    network = _Network(options)
    reader = _BoundedReader(_open_document(body), options.max_bytes, network.issues)
    try:
        events = backend.basic_parse(reader, multiple_values=True, use_float=True, buf_size=_CHUNK_BYTES)
        _read_document(events, reader, network)
    except UnicodeDecodeError:
        if backend is _EXACT_BACKEND:
            raise
        raise _NeedsExactBackend from None
    except ijson.IncompleteJSONError as error:
        if backend is _FAST_BACKEND and "integer overflow" in str(error):
            raise _NeedsExactBackend from None
        if reader.read_bytes == 0 and not body:
            raise FeedError(Outcome.EMPTY, "the document is empty") from None
        if network.values_seen == 0 and _looks_like_markup(body):
            raise FeedError(Outcome.NOT_OCPI, "the document is an HTML or XML page, not JSON") from None
        raise FeedError(Outcome.INVALID_JSON, f"the document is not well-formed JSON: {_first_line(error)}") from None
    except ijson.JSONError as error:
        raise FeedError(Outcome.INVALID_JSON, f"the document is not well-formed JSON: {_first_line(error)}") from None
    if network.values_seen == 0:
        raise FeedError(Outcome.EMPTY, "the document is empty")
    return network.snapshot()


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def _looks_like_markup(body: bytes) -> bool:
    return body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


class _Network:
    """The Locations kept so far, keyed on (country code, party, id): never on names or list order."""

    def __init__(self, options: OcpiOptions) -> None:
        self._options = options
        self.issues: Counter[str] = Counter()
        self.left_out: Counter[str] = Counter()
        """What was left out by design, not by fault: unpublished, filtered, planned or removed."""
        self.versions: Counter[str] = Counter()
        self.power_rules: Counter[str] = Counter()
        self._locations: dict[tuple[str, str, str], tuple[str, Station, int]] = {}
        self._connectors = 0
        self.locations_read = 0
        self.values_seen = 0

    def add(self, item: object) -> None:
        self.locations_read += 1
        location = _read_location(item, self._options, self)
        if location is None:
            return
        key, last_updated, station = location
        connectors = sum(len(device.connectors) for device in station.devices)
        kept = self._locations.get(key)
        if kept is not None:
            self.issues["duplicate_location"] += 1
            if _instant(last_updated) < _instant(kept[0]):
                return
            self._connectors -= kept[2]
        self._locations[key] = (last_updated, station, connectors)
        self._connectors += connectors
        self._options.bounds.check_network(len(self._locations), self._connectors, "the document", "Locations")

    def snapshot(self) -> Snapshot:
        if not self._locations:
            if self.locations_read:
                raise self._refusal(f"none of the document's {self.locations_read} Locations is usable")
            raise FeedError(Outcome.EMPTY, "the document holds no Location", dict(self.issues))
        stations = _labelled(self._locations)
        snapshot = Snapshot(
            stations=tuple(stations),
            issues=dict(self.issues),
            version=_version_read(self.versions),
            power_rules=dict(self.power_rules),
        )
        if snapshot.connector_count == 0:
            raise self._refusal(f"the document's {len(stations)} Locations hold no usable connector")
        check_label_size(snapshot, self._options.bounds)
        return snapshot

    def _refusal(self, what: str) -> FeedError:
        """`empty`, naming the largest cause with its count, the parse issues counted all the same."""
        causes = Counter({_CAUSES[kind]: count for kind, count in self.issues.items() if kind in _CAUSES})
        causes.update(self.left_out)
        if causes:
            cause, count = max(causes.items(), key=lambda item: (item[1], item[0]))
            what = f"{what}: {count} {cause}"
        return FeedError(Outcome.EMPTY, what, dict(self.issues))


# The parse issues and the things left out that leave a document empty, as its refusal names them.
_CAUSES = {
    "invalid_location": "Locations without id, party and name, or EVSE ids",
    "invalid_evse": "EVSEs without uid, evse_id or id",
    "invalid_connector": "connectors without id",
    "duplicate_connector": "connectors seen twice",
}
_UNPUBLISHED = "Locations not published (publish: false)"
_FILTERED = "Locations outside --feed.bbox or --feed.operator"
_ABSENT = "EVSEs PLANNED or REMOVED"


def _version_read(versions: Counter[str]) -> str:
    """The version read, "OCPI 2.1.1" or "OCPI 2.2+", by the fields the Locations use; both when the
    document mixes them, with their counts."""
    if not versions:
        return "OCPI"
    if len(versions) == 1:
        return f"OCPI {next(iter(versions))}"
    return "OCPI " + " and ".join(f"{version} ({count} Locations)" for version, count in versions.most_common())


def _labelled(locations: dict[tuple[str, str, str], tuple[str, Station, int]]) -> list[Station]:
    """The `station` label is the Location's name; every station of a name two Locations share gets its
    id appended (its country code and party too where even that is taken), checked against every label
    of the snapshot: a Location may well be named like another's suffixed label."""
    names = Counter(station.name for _, station, _ in locations.values())
    taken = {name for name, count in names.items() if count == 1}
    stations = []
    for (country, party, location_id), (_, station, _) in locations.items():
        if names[station.name] == 1:
            stations.append(station)
            continue
        label = unique_label(station.name, (location_id, f"{country}*{party}*{location_id}"), taken)
        stations.append(replace(station, name=label))
    return stations


def _instant(text: str) -> datetime:
    """OCPI's last_updated (UTC when it names no offset); an unreadable one counts as the oldest."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return _OLDEST
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_OLDEST = datetime.min.replace(tzinfo=UTC)


# --- the document: envelopes, wrappers and arrays around the Locations


def _read_document(events: Iterator[tuple[str, Any]], reader: _BoundedReader, network: _Network) -> None:
    """Each top-level value in turn: the pages of a paged feed follow each other."""
    for event, _ in events:
        network.values_seen += 1
        if event == "start_array":
            _read_locations(events, reader, network, depth=1)
        elif event == "start_map":
            _read_top_object(events, reader, network)
        else:
            raise FeedError(Outcome.NOT_OCPI, f"the document is a JSON {event}, not OCPI Locations")
        reader.progress += 1


def _read_locations(events: Iterator[tuple[str, Any]], reader: _BoundedReader, network: _Network, depth: int) -> None:
    """The items of an array of Locations, up to its end."""
    for event, value in events:
        if event == "end_array":
            return
        network.add(_build(event, value, events, depth + 1, [MAX_LOCATION_VALUES]))
        reader.progress += 1
    raise ijson.IncompleteJSONError("the array of Locations is not closed")


def _read_top_object(events: Iterator[tuple[str, Any]], reader: _BoundedReader, network: _Network) -> None:
    """An envelope, a wrapper or a single Location."""
    members, streamed = _read_object(events, reader, network, 1, [MAX_LOCATION_VALUES])
    if streamed:
        _check_status(members)
        return
    if "status_code" in members or "data" in members:
        _check_status(members)
        data = members.get("data")
        if isinstance(data, dict) and _looks_like_location(data):
            network.add(data)  # an envelope around a single Location
            return
        if isinstance(data, dict):
            raise FeedError(Outcome.NOT_OCPI, f"the response's `data` holds no Locations (keys: {_keys(data)})")
        raise FeedError(Outcome.NOT_OCPI, "the response holds no array of Locations in `data`")
    if _looks_like_location(members):
        network.add(members)  # a single Location
        return
    raise FeedError(
        Outcome.NOT_OCPI, f"a JSON object that is neither OCPI Locations nor a response (keys: {_keys(members)})"
    )


def _read_object(
    events: Iterator[tuple[str, Any]], reader: _BoundedReader, network: _Network, depth: int, budget: list[int]
) -> tuple[dict[str, object], bool]:
    """The members of an object at the top of the document or in a wrapper, up to its end, and whether
    it held an array of Locations. Such an array, under one of _LIST_KEYS, at once or within a wrapper
    object under one of them, is read as a stream; any other member is read whole, all of them, in the
    object and the wrappers within it, within the bounds of one Location (`budget`, shared)."""
    members: dict[str, object] = {}
    streamed = False
    for event, key in events:
        if event == "end_map":
            return members, streamed
        event, value = next(events)
        if key in _LIST_KEYS and event == "start_array":
            streamed = True
            _read_locations(events, reader, network, depth=depth + 1)
        elif key in _LIST_KEYS and event == "start_map" and depth < _MAX_WRAPPER_DEPTH:
            inner, inner_streamed = _read_object(events, reader, network, depth + 1, budget)
            streamed = streamed or inner_streamed
            if not inner_streamed:
                members[key] = inner
            budget[0] -= 1
            if budget[0] < 0:
                raise _too_many_values()
        else:
            members[key] = _build(event, value, events, depth + 1, budget)
            budget[0] -= 1
            if budget[0] < 0:
                raise _too_many_values()
    raise ijson.IncompleteJSONError("a top-level object is not closed")


def _looks_like_location(members: dict[str, object]) -> bool:
    return "evses" in members or ("id" in members and "coordinates" in members)


def _keys(members: dict[str, object]) -> str:
    """The keys of an object that is not OCPI, as a refusal names them: the feed's text, so shortened."""
    shown = sorted(valid_text(str(key)[:40], Counter()) for key in members)
    return ", ".join(shown[:8]) + (f" and {len(shown) - 8} more" if len(shown) > 8 else "") if shown else "none"


def _check_status(members: dict[str, object]) -> None:
    """OCPI's status_code: 1000 for success (as a number, as text, or "Success" as one operator sends it);
    2xxx client errors, 3xxx server errors, 4xxx hub errors. Its status_message is not repeated: it is the
    provider's text, which may echo a token."""
    status_code = members.get("status_code")
    if isinstance(status_code, str):  # real feeds send "1000", and "Success"
        text = status_code.strip()
        if text.lower() in ("success", "ok"):
            return
        status_code = int(text) if text.isascii() and text.isdigit() and len(text) < 6 else status_code
    if status_code is None or status_code == _SUCCESS_STATUS_CODE:
        return
    shown = status_code if isinstance(status_code, (int, float)) else repr(str(status_code)[:40])
    kinds = {"2": "a client error", "3": "a server error", "4": "a hub error"}
    kind = kinds.get(str(status_code)[:1], "not a success") if isinstance(status_code, int) else "not a success"
    raise FeedError(Outcome.OCPI_ERROR, f"the OCPI response's status_code is {shown}, {kind}, not 1000")


def _build(event: str, value: Any, events: Iterator[tuple[str, Any]], depth: int, budget: list[int]) -> object:
    """One JSON value from its first event, nested at most MAX_DEPTH deep, its members counted in `budget`
    (a one-item list: what may still be spent)."""
    if event not in _STARTS:
        return value
    if depth > MAX_DEPTH:
        raise _too_deep()
    is_map = event == "start_map"
    end = "end_map" if is_map else "end_array"
    members: dict[str, object] = {}
    items: list[object] = []
    for event, value in events:
        if event == end:
            budget[0] -= len(members) + len(items) + 1
            if budget[0] < 0:
                raise _too_many_values()
            return members if is_map else items
        if is_map:
            key: str = value
            event, value = next(events)
            members[key] = _build(event, value, events, depth + 1, budget)
        else:
            items.append(_build(event, value, events, depth + 1, budget))
        if len(members) + len(items) > MAX_LOCATION_VALUES:
            raise _too_many_values()
    raise ijson.IncompleteJSONError("a JSON value is not closed")


_STARTS = frozenset({"start_map", "start_array"})


def _too_deep() -> FeedError:
    return FeedError(Outcome.FORBIDDEN_JSON, f"JSON values are nested deeper than {MAX_DEPTH}")


def _too_many_values() -> FeedError:
    return FeedError(Outcome.FORBIDDEN_JSON, f"over {MAX_LOCATION_VALUES} JSON values in a Location")


# --- the mapping: Location -> station, EVSE -> device, Connector -> connector


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _identifier(value: object) -> str:
    """An OCPI id: a string, though some feeds send numbers. Where it becomes a label or a key, it is
    bounded and repaired as labels are (label_text)."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "" if not math.isfinite(value) else str(int(value)) if value.is_integer() else str(value)
    return _text(value)


def _read_location(
    item: object, options: OcpiOptions, network: _Network
) -> tuple[tuple[str, str, str], str, Station] | None:
    issues = network.issues
    if not isinstance(item, dict):
        issues["invalid_location"] += 1
        return None
    if item.get("publish") is False:
        network.left_out[_UNPUBLISHED] += 1
        return None
    country = label_text(_text(item.get("country_code")).upper(), issues)
    party = label_text(_text(item.get("party_id")).upper(), issues)
    if options.operators and f"{country}*{party}" not in options.operators:
        network.left_out[_FILTERED] += 1
        return None
    latitude, longitude = _read_coordinates(item.get("coordinates"), issues)
    if options.bbox is not None and (
        latitude is None or longitude is None or not options.bbox.holds(latitude, longitude)
    ):
        network.left_out[_FILTERED] += 1
        return None
    evses = item.get("evses")
    location_id = label_text(_identifier(item.get("id")) or _location_identity(item, party, evses), issues)
    if not location_id:
        issues["invalid_location"] += 1
        return None
    if not _identifier(item.get("id")):
        issues["location_without_id"] += 1
    network.versions[_version_of(item, evses)] += 1
    key = (country, party, location_id)
    devices = _read_evses(evses, network)
    name = _text(item.get("name")) or _text(item.get("address")) or location_id
    station = Station(
        name=label_text(name, issues),
        address=label_text(_address(item), issues),
        latitude=latitude,
        longitude=longitude,
        devices=tuple(devices),
        identity=repr(key),
    )
    return key, _text(item.get("last_updated")), station


def _location_identity(item: dict[str, Any], party: str, evses: object) -> str:
    """What identifies a Location without an id: its party and name, else its EVSEs' ids, else nothing."""
    name = _text(item.get("name"))
    if party and name:
        return f"name:{name}"
    ids = sorted(
        {
            identity
            for evse in (evses if isinstance(evses, list) else [])
            if isinstance(evse, dict) and (identity := _evse_identity(evse)[0])
        }
    )
    return "evses:" + ",".join(ids) if ids else ""


def _version_of(item: dict[str, Any], evses: object) -> str:
    """2.1.1 or 2.2+, by the fields each version alone has: 2.2 added country_code, party_id, publish and
    the connector's max_voltage, max_amperage and max_electric_power; 2.1.1 has voltage and amperage."""
    if any(key in item for key in ("country_code", "party_id", "publish", "parking_type")):
        return "2.2+"
    connectors = [
        connector
        for evse in (evses if isinstance(evses, list) else [])
        if isinstance(evse, dict) and isinstance(evse.get("connectors"), list)
        for connector in evse["connectors"]
        if isinstance(connector, dict)
    ]
    if any(key in connector for connector in connectors for key in ("max_voltage", "max_amperage")):
        return "2.2+"
    if "type" in item or any(key in connector for connector in connectors for key in ("voltage", "amperage")):
        return "2.1.1"
    return "2.2+"


def _address(item: dict[str, Any]) -> str:
    place = " ".join(part for part in (_text(item.get("postal_code")), _text(item.get("city"))) if part)
    return ", ".join(part for part in (_text(item.get("address")), place) if part)


def _read_coordinates(value: object, issues: Counter[str]) -> tuple[float | None, float | None]:
    """OCPI's coordinates, decimal degrees as strings ("51.047599"); numbers are read too."""
    if isinstance(value, dict):
        latitude, longitude = _degrees(value.get("latitude"), 90), _degrees(value.get("longitude"), 180)
        if latitude is not None and longitude is not None:
            return latitude, longitude
    issues["invalid_coordinates"] += 1
    return None, None


def _degrees(value: object, limit: float) -> float | None:
    number = _float(value)
    return number if number is not None and -limit <= number <= limit else None


def _evse_identity(evse: dict[str, Any]) -> tuple[str, bool]:
    """An EVSE's uid; without one, its evse_id, else its id (True: the uid was missing)."""
    uid = _identifier(evse.get("uid"))
    if uid:
        return uid, False
    return _identifier(evse.get("evse_id")) or _identifier(evse.get("id")), True


def _read_state(status: object, issues: Counter[str]) -> tuple[str, SimpleState]:
    """The raw status, upper-cased, and its simple state: OCPI's table, else OCPP's names, else unknown."""
    given = _text(status) if isinstance(status, str) else _identifier(status)
    raw_status = given.upper()
    state = _SIMPLE_STATE_OF_STATUS.get(raw_status)
    if state is not None:
        if given != raw_status:
            issues["nonstandard_state"] += 1
        return raw_status, state
    state = _SIMPLE_STATE_OF_OCPP_STATUS.get(raw_status)
    if state is not None:
        issues["nonstandard_state"] += 1
        return raw_status, state
    issues["unknown_state"] += 1
    return raw_status, SimpleState.UNKNOWN


def _read_evses(value: object, network: _Network) -> list[Device]:
    issues = network.issues
    devices: list[Device] = []
    names: set[str] = set()
    seen_uids: set[str] = set()
    for evse in value if isinstance(value, list) else []:
        if not isinstance(evse, dict):
            issues["invalid_evse"] += 1
            continue
        uid, without_uid = _evse_identity(evse)
        uid = label_text(uid, issues)
        if not uid:
            issues["invalid_evse"] += 1
            continue
        if _text(evse.get("status")).upper() in _ABSENT_STATUSES:
            network.left_out[_ABSENT] += 1
            continue
        if without_uid:
            issues["evse_without_uid"] += 1
        entries = evse.get("connectors")
        if uid in seen_uids:
            issues["duplicate_connector"] += len(entries) if isinstance(entries, list) else 1
            continue
        seen_uids.add(uid)
        raw_status, state = _read_state(evse.get("status"), issues)
        name = label_text(_identifier(evse.get("evse_id")), issues) or uid
        if name in names:
            name = unique_label(name, (uid,), names)  # two EVSEs that give one evse_id stay two devices
        names.add(name)
        connectors = _read_connectors(entries, label_text(raw_status, issues), state, network)
        devices.append(Device(name=name, connectors=tuple(connectors), identity=uid))
    return devices


def _read_connectors(value: object, raw_status: str, state: SimpleState, network: _Network) -> list[Connector]:
    issues = network.issues
    connectors: list[Connector] = []
    seen: set[str] = set()
    for index, entry in enumerate(value if isinstance(value, list) else []):
        if not isinstance(entry, dict) or not (connector_id := label_text(_identifier(entry.get("id")), issues)):
            issues["invalid_connector"] += 1
            continue
        if connector_id in seen:
            issues["duplicate_connector"] += 1
            continue
        seen.add(connector_id)
        numbered = connector_id.isascii() and connector_id.isdigit() and 0 < int(connector_id) < 1_000_000
        connectors.append(
            Connector(
                name=connector_id,
                position=int(connector_id) if numbered else index + 1,
                max_power_kw=_power_kw(entry, network),
                raw_state=raw_status,
                state=state,
                identity=connector_id,
            )
        )
    return connectors


def _float(value: object) -> float | None:
    """A finite number, given as a number or as text (an integer past a double's range is none)."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _power_figure(value: object) -> float | None:
    number = _float(value)
    return number if number is not None and 0 <= number < 1e9 else None


def _power_kw(connector: dict[str, Any], network: _Network) -> float:
    """max_electric_power (W) first, read as kW under 1,000 (real feeds give 22 for 22 kW). Else voltage x
    amperage (2.2's max_voltage and max_amperage, 2.1.1's voltage and amperage); for AC_3_PHASE, x sqrt(3)
    for a voltage of 380 V or more, which is line to line (400 V: every real three-phase connector seen that
    gives both voltage and power), x 3 for a lower one, line to neutral (230 V) as OCPI's text says."""
    watts = _power_figure(connector.get("max_electric_power")) or None  # 0 says nothing: V x A may
    rule = POWER_GIVEN
    if watts is not None and watts < _SMALLEST_WATTS:
        network.issues["power_in_kilowatts"] += 1
        watts, rule = watts * 1000, POWER_GIVEN_IN_KW
    if watts is None:
        voltage = _first_figure(connector, "max_voltage", "voltage")
        amperage = _first_figure(connector, "max_amperage", "amperage")
        if not voltage or not amperage:  # missing, or 0 as some feeds give it
            network.issues["invalid_power"] += 1
            network.power_rules[POWER_MISSING] += 1
            return 0.0
        if _text(connector.get("power_type")).upper() != "AC_3_PHASE":
            watts, rule = voltage * amperage, POWER_SINGLE
        elif voltage >= LINE_TO_LINE_MIN_VOLTS:
            watts, rule = voltage * amperage * math.sqrt(3), POWER_LINE_TO_LINE
        else:
            watts, rule = voltage * amperage * 3, POWER_LINE_TO_NEUTRAL
    network.power_rules[rule] += 1
    kilowatts = watts / 1000
    return kilowatts if kilowatts < 1e6 else 0.0


def _first_figure(connector: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        figure = _power_figure(connector.get(key))
        if figure is not None:
            return figure
    return None
