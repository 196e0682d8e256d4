"""DATEX II v3 Energy Infrastructure (the EU's AFIR publications) -> the static table and the statuses of
a LiveTable. Knows nothing of metrics or HTTP.

Both encodings: JSON as the Mobilithek AFIR profile defines it (a table publication as `{"payload":
{...}}`, a status publication as `{"messageContainer": {"payload": [...]}}`, classes prefixed `aegi`,
`afac`...), and XML in the DATEX II v3 namespaces. Elements and members are matched by their local name
and class wrappers (`{"aegiElectricChargingPoint": {...}}`) are looked through, for publishers name
classes differently. Both are read as a stream: one site, or one refill point's status, at a time.

Mapping: station = energy-infrastructure site, device = refill point (its EVSE id, else its id),
connector = each of its connectors (its EVSE id where it has one, else "device - position").
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException

from otel_chargy.jsonstream import read_objects
from otel_chargy.labels import LABEL_ISSUE_KINDS
from otel_chargy.livetable import (
    DEFAULT_TABLE_OPTIONS,
    Outlet,
    RefillPoint,
    Relevance,
    Site,
    StaticTable,
    StatusCollector,
    StatusTable,
    StatusUpdate,
    TableOptions,
    distinct_site_names,
)
from otel_chargy.model import SimpleState
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import MAX_DEPTH as MAX_XML_DEPTH
from otel_chargy.parse import SizeBounds, _element_events, _local_name, refused_xml

# Kinds of parse issue met in DATEX II publications (the `kind` label of `chargy_feed_parse_issues_total`).
DATEX2_ISSUE_KINDS: dict[str, str] = {
    "invalid_site": "a site that is not an object was skipped",
    "invalid_refill_point": "a refill point without an id was skipped",
    "duplicate_refill_point": "a refill point whose id was already seen was skipped",
    "invalid_coordinates": "a site's coordinates could not be read; it is kept without them",
    "invalid_power": "a connector's power (maxPowerAtSocket, else the refill point's availableChargingPower) is "
    "missing or not a number; 0 is used",
    "invalid_status": "a refill point status without a reference id was skipped",
    "status_of_unknown_refill_point": "a status for a refill point the static part does not hold: not served",
    "unknown_state": "a status outside DATEX II's table: the refill point is served as unknown",
    "static_part_stale": "the static part could not be read: the last good one was kept",
    **LABEL_ISSUE_KINDS,
}

# DATEX II v3's RefillPointStatusEnum, compared in lower case.
DATEX2_STATUSES = StatusTable(
    {
        "available": SimpleState.AVAILABLE,
        "charging": SimpleState.CHARGING,
        "occupied": SimpleState.CHARGING,
        "blocked": SimpleState.UNAVAILABLE,
        "faulted": SimpleState.UNAVAILABLE,
        "inoperative": SimpleState.UNAVAILABLE,
        "outoforder": SimpleState.UNAVAILABLE,
        "outofstock": SimpleState.UNAVAILABLE,
        "unavailable": SimpleState.UNAVAILABLE,
        "reserved": SimpleState.UNAVAILABLE,
        "unknown": SimpleState.UNKNOWN,
        "planned": None,
        "removed": None,
    }
)
# A real site holds a few hundred elements; one of a motorway hub with its tariffs a few thousand.
MAX_SITE_ELEMENTS = 20_000
# Outside the sites (or statuses) stand the header and, in a status publication, each site's and
# station's status wrapper and reference: a few per refill point.
MAX_ELEMENTS_OUTSIDE_SITES = 10_000
_OUTSIDE_ELEMENTS_PER_CONNECTOR = 4
_SITE = "energyInfrastructureSite"
_STATUS = "refillPointStatus"
_GZIP_MAGIC = b"\x1f\x8b"


def _is_xml(body: bytes) -> bool:
    """The document (gzip or not) starts with markup; a corrupt gzip body is left to the JSON reader,
    which says so."""
    head = body[:64]
    if body.startswith(_GZIP_MAGIC):
        try:
            head = gzip.GzipFile(fileobj=io.BytesIO(body)).read(64)
        except (OSError, EOFError, zlib.error):
            return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def _inflated(body: bytes, max_bytes: int) -> bytes:
    """A gzip XML body, inflated within `max_bytes`."""
    if not body.startswith(_GZIP_MAGIC):
        return body
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as file:
        try:
            data = file.read(max_bytes + 1)
        except (OSError, EOFError) as error:
            raise FeedError(Outcome.INVALID_XML, f"the document's gzip body is corrupt or truncated: {error}") from None
    if len(data) > max_bytes:
        raise FeedError(Outcome.TOO_LARGE, f"the feed is larger than the limit of {max_bytes} bytes once decompressed")
    return data


class _TableBuilder:
    def __init__(self, options: TableOptions) -> None:
        self.options = options
        self.issues: Counter[str] = Counter()
        self.sites: list[tuple[str, Site]] = []
        self.keys: set[str] = set()
        self.filtered: set[str] = set()
        self.connectors = 0

    def add(self, site_id: str, site: Site) -> None:
        bbox = self.options.bbox
        if bbox is not None and (
            site.latitude is None or site.longitude is None or not bbox.holds(site.latitude, site.longitude)
        ):
            self.filtered.update(point.key for point in site.refill_points)
            return
        self.connectors += sum(len(point.outlets) for point in site.refill_points)
        self.sites.append((site_id, site))
        self.options.bounds.check_network(len(self.sites), self.connectors, "the static part", "sites")

    def refill_point(self, key: str, label: str, outlets: list[Outlet]) -> RefillPoint | None:
        if not key:
            self.issues["invalid_refill_point"] += 1
            return None
        if key in self.keys:
            self.issues["duplicate_refill_point"] += 1
            return None
        self.keys.add(key)
        label = label or key
        # Connectors that repeat an EVSE id (their refill point's, or each other's) are told apart by position.
        names = [outlet.name for outlet in outlets]
        distinct = tuple(
            outlet
            if names.count(outlet.name) == 1
            else Outlet(f"{label} - {outlet.position}", outlet.position, outlet.max_power_kw)
            for outlet in outlets
        )
        return RefillPoint(key, label, distinct)

    def table(self, found: int, version: str) -> StaticTable:
        if not self.sites:
            if found:
                raise FeedError(
                    Outcome.EMPTY, f"none of the static part's {found} sites is usable and within the filters"
                )
            raise FeedError(Outcome.NOT_DATEX2, "the static part holds no energyInfrastructureSite")
        return StaticTable(
            distinct_site_names(self.sites, self.issues), dict(self.issues), frozenset(self.filtered), version
        )


def parse_datex2_table(body: bytes, options: TableOptions = DEFAULT_TABLE_OPTIONS) -> StaticTable:
    """The sites of an EnergyInfrastructureTablePublication, JSON or XML. Raises FeedError."""
    builder = _TableBuilder(options)
    if _is_xml(body):
        found = _read_xml(
            _inflated(body, options.max_bytes),
            _SITE,
            lambda element: _xml_site(element, builder),
            options.bounds,
            builder.issues,
        )
        return builder.table(found, "DATEX II v3 (XML)")

    def site(_: str, item: object) -> None:
        _json_site(item, builder)

    found = read_objects(body, options.max_bytes, frozenset({_SITE}), site, Outcome.NOT_DATEX2, builder.issues)
    return builder.table(found, "DATEX II v3 (JSON)")


def parse_datex2_status(
    body: bytes, options: TableOptions = DEFAULT_TABLE_OPTIONS, relevance: Relevance | None = None
) -> StatusUpdate:
    """The refill point statuses of an EnergyInfrastructureStatusPublication, JSON or XML; with a table's
    `relevance`, only those of its refill points. Raises FeedError."""
    bounds = options.bounds
    collector = StatusCollector(relevance, bounds.connectors, "status part")
    keep = collector.add

    if _is_xml(body):
        found = _read_xml(
            _inflated(body, options.max_bytes),
            _STATUS,
            lambda element: keep(*_xml_status(element)),
            bounds,
            collector.issues,
        )
    else:
        found = read_objects(
            body,
            options.max_bytes,
            frozenset({_STATUS}),
            lambda _, item: keep(*_json_status(item)),
            Outcome.NOT_DATEX2,
            collector.issues,
        )
    if not found:
        raise FeedError(Outcome.NOT_DATEX2, "the status part holds no refillPointStatus")
    return collector.update()


# --- JSON


def _unwrapped(value: object) -> dict[str, object] | None:
    """An object, looked through a class wrapper: {"aegiElectricChargingPoint": {...}} -> {...}."""
    if not isinstance(value, dict):
        return None
    if len(value) == 1:
        (inner,) = value.values()
        if isinstance(inner, dict):
            return inner
    return value


def _items(value: object) -> list[object]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _json_text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _json_multilingual(value: object) -> str:
    """A MultilingualString's first value: {"values": [{"lang": "de", "value": "..."}]}."""
    if isinstance(value, dict):
        for entry in _items(value.get("values")):
            if isinstance(entry, dict) and (text := _json_text(entry.get("value"))):
                return text
    return _json_text(value)


