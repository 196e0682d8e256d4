"""OICP (Hubject) EVSEData and EVSEStatus JSON, as Switzerland's national feed publishes them -> the
static table and the statuses of a LiveTable. Knows nothing of metrics or HTTP.

EVSEData: `{"EVSEData": [{"OperatorID": ..., "EVSEDataRecord": [...]}]}`; EVSEStatus: `{"EVSEStatuses":
[{"OperatorID": ..., "EVSEStatusRecord": [{"EvseID": ..., "EVSEStatus": "Available"}]}]}`. Records are
read one at a time (jsonstream), wherever they stand, so OICP's other wrappers (`EvseStatuses` →
`OperatorEvseStatus` → `EvseStatusRecord`) read as well.

Mapping: station = charging station (its name in the first language given; EVSEs of one name and
address are one station), device = EvseID, connector = each plug in order, power = the largest of the
charging facilities (kW, sometimes given as text).
"""

from __future__ import annotations

import math
from collections import Counter

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

OICP_ISSUE_KINDS: dict[str, str] = {
    "invalid_evse": "an EVSEDataRecord that is not an object, or has no EvseID, was skipped",
    "duplicate_evse": "an EVSEDataRecord whose EvseID was already seen was skipped",
    "invalid_coordinates": "a station's coordinates could not be read; it is kept without them",
    "invalid_power": "an EVSE's charging facilities give no power; 0 is used",
    "invalid_status": "an EVSEStatusRecord without EvseID or EVSEStatus was skipped",
    "status_of_unknown_refill_point": "a status for an EVSE the EVSEData does not hold: not served",
    "unknown_state": "a status outside OICP's table: the EVSE is served as unknown",
    "static_part_stale": "the EVSEData could not be read: the last good one was kept",
    **LABEL_ISSUE_KINDS,
}

OICP_STATUSES = StatusTable(
    {
        "available": SimpleState.AVAILABLE,
        "occupied": SimpleState.CHARGING,
        "reserved": SimpleState.UNAVAILABLE,
        "outofservice": SimpleState.UNAVAILABLE,
        "unknown": SimpleState.UNKNOWN,
        "evsenotfound": None,
    }
)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _number(value: object) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", "."))
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def _name(record: dict[str, object]) -> str:
    """The station's name in the first language given: ChargingStationNames [{lang, value}], or a text."""
    names = record.get("ChargingStationNames", record.get("ChargingStationName"))
    for entry in names if isinstance(names, list) else [names]:
        if isinstance(entry, dict) and (text := _text(entry.get("value", entry.get("Value")))):
            return text
        if text := _text(entry):
            return text
    return ""


def _address(record: dict[str, object]) -> str:
    address = record.get("Address")
    if not isinstance(address, dict):
        return ""
    street = " ".join(part for part in (_text(address.get("Street")), _text(address.get("HouseNum"))) if part)
    place = " ".join(part for part in (_text(address.get("PostalCode")), _text(address.get("City"))) if part)
    return ", ".join(part for part in (street, place) if part)


def _coordinates(record: dict[str, object]) -> tuple[float | None, float | None]:
    """GeoCoordinates as Google ("lat lon", or {"Coordinates": "lat lon"}) or DecimalDegree."""
    geo = record.get("GeoCoordinates")
    if not isinstance(geo, dict):
        return None, None
    google = geo.get("Google")
    if isinstance(google, dict):
        google = google.get("Coordinates")
    if isinstance(google, str):
        parts = google.replace(",", " ").split()
        if len(parts) == 2:
            return _degrees(parts[0], 90), _degrees(parts[1], 180)
    decimal = geo.get("DecimalDegree")
    if isinstance(decimal, dict):
        return _degrees(decimal.get("Latitude"), 90), _degrees(decimal.get("Longitude"), 180)
    return None, None


def _degrees(value: object, limit: float) -> float | None:
    number = _number(value)
    return number if number is not None and -limit <= number <= limit else None


