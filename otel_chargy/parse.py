"""KML bytes -> Snapshot. Knows nothing of metrics or HTTP."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLPullParser

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser

from otel_chargy.labels import LABEL_ISSUE_KINDS, MAX_LABEL_CHARS, Utf8Repair, label_text
from otel_chargy.model import (
    Connector,
    Device,
    SimpleState,
    Snapshot,
    Station,
    normalise_raw_state,
    simple_state_of,
)
from otel_chargy.outcome import FeedError, Outcome

# Kinds of parse issue: something in the feed that was skipped or guessed,
# while the rest of the document was used. The `kind` label of
# `chargy_feed_parse_issues_total`.
ISSUE_KINDS: dict[str, str] = {
    "placemark_without_name": "a placemark with no name was skipped",
    "invalid_coordinates": "a station's coordinates could not be read; it is kept without them",
    "invalid_device_json": "a chargingdevice value that is not a JSON object was skipped",
    "device_without_name": "a device with neither name nor id was skipped",
    "invalid_connector": "a connector entry that is not a JSON object was skipped",
    "invalid_power": "a connector's maxchspeed is missing or not a number; 0 is used",
    "duplicate_connector": "a connector whose station, device and name (or id) were already seen was skipped",
    "duplicate_station": "a placemark named like an earlier one: its devices were added to that station, "
    "whose address and coordinates were kept",
    "unknown_state": "a connector state not in the state table: it counts as unknown, neither up nor down, "
    "and keeps its raw value in chargy_connector_detailed_state_info",
    **LABEL_ISSUE_KINDS,
}

_DEVICE_DATA_NAME = "chargingdevice"
# A real placemark nests 5 deep and holds about 20 elements, 3 attributes and a few kB. These bounds
# stop hostile documents early: the parser's cost is per element, attribute and byte, so they bound the
# CPU time and memory of a refresh too (benchmarks/hostile.py measures them).
MAX_DEPTH = 64
MAX_PLACEMARK_ELEMENTS = 1_000
MAX_ELEMENTS_OUTSIDE_PLACEMARKS = 10_000
MAX_ATTRIBUTES_PER_ELEMENT = 100
MAX_DISTINCT_NAMES = 1_000
# No placemark, and nothing between two element boundaries (a tag, a text, a comment), may span
# more: expat holds a whole tag before it reports one, so an attribute flood or a huge text is
# otherwise read whole into memory.
MAX_SPAN_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024
# A third over what ten times today's network holds (FEED.md: ~20,000-30,000 connectors).
DEFAULT_MAX_CONNECTORS = 40_000
# Each connector's series repeat its station's, device's and own labels and its raw state: what a
# refresh costs grows with their sum. Real feeds average 30 to 60 characters a connector; 256 a label
# is there for the odd long name, not for every connector at once.
LABEL_CHARS_PER_CONNECTOR = 100
# A connector's position on its device: real devices have 1 to 4.
_MAX_POSITION = 1_000


@dataclass(frozen=True)
class SizeBounds:
    """How large a network is accepted. Placemarks, elements and attributes are bounded in proportion
    to the connectors: a real feed holds about 3.4 connectors, 18 elements and 3 attributes a placemark,
    5.4 elements a connector."""

    connectors: int = DEFAULT_MAX_CONNECTORS

    @property
    def placemarks(self) -> int:
        return self.connectors // 2

    @property
    def elements(self) -> int:
        return 6 * self.connectors

    @property
    def attributes(self) -> int:
        return self.connectors

    @property
    def label_chars(self) -> int:
        """The characters of every connector's labels together (station, device, connector, raw state)."""
        return LABEL_CHARS_PER_CONNECTOR * self.connectors

    def check_network(self, stations: int, connectors: int, document: str, stations_named: str) -> None:
        """Refuses as `too_large` a document that holds more stations (`stations_named`: placemarks,
        Locations, sites) or connectors than these bounds, as soon as it does."""
        if stations > self.placemarks or connectors > self.connectors:
            raise FeedError(
                Outcome.TOO_LARGE,
                f"{document} holds over {self.placemarks} {stations_named} or {self.connectors} connectors"
                " (--max-connectors)",
            )


def check_label_size(snapshot: Snapshot, bounds: SizeBounds) -> None:
    """Refuses a snapshot whose connectors' labels together pass `bounds.label_chars`: a label is bounded
    on its own (MAX_LABEL_CHARS), and this bounds what /metrics repeats by --max-connectors, not by a
    label times the connectors."""
    total = sum(
        len(station.name) + len(device.name) + len(connector.name) + len(connector.raw_state)
        for station, device, connector in snapshot.connectors()
    )
    if total > bounds.label_chars:
        raise FeedError(
            Outcome.TOO_LARGE,
            f"the connectors' labels hold {total} characters in all, over {bounds.label_chars}"
            f" ({LABEL_CHARS_PER_CONNECTOR} a connector at --max-connectors)",
        )