def _json_find(value: object, key: str) -> object:
    """The first value of member `key` at any depth (within a site's own bounded depth)."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        children: list[object] = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        if (found := _json_find(child, key)) is not None:
            return found
    return None


def _json_coordinates(value: object, issues: Counter[str]) -> tuple[float | None, float | None]:
    point = _json_find(value, "coordinatesForDisplay") or _json_find(value, "pointCoordinates")
    if isinstance(point, dict):
        latitude, longitude = _degrees(point.get("latitude"), 90), _degrees(point.get("longitude"), 180)
        if latitude is not None and longitude is not None:
            return latitude, longitude
    issues["invalid_coordinates"] += 1
    return None, None


def _json_address(value: object) -> str:
    address = _json_find(value, "address")
    if not isinstance(address, dict):
        return ""
    lines = sorted(
        (_number(line.get("order")) or 0, _json_multilingual(line.get("text")))
        for line in _items(address.get("addressLine"))
        if isinstance(line, dict)
    )
    street = " ".join(text for _, text in lines if text)
    place = " ".join(
        part for part in (_json_text(address.get("postcode")), _json_multilingual(address.get("city"))) if part
    )
    return ", ".join(part for part in (street, place) if part)


def _json_evse_id(value: dict[str, object]) -> str:
    """The EVSE id among the external identifiers, else the first of them, else an `evseId` member."""
    identifiers = [entry for entry in _items(value.get("externalIdentifier")) if isinstance(entry, dict)]
    for entry in identifiers:
        kind = entry.get("typeOfIdentifier")
        is_evse_id = isinstance(kind, dict) and str(kind.get("extendedValueG", kind.get("value"))).lower() == "evseid"
        if is_evse_id and (text := _json_text(entry.get("identifier"))):
            return text
    for entry in identifiers:
        if text := _json_text(entry.get("identifier")):
            return text
    return _json_text(value.get("evseId"))


def _json_site(item: object, builder: _TableBuilder) -> None:
    site = _unwrapped(item)
    if site is None:
        builder.issues["invalid_site"] += 1
        return
    site_id = _json_text(site.get("idG")) or _json_text(site.get("id"))
    points: list[RefillPoint] = []
    for station in _items(site.get("energyInfrastructureStation")):
        if not isinstance(station, dict):
            continue
        for entry in _items(station.get("refillPoint")):
            point = _unwrapped(entry)
            if point is None:
                builder.issues["invalid_refill_point"] += 1
                continue
            key = _json_text(point.get("idG")) or _json_text(point.get("id"))
            label = _json_evse_id(point) or key
            fallback = _largest_power(point.get("availableChargingPower"))
            outlets: list[Outlet] = []
            for position, connector in enumerate(_items(point.get("connector")), start=1):
                entry = connector if isinstance(connector, dict) else {}
                power = _power_kw(entry.get("maxPowerAtSocket"), fallback, builder.issues)
                outlets.append(Outlet(_json_evse_id(entry) or f"{label} - {position}", position, power))
            if not outlets:
                outlets.append(Outlet(f"{label} - 1", 1, _power_kw(None, fallback, builder.issues)))
            if (refill_point := builder.refill_point(key, label, outlets)) is not None:
                points.append(refill_point)
    location = site.get("locationReference")
    if location is None:
        stations = [station for station in _items(site.get("energyInfrastructureStation")) if isinstance(station, dict)]
        location = stations[0].get("locationReference") if stations else None
    latitude, longitude = _json_coordinates(location, builder.issues)
    address = _json_address(location)
    name = _json_multilingual(site.get("name")) or address or site_id
    builder.add(site_id, Site(name, address, latitude, longitude, tuple(points)))


def _json_status(item: object) -> tuple[str, str]:
    status = _unwrapped(item)
    if status is None:
        return "", ""
    reference = status.get("reference")
    key = _json_text(reference.get("idG") or reference.get("id")) if isinstance(reference, dict) else ""
    # Only this status counts: a plannedRefillPointStatus beside it is a future one.
    value = status.get("status")
    return key, _json_text(value.get("value")) if isinstance(value, dict) else _json_text(value)


# --- XML


def _read_xml(
    body: bytes, wanted: str, handle: Callable[[Element], None], bounds: SizeBounds, issues: Counter[str]
) -> int:
    """Calls `handle(element)` on each element named `wanted` once it is whole, then frees it; text that is
    not UTF-8 is repaired and counted in `issues`."""
    outside = MAX_ELEMENTS_OUTSIDE_SITES + _OUTSIDE_ELEMENTS_PER_CONNECTOR * bounds.connectors
    try:
        return _stream_elements(_element_events(body, issues), wanted, handle, outside)
    except DefusedXmlException as error:
        raise refused_xml(error, Outcome.NOT_DATEX2, "DATEX II") from None
    except ParseError as error:
        raise FeedError(Outcome.INVALID_XML, f"the document is not well-formed XML: {error}") from None


def _stream_elements(
    events: Iterator[tuple[str, Element, int]], wanted: str, handle: Callable[[Element], None], max_outside: int
) -> int:
    open_elements: list[Element] = []
    inside = 0  # depth of the wanted element being read, 0 outside one
    size = outside = found = 0
    for event, element, _ in events:
        if event == "start":
            open_elements.append(element)
            if len(open_elements) > MAX_XML_DEPTH:
                raise FeedError(Outcome.FORBIDDEN_XML, f"elements are nested deeper than {MAX_XML_DEPTH}")
            if inside:
                size += 1
                if size > MAX_SITE_ELEMENTS:
                    raise FeedError(Outcome.FORBIDDEN_XML, f"a {wanted} holds over {MAX_SITE_ELEMENTS} elements")
            elif _local_name(element.tag) == wanted:
                inside, size = len(open_elements), 0
            else:
                outside += 1
                if outside > max_outside:
                    raise FeedError(Outcome.FORBIDDEN_XML, f"over {max_outside} elements stand outside {wanted}")
            continue
        depth = len(open_elements)
        open_elements.pop()
        if depth > inside > 0:
            continue
        if depth == inside:
            inside = 0
            found += 1
            handle(element)
        if open_elements:
            del open_elements[-1][-1]  # the element that just ended is its parent's last child: freed
    return found


def _children(element: Element, name: str) -> Iterator[Element]:
    return (child for child in element if _local_name(child.tag) == name)


def _child(element: Element | None, name: str) -> Element | None:
    return None if element is None else next(_children(element, name), None)


def _descendant(element: Element | None, name: str) -> Element | None:
    if element is None:
        return None
    return next((found for found in element.iter() if _local_name(found.tag) == name), None)


def _xml_text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _xml_multilingual(element: Element | None) -> str:
    return next((text for value in _descendants(element, "value") if (text := _xml_text(value))), "")


def _descendants(element: Element | None, name: str) -> Iterator[Element]:
    if element is None:
        return iter(())
    return (found for found in element.iter() if _local_name(found.tag) == name)


def _xml_evse_id(element: Element) -> str:
    if text := _xml_text(_child(element, "evseId")):
        return text
    identifiers = list(_children(element, "externalIdentifier"))
    for entry in identifiers:
        kinds = " ".join(
            _xml_text(kind) for kind in entry.iter() if "typeOfIdentifier" in kind.tag or "extendedValue" in kind.tag
        )
        if "evseid" in kinds.lower() and (text := _xml_text(_child(entry, "identifier"))):
            return text
    return next((text for entry in identifiers if (text := _xml_text(_child(entry, "identifier")))), "")


def _xml_site(site: Element, builder: _TableBuilder) -> None:
    site_id = site.get("id", "").strip()
    points: list[RefillPoint] = []
    stations = list(_children(site, "energyInfrastructureStation"))
    for station in stations:
        for point in _children(station, "refillPoint"):
            key = point.get("id", "").strip()
            label = _xml_evse_id(point) or key
            powers = [_xml_text(power) for power in _children(point, "availableChargingPower")]
            fallback = _largest_power(powers)
            outlets = [
                Outlet(
                    _xml_evse_id(connector) or f"{label} - {position}",
                    position,
                    _power_kw(_xml_text(_child(connector, "maxPowerAtSocket")) or None, fallback, builder.issues),
                )
                for position, connector in enumerate(_children(point, "connector"), start=1)
            ] or [Outlet(f"{label} - 1", 1, _power_kw(None, fallback, builder.issues))]
            if (refill_point := builder.refill_point(key, label, outlets)) is not None:
                points.append(refill_point)
    location = _child(site, "locationReference")
    if location is None and stations:
        location = _child(stations[0], "locationReference")
    latitude, longitude = _xml_coordinates(location, builder.issues)
    address = _xml_address(location)
    name = _xml_multilingual(_child(site, "name")) or address or site_id
    builder.add(site_id, Site(name, address, latitude, longitude, tuple(points)))


def _xml_coordinates(location: Element | None, issues: Counter[str]) -> tuple[float | None, float | None]:
    latitude = _degrees(_xml_text(_descendant(location, "latitude")), 90)
    longitude = _degrees(_xml_text(_descendant(location, "longitude")), 180)
    if latitude is None or longitude is None:
        issues["invalid_coordinates"] += 1
        return None, None
    return latitude, longitude


def _xml_address(location: Element | None) -> str:
    address = _descendant(location, "address")
    if address is None:
        return ""
    lines = sorted(
        (_number(line.get("order")) or 0, _xml_multilingual(_child(line, "text")))
        for line in _children(address, "addressLine")
    )
    street = " ".join(text for _, text in lines if text)
    city = _xml_multilingual(_child(address, "city"))
    place = " ".join(part for part in (_xml_text(_child(address, "postcode")), city) if part)
    return ", ".join(part for part in (street, place) if part)


def _xml_status(status: Element) -> tuple[str, str]:
    reference = _child(status, "reference")
    key = (reference.get("id", "") if reference is not None else "").strip()
    # Only the direct <status> counts: a plannedRefillPointStatus holds a future one.
    return key, _xml_text(_child(status, "status"))


# --- numbers


def _number(value: object) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def _degrees(value: object, limit: float) -> float | None:
    number = _number(value)
    return number if number is not None and -limit <= number <= limit else None


def _largest_power(values: object) -> float | None:
    """The largest of a refill point's availableChargingPower figures (W)."""
    powers = [power for value in _items(values) if (power := _number(value)) is not None and 0 <= power < 1e9]
    return max(powers) if powers else None


def _power_kw(watts: object, fallback_watts: float | None, issues: Counter[str]) -> float:
    power = _number(watts)
    if power is None or not 0 <= power < 1e9:
        power = fallback_watts
    if power is None:
        issues["invalid_power"] += 1
        return 0.0
    return power / 1000