def _power_kw(record: dict[str, object], issues: Counter[str]) -> float:
    facilities = record.get("ChargingFacilities")
    powers = [
        power
        for facility in (facilities if isinstance(facilities, list) else [])
        if isinstance(facility, dict)
        and (power := _number(facility.get("Power", facility.get("power")))) is not None
        and 0 <= power < 1e6
    ]
    if not powers:
        issues["invalid_power"] += 1
        return 0.0
    return max(powers)


class _TableBuilder:
    def __init__(self, options: TableOptions) -> None:
        self.options = options
        self.issues: Counter[str] = Counter()
        self.sites: dict[tuple[str, str], tuple[Site, list[RefillPoint]]] = {}
        self.keys: set[str] = set()
        self.filtered: set[str] = set()
        self.connectors = 0

    def add(self, _: str, item: object) -> None:
        record = item if isinstance(item, dict) else None
        key = _text(record.get("EvseID", record.get("EvseId"))) if record is not None else ""
        if record is None or not key:
            self.issues["invalid_evse"] += 1
            return
        if key in self.keys:
            self.issues["duplicate_evse"] += 1
            return
        self.keys.add(key)
        latitude, longitude = _coordinates(record)
        bbox = self.options.bbox
        if bbox is not None and (latitude is None or longitude is None or not bbox.holds(latitude, longitude)):
            self.filtered.add(key)
            return
        if latitude is None or longitude is None:
            self.issues["invalid_coordinates"] += 1
            latitude = longitude = None
        power = _power_kw(record, self.issues)
        plugs = record.get("Plugs")
        count = len(plugs) if isinstance(plugs, list) and plugs else 1
        outlets = tuple(Outlet(f"{key} - {position}", position, power) for position in range(1, count + 1))
        address = _address(record)
        name = _name(record) or address or _text(record.get("ChargingStationId")) or key
        site = self.sites.get((name, address))
        if site is None:
            site = (Site(name, address, latitude, longitude, ()), [])
            self.sites[(name, address)] = site
        site[1].append(RefillPoint(key, key, outlets))
        self.connectors += count
        self.options.bounds.check_network(len(self.sites), self.connectors, "the EVSEData", "stations")

    def table(self, found: int) -> StaticTable:
        if not self.sites:
            if found:
                raise FeedError(
                    Outcome.EMPTY, f"none of the EVSEData's {found} records is usable and within the filters"
                )
            raise FeedError(Outcome.NOT_OICP, "the EVSEData holds no EVSEDataRecord")
        sites = [
            (address or name, Site(site.name, site.address, site.latitude, site.longitude, tuple(points)))
            for (name, address), (site, points) in self.sites.items()
        ]
        return StaticTable(distinct_site_names(sites, self.issues), dict(self.issues), frozenset(self.filtered), "OICP")


def parse_oicp_data(body: bytes, options: TableOptions = DEFAULT_TABLE_OPTIONS) -> StaticTable:
    """The EVSEs of an OICP EVSEData document, as stations. Raises FeedError."""
    builder = _TableBuilder(options)
    keys = frozenset({"EVSEDataRecord", "EvseDataRecord"})
    found = read_objects(body, options.max_bytes, keys, builder.add, Outcome.NOT_OICP, builder.issues)
    return builder.table(found)


def parse_oicp_status(
    body: bytes, options: TableOptions = DEFAULT_TABLE_OPTIONS, relevance: Relevance | None = None
) -> StatusUpdate:
    """The statuses of an OICP EVSEStatus document; with a table's `relevance`, only those of its EVSEs.
    Raises FeedError."""
    collector = StatusCollector(relevance, options.bounds.connectors, "EVSEStatus")

    def keep(_: str, item: object) -> None:
        record = item if isinstance(item, dict) else {}
        key = _text(record.get("EvseID", record.get("EvseId")))
        collector.add(key, _text(record.get("EVSEStatus", record.get("EvseStatus"))))

    keys = frozenset({"EVSEStatusRecord", "EvseStatusRecord"})
    found = read_objects(body, options.max_bytes, keys, keep, Outcome.NOT_OICP, collector.issues)
    if not found:
        raise FeedError(Outcome.NOT_OICP, "the EVSEStatus holds no EVSEStatusRecord")
    return collector.update()