def _local_name(tag: str) -> str:
    """The tag without its namespace: the feed is read with or without the KML namespace."""
    return tag.rpartition("}")[2]


def _looks_like_another_format(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head:
        return False  # an empty body is the extreme of truncation
    return not head.startswith(b"<") or head.startswith((b"<!doctype html", b"<html"))


def refused_xml(error: DefusedXmlException, not_format: Outcome, format_name: str) -> FeedError:
    """What defusedxml refused, as a refresh's outcome: an HTML page (its DOCTYPE) is `not_format`, any
    other DTD or forbidden construct `forbidden_xml`."""
    if isinstance(error, DTDForbidden):
        if str(error.name).lower() == "html":
            return FeedError(not_format, f"the document is an HTML page, not {format_name}")
        return FeedError(Outcome.FORBIDDEN_XML, "the document declares a DTD, which is refused")
    return FeedError(Outcome.FORBIDDEN_XML, f"refused XML construct: {type(error).__name__}")


def parse_kml(body: bytes, bounds: SizeBounds = SizeBounds()) -> Snapshot:
    """Parse a whole KML document. Raises FeedError when the document cannot be used."""
    text_issues: Counter[str] = Counter()
    try:
        stations, issues = _read_placemarks(_element_events(body, text_issues), bounds)
    except DefusedXmlException as error:
        raise refused_xml(error, Outcome.NOT_KML, "KML") from None
    except ParseError as error:
        if _looks_like_another_format(body):
            raise FeedError(Outcome.NOT_KML, "the document is not XML") from None
        raise FeedError(Outcome.INVALID_XML, f"the document is not well-formed XML: {error}") from None
    issues.update(text_issues)
    if not stations:
        raise FeedError(Outcome.EMPTY, "the document holds no usable placemark", dict(issues))
    snapshot = Snapshot(stations=tuple(stations), issues=dict(issues), version="KML")
    if snapshot.connector_count == 0:
        # Valid KML whose placemarks lost their devices is a feed that changed shape, not an empty network.
        counted = ", ".join(f"{kind}: {count}" for kind, count in sorted(issues.items()))
        raise FeedError(
            Outcome.EMPTY,
            f"the document's {len(stations)} stations hold no usable connector" + (f" ({counted})" if counted else ""),
            dict(issues),
        )
    check_label_size(snapshot, bounds)
    return snapshot


def _element_events(body: bytes, text_issues: Counter[str]) -> Iterator[tuple[str, Element, int]]:
    """("start" | "end", element, bytes fed to the parser so far). The body is fed in chunks, so that
    a single tag, text or comment is refused once it spans MAX_SPAN_BYTES, before it is whole, and a
    flood of distinct names (expat and ElementTree each keep every name they meet) within a chunk.
    A UTF-8 document's bytes that are not UTF-8 become U+FFFD (counted in `text_issues`): expat would
    refuse the whole document for one bad byte in a name."""
    xml_parser = DefusedXMLParser(target=TreeBuilder(), forbid_dtd=True)
    names: dict[str, str] = xml_parser._names  # type: ignore[attr-defined]  # ElementTree's memo of names
    parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"), _parser=xml_parser)
    chunks = memoryview(body)
    utf8 = Utf8Repair(text_issues) if _is_utf8(body) else None
    last_event_at = 0
    for start in range(0, len(body) + _CHUNK_BYTES, _CHUNK_BYTES):
        fed = min(start + _CHUNK_BYTES, len(body))
        if start < len(body):
            parser.feed(utf8.repair(bytes(chunks[start:fed])) if utf8 else chunks[start:fed])
        else:
            if utf8 is not None:
                parser.feed(utf8.repair(b"", final=True))
            parser.close()
        if len(names) > MAX_DISTINCT_NAMES:
            raise FeedError(Outcome.FORBIDDEN_XML, f"over {MAX_DISTINCT_NAMES} distinct element or attribute names")
        # Only start and end events were asked for: each carries an element.
        events: Iterator[tuple[str, Element]] = parser.read_events()  # type: ignore[assignment]
        for event, element in events:
            last_event_at = fed
            yield event, element, fed
        if fed - last_event_at > MAX_SPAN_BYTES:
            raise FeedError(Outcome.FORBIDDEN_XML, f"a single tag, text or comment spans over {MAX_SPAN_BYTES} bytes")


_DECLARED_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)""")


def _is_utf8(body: bytes) -> bool:
    """Whether the document is UTF-8: it says so, or says nothing and starts as ASCII does (not UTF-16)."""
    if body.startswith(b"\xef\xbb\xbf"):
        return True
    if body.startswith((b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<")):
        return False
    declared = _DECLARED_ENCODING.match(body[:256])
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")


def _read_placemarks(
    events: Iterable[tuple[str, Element, int]], bounds: SizeBounds
) -> tuple[list[Station], Counter[str]]:
    """Reads placemarks one at a time. Only the open elements and the placemark being read stay in
    memory: a 30 MB feed never stands whole in memory, and a hostile one cannot make it grow."""
    stations: list[Station] = []
    station_index: dict[str, int] = {}  # station name -> its place in `stations`
    issues: Counter[str] = Counter()
    seen_connectors = _SeenConnectors()
    open_elements: list[Element] = []
    max_elements, max_attributes = bounds.elements, bounds.attributes
    placemark_depth = 0  # depth of the placemark being read, 0 outside one
    placemark_size = outside_size = total_size = placemark_start = total_attributes = placemarks = 0
    for event, element, fed in events:
        if event == "start":
            open_elements.append(element)
            total_size += 1
            if total_size == 1 and _local_name(element.tag) != "kml":
                raise FeedError(Outcome.NOT_KML, f"the root element is <{_local_name(element.tag)}>, not <kml>")
            # keys(), not attrib: attrib gives each element a dict of its own.
            if attribute_names := element.keys():
                attributes = len(attribute_names)
                total_attributes += attributes
                if attributes > MAX_ATTRIBUTES_PER_ELEMENT or total_attributes > max_attributes:
                    raise FeedError(
                        Outcome.FORBIDDEN_XML,
                        f"over {MAX_ATTRIBUTES_PER_ELEMENT} attributes on an element or {max_attributes} in all",
                    )
            if placemark_depth:
                placemark_size += 1
                if placemark_size > MAX_PLACEMARK_ELEMENTS:
                    raise FeedError(Outcome.FORBIDDEN_XML, f"a placemark holds over {MAX_PLACEMARK_ELEMENTS} elements")
                if fed - placemark_start > MAX_SPAN_BYTES:
                    raise FeedError(Outcome.FORBIDDEN_XML, f"a placemark spans over {MAX_SPAN_BYTES} bytes")
            elif _local_name(element.tag) == "Placemark":
                placemark_depth, placemark_size, placemark_start = len(open_elements), 0, fed
            else:
                outside_size += 1
                if outside_size > MAX_ELEMENTS_OUTSIDE_PLACEMARKS:
                    raise FeedError(
                        Outcome.FORBIDDEN_XML,
                        f"over {MAX_ELEMENTS_OUTSIDE_PLACEMARKS} elements stand outside placemarks",
                    )
            if total_size > max_elements:
                raise FeedError(Outcome.FORBIDDEN_XML, f"the document holds over {max_elements} elements")
            if len(open_elements) > MAX_DEPTH:
                raise FeedError(Outcome.FORBIDDEN_XML, f"elements are nested deeper than {MAX_DEPTH}")
            continue
        depth = len(open_elements)
        open_elements.pop()
        if depth > placemark_depth > 0:
            continue  # inside the placemark: kept until the placemark ends
        if depth == placemark_depth:
            placemark_depth = 0
            station = _read_station(element, issues, seen_connectors)
            if station is not None:
                placemarks += 1
                _add_station(station, stations, station_index, issues)
            bounds.check_network(placemarks, len(seen_connectors.labels), "the document", "placemarks")
        if open_elements:
            # The element that just ended is its parent's last child: dropping it frees it.
            del open_elements[-1][-1]
    return stations, issues


def _add_station(station: Station, stations: list[Station], index: dict[str, int], issues: Counter[str]) -> None:
    """A station name is a label of every series: two placemarks of one name become one station, so that
    the station has one info series. The first placemark's address and coordinates are kept."""
    place = index.get(station.name)
    if place is None:
        index[station.name] = len(stations)
        stations.append(station)
        return
    issues["duplicate_station"] += 1
    first = stations[place]
    stations[place] = replace(first, devices=first.devices + station.devices)


@dataclass
class _SeenConnectors:
    """The connectors read so far: each is one series (its station, device and name) and one identity
    (its station, device and id)."""

    labels: set[tuple[str, str, str]] = field(default_factory=set)
    ids: set[tuple[str, str, str]] = field(default_factory=set)


def _children(element: Element) -> Iterator[tuple[str, Element]]:
    for child in element:
        yield _local_name(child.tag), child


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _read_station(placemark: Element, issues: Counter[str], seen_connectors: _SeenConnectors) -> Station | None:
    name = address = coordinates = ""
    device_values: list[str] = []
    for tag, child in _children(placemark):
        if tag == "name":
            name = label_text(_text(child), issues)
        elif tag == "address":
            address = label_text(_text(child), issues)
        elif tag == "Point":
            for point_tag, point_child in _children(child):
                if point_tag == "coordinates":
                    coordinates = _text(point_child)
        elif tag == "ExtendedData":
            for data_tag, data in _children(child):
                if data_tag == "Data" and data.get("name") == _DEVICE_DATA_NAME:
                    device_values.extend(_text(value) for value_tag, value in _children(data) if value_tag == "value")
    if not name:
        issues["placemark_without_name"] += 1
        return None
    latitude, longitude = _read_coordinates(coordinates, issues)
    devices = [
        device for value in device_values if (device := _read_device(name, value, issues, seen_connectors)) is not None
    ]
    return Station(name=name, address=address, latitude=latitude, longitude=longitude, devices=tuple(devices))


def _read_coordinates(text: str, issues: Counter[str]) -> tuple[float | None, float | None]:
    # "lon,lat" or "lon,lat,alt", longitude first; a LineString-like list keeps its first point.
    first_point = text.split()[0] if text.split() else ""
    parts = first_point.split(",")
    try:
        longitude, latitude = float(parts[0]), float(parts[1])
    except (IndexError, ValueError):
        issues["invalid_coordinates"] += 1
        return None, None
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        issues["invalid_coordinates"] += 1
        return None, None
    return latitude, longitude


def _read_device(
    station_name: str, value: str, issues: Counter[str], seen_connectors: _SeenConnectors
) -> Device | None:
    try:
        device = json.loads(value)
    except ValueError:
        device = None
    if not isinstance(device, dict):
        issues["invalid_device_json"] += 1
        return None
    name = device.get("name")
    if not isinstance(name, str) or not name.strip():
        if device.get("id") is None:
            issues["device_without_name"] += 1
            return None
        name = str(device["id"])
    name = label_text(name, issues)
    entries = device.get("connectors")
    if entries is None:
        entries = device.get("chargingPointList")  # the older files' name for the list
    if not isinstance(entries, list):
        entries = []
    connectors: list[Connector] = []
    for index, entry in enumerate(entries):
        connector = _read_connector(name, index, entry, issues)
        if connector is None:
            continue
        key, identity = (station_name, name, connector.name), (station_name, name, connector.identity)
        if key in seen_connectors.labels or identity in seen_connectors.ids:
            issues["duplicate_connector"] += 1
            continue
        seen_connectors.labels.add(key)
        if connector.identity:
            seen_connectors.ids.add(identity)
        connectors.append(connector)
    return Device(name=name, connectors=tuple(connectors))


def _read_connector(device_name: str, index: int, entry: object, issues: Counter[str]) -> Connector | None:
    if not isinstance(entry, dict):
        issues["invalid_connector"] += 1
        return None
    position = entry.get("connector")
    if not isinstance(position, int) or isinstance(position, bool) or not 1 <= position <= _MAX_POSITION:
        position = index + 1
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        name = f"{device_name} - {position}"
    name = label_text(name, issues)
    power = entry.get("maxchspeed")
    if isinstance(power, str):
        try:
            power = float(power)
        except ValueError:
            power = None
    if not isinstance(power, (int, float)) or isinstance(power, bool) or not 0 <= power < 1e6:
        issues["invalid_power"] += 1
        power = 0.0
    raw_state = label_text(normalise_raw_state(str(entry.get("description") or "")), issues)
    state = simple_state_of(raw_state)
    if state is None:
        issues["unknown_state"] += 1
        state = SimpleState.UNKNOWN
    return Connector(
        name=name,
        position=position,
        max_power_kw=float(power),
        raw_state=raw_state,
        state=state,
        identity=_identifier(entry.get("id")),
    )


def _identifier(value: object) -> str:
    """A connector's id: a number in today's feed, unique in the network; text is tolerated. It identifies
    the connector to the usage counters, never labels a series: past a label's length it is cut, not counted."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)[:MAX_LABEL_CHARS]
    if isinstance(value, str):
        return value.strip()[:MAX_LABEL_CHARS]
    return ""
