"""Synthetic Chargy networks: the demo's feed, the tests' truth and the benchmarks' load.

`python -m otel_chargy.generator --placemarks 1000 > feed.kml` writes one;
`python -m otel_chargy.generator --format ocpi --placemarks 1000 > locations.json` an OCPI network;
`--format datex2|oicp --part static|status` one part of a two-part network (generator_afir).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import sys
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape

from otel_chargy.model import KNOWN_RAW_STATES, Connector, Device, SimpleState, Snapshot, Station, simple_state_of

# The demo's towns and their centres (latitude, longitude; WGS 84, to about 100 m), so that each station
# is placed in its town: within about a kilometre of the centre. The towns on the Moselle, the Sauer and
# the Our sit up to 2 km inland, where the map's 1:50m outline, which cuts the rivers' bends, still holds them.
_TOWN_CENTRES = {
    "Luxembourg": (49.6116, 6.1319),
    "Esch-sur-Alzette": (49.4958, 5.9806),
    "Differdange": (49.5242, 5.8914),
    "Dudelange": (49.4806, 6.0875),
    "Ettelbruck": (49.8475, 6.1042),
    "Diekirch": (49.8681, 6.1597),
    "Wiltz": (49.9661, 5.9322),
    "Echternach": (49.8037, 6.4060),
    "Rumelange": (49.4640, 6.0306),
    "Grevenmacher": (49.6846, 6.4260),
    "Remich": (49.5530, 6.3470),
    "Vianden": (49.9190, 6.1800),
    "Clervaux": (50.0547, 6.0314),
    "Mersch": (49.7489, 6.1061),
    "Schuttrange": (49.6217, 6.2706),
    "Bettembourg": (49.5186, 6.1028),
    "Hesperange": (49.5689, 6.1511),
    "Sanem": (49.5481, 5.9289),
    "Pétange": (49.5583, 5.8806),
    "Mamer": (49.6275, 6.0233),
    "Strassen": (49.6206, 6.0733),
    "Bertrange": (49.6111, 6.0500),
    "Junglinster": (49.7117, 6.2531),
    "Mondorf-les-Bains": (49.5100, 6.2750),
    "Steinfort": (49.6614, 5.9194),
    "Käerjeng": (49.5800, 5.9000),
    "Redange": (49.7639, 5.8894),
    "Troisvierges": (50.1208, 6.0003),
    "Wasserbillig": (49.7200, 6.4740),
    "Kayl": (49.4886, 6.0397),
}
_TOWNS = tuple(_TOWN_CENTRES)
# How far from its town's centre a station may be, in degrees: about 900 m either way.
_TOWN_SPREAD = 0.008
_SITES = (
    "Parking Eglise",
    "Gare",
    "Place du Marché",
    "Rue Principale",
    "Mairie",
    "Centre Sportif",
    "P+R",
    "Route d'Arlon",
    "École",
    "Piscine",
    "Hall Omnisports",
    "Cimetière",
    "Rue de la Gare",
    "Aire de Berchem",
)
# Weighted so that a network looks like the live one: mostly available or charging.
_STATE_WEIGHTS = {
    "AVAILABLE": 50,
    "CHARGING": 25,
    "OCCUPIED": 5,
    "PREPARING": 2,
    "FINISHING": 2,
    "SUSPENDED_EV": 2,
    "SUSPENDED_EVSE": 1,
    "RESERVED": 1,
    "UNAVAILABLE": 5,
    "OFFLINE": 3,
    "FAULT": 2,
    "FAULTED": 2,
}
assert set(_STATE_WEIGHTS) == set(KNOWN_RAW_STATES)


def _random_state(rng: random.Random) -> str:
    return rng.choices(list(_STATE_WEIGHTS), weights=list(_STATE_WEIGHTS.values()))[0]


def _connector(name: str, position: int, power_kw: float, raw_state: str) -> Connector:
    state = simple_state_of(raw_state)
    assert state is not None
    return Connector(name=name, position=position, max_power_kw=power_kw, raw_state=raw_state, state=state)


def generate_network(placemarks: int, seed: int = 0) -> Snapshot:
    """A network of `placemarks` stations, about 2.7 connectors each, like the live feed."""
    rng = random.Random(seed)
    stations: list[Station] = []
    used_names: set[str] = set()
    device_number = 1000
    for index in range(placemarks):
        town = rng.choice(_TOWNS)
        name = f"{town} - {rng.choice(_SITES)}"
        if name in used_names:
            name = f"{name} {index}"
        used_names.add(name)
        fast = rng.random() < 0.03
        device_count = rng.randint(2, 4) if fast else rng.choice((1, 1, 1, 2, 2))
        devices: list[Device] = []
        for _ in range(device_count):
            device_number += 1
            device_name = f"CP{device_number}"
            power = float(rng.choice((150, 160, 300, 400))) if fast else rng.choice((22.0, 22.0, 22.08, 11.0))
            connector_count = rng.choice((1, 2)) if fast else 2
            connectors = tuple(
                _connector(f"{device_name} - {position}", position, power, _random_state(rng))
                for position in range(1, connector_count + 1)
            )
            devices.append(Device(name=device_name, connectors=connectors))
        stations.append(
            Station(
                name=name,
                address=f"{rng.randint(1, 200)} {rng.choice(_SITES)}, L-{rng.randint(1000, 9999)} {town}",
                latitude=round(_TOWN_CENTRES[town][0] + rng.uniform(-_TOWN_SPREAD, _TOWN_SPREAD), 6),
                longitude=round(_TOWN_CENTRES[town][1] + rng.uniform(-_TOWN_SPREAD, _TOWN_SPREAD) * 1.5, 6),
                devices=tuple(devices),
            )
        )
    return Snapshot(stations=tuple(stations))


def move_states(network: Snapshot, rng: random.Random, fraction: float = 0.1) -> Snapshot:
    """The same network with about `fraction` of its connectors in a new random state."""
    stations = []
    for station in network.stations:
        devices = []
        for device in station.devices:
            connectors = tuple(
                _connector(c.name, c.position, c.max_power_kw, _random_state(rng)) if rng.random() < fraction else c
                for c in device.connectors
            )
            devices.append(replace(device, connectors=connectors))
        stations.append(replace(station, devices=tuple(devices)))
    return replace(network, stations=tuple(stations))


def relabel(network: Snapshot, generation: int, fraction: float = 0.2) -> Snapshot:
    """The network as a feed whose labels keep changing shows it at its `generation`-th version: about
    `fraction` of the stations renamed, of the devices (`CP<number>`) with numbers never issued before,
    of the connectors with a new maximum power (so a new `speed`) and of them in a raw state never seen
    before (read as unknown), each new value unique to the generation."""
    rng = random.Random(generation)
    unseen_state = f"STATE_{generation}"
    stations = []
    for station in network.stations:
        devices = []
        for device in station.devices:
            renumbered = f"CP{int(device.name.removeprefix('CP')) + generation * 1_000_000}"
            device_name = renumbered if rng.random() < fraction else device.name
            connectors = []
            for connector in device.connectors:
                power = connector.max_power_kw + generation if rng.random() < fraction else connector.max_power_kw
                raw_state, state = (
                    (unseen_state, SimpleState.UNKNOWN)
                    if rng.random() < fraction
                    else (connector.raw_state, connector.state)
                )
                connectors.append(
                    Connector(f"{device_name} - {connector.position}", connector.position, power, raw_state, state)
                )
            devices.append(Device(device_name, tuple(connectors)))
        name = f"{station.name} ({generation})" if rng.random() < fraction else station.name
        stations.append(replace(station, name=name, devices=tuple(devices)))
    return replace(network, stations=tuple(stations))


def _device_json(device: Device, legacy: bool) -> str:
    entries = []
    for connector in device.connectors:
        entry: dict[str, object] = {
            # Unique in the network, as Chargy's are, and kept while the name is.
            "id": int.from_bytes(hashlib.blake2b(connector.name.encode(), digest_size=6).digest()),
            "maxchspeed": connector.max_power_kw,
            "connector": connector.position,
            "description": connector.raw_state,
        }
        if not legacy:
            entry["name"] = connector.name
        entries.append(entry)
    document: dict[str, object] = {"name": device.name, "numberOfConnectors": len(entries)}
    document["chargingPointList" if legacy else "connectors"] = entries
    if not legacy:
        document["id"] = int(device.name.removeprefix("CP")) if device.name.startswith("CP") else 0
    return json.dumps(document, ensure_ascii=False)


def render_kml(network: Snapshot, *, legacy: bool = False, namespace: bool = True) -> bytes:
    """The network as the Chargy feed publishes it (`legacy`: the older `chargingPointList` shape)."""
    xmlns = ' xmlns="http://www.opengis.net/kml/2.2"' if namespace else ""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<kml{xmlns}><Document><name>Stations</name>\n']
    for station in network.stations:
        state = station.devices[0].connectors[0].raw_state if station.devices and station.devices[0].connectors else ""
        summary = f"{sum(len(device.connectors) for device in station.devices)} connectors"
        parts.append(
            f"<Placemark><name>{escape(station.name)}</name><visibility>1</visibility>"
            f"<address>{escape(station.address)}</address>"
            f"<description>{escape(escape(summary))}</description>"
            f"<styleUrl>#{state}</styleUrl><ExtendedData>"
            f'<Data name="CPnum"><value>{len(station.devices)}</value></Data>'
        )
        for device in station.devices:
            parts.append(
                f'<Data name="chargingdevice"><displayName>Charging device</displayName>'
                f"<value>{escape(_device_json(device, legacy))}</value></Data>"
            )
        coordinates = f"{station.longitude},{station.latitude}" if station.latitude is not None else ""
        parts.append(
            f"</ExtendedData><Point><altitudeMode>clampToGround</altitudeMode>"
            f"<coordinates>{coordinates}</coordinates></Point></Placemark>\n"
        )
    parts.append("</Document></kml>\n")
    return "".join(parts).encode("utf-8")


# OCPI networks: the same towns and sizes, published as OCPI 2.2.1 Locations. The truth is written
# here from OCPI's table, not taken from the parser.
_OCPI_STATUSES: dict[str, tuple[int, SimpleState]] = {
    "AVAILABLE": (55, SimpleState.AVAILABLE),
    "CHARGING": (25, SimpleState.CHARGING),
    "BLOCKED": (2, SimpleState.UNAVAILABLE),
    "RESERVED": (2, SimpleState.UNAVAILABLE),
    "OUTOFORDER": (5, SimpleState.UNAVAILABLE),
    "INOPERATIVE": (3, SimpleState.UNAVAILABLE),
    "UNKNOWN": (8, SimpleState.UNKNOWN),
}
_OCPI_PARTIES = (("NL", "ABC"), ("NL", "XYZ"), ("BE", "BEC"), ("LU", "CGY"))
# (power_type, max_voltage, max_amperage, max_electric_power or None): power from V x A when None.
_OCPI_CONNECTOR_KINDS = (
    ("AC_3_PHASE", 230, 16, None),
    ("AC_3_PHASE", 230, 32, None),
    ("AC_3_PHASE", 230, 32, 22000),
    ("AC_1_PHASE", 230, 32, None),
    ("DC", 920, 500, 300000),
    ("DC", 500, 300, 150000),
)


@dataclass(frozen=True)
class OcpiNetwork:
    truth: Snapshot
    """What a parser must read: published Locations, without PLANNED or REMOVED EVSEs."""
    locations: tuple[dict[str, object], ...]
    """The Locations as published, unpublished ones and PLANNED and REMOVED EVSEs included."""


def generate_ocpi_network(
    locations: int,
    seed: int = 0,
    *,
    area: tuple[float, float, float, float] = (3.36, 50.75, 7.22, 53.47),
    evses_per_location: float = 2.5,
) -> OcpiNetwork:
    """`locations` OCPI Locations spread over `area` (west, south, east, north; the Netherlands by default),
    about `evses_per_location` EVSEs each, one EVSE in 40 PLANNED or REMOVED and one Location in 50 not
    published. Names repeat, as in national feeds: every shared name is labelled with the Location's id."""
    rng = random.Random(seed)
    west, south, east, north = area
    published: list[tuple[dict[str, object], Station]] = []
    documents: list[dict[str, object]] = []
    for index in range(locations):
        country, party = _OCPI_PARTIES[index % len(_OCPI_PARTIES)]
        town = rng.choice(_TOWNS)
        location_id = f"LOC{index:06d}"
        latitude, longitude = round(rng.uniform(south, north), 6), round(rng.uniform(west, east), 6)
        evses: list[dict[str, object]] = []
        devices: list[Device] = []
        evse_count = max(1, round(rng.expovariate(1 / evses_per_location)))
        for number in range(evse_count):
            uid = f"{location_id}-{number}"
            evse_id = f"{country}*{party}*E{index:06d}{number:02d}"
            absent = rng.random() < 0.025
            status = rng.choice(("PLANNED", "REMOVED")) if absent else _random_ocpi_status(rng)
            connectors: list[dict[str, object]] = []
            truth_connectors: list[Connector] = []
            for position in range(1, rng.choice((1, 1, 2, 2, 3)) + 1):
                power_type, voltage, amperage, watts = rng.choice(_OCPI_CONNECTOR_KINDS)
                connector: dict[str, object] = {
                    "id": str(position),
                    "standard": "IEC_62196_T2" if power_type != "DC" else "IEC_62196_T2_COMBO",
                    "format": "SOCKET",
                    "power_type": power_type,
                    "max_voltage": voltage,
                    "max_amperage": amperage,
                    "last_updated": "2026-11-20T10:00:00Z",
                }
                if watts is not None:
                    connector["max_electric_power"] = watts
                connectors.append(connector)
                power_w = watts if watts is not None else voltage * amperage * (3 if power_type == "AC_3_PHASE" else 1)
                truth_connectors.append(
                    Connector(
                        str(position),
                        position,
                        power_w / 1000,
                        status,
                        _OCPI_STATUSES.get(status, (0, SimpleState.UNKNOWN))[1],
                    )
                )
            evses.append(
                {
                    "uid": uid,
                    "evse_id": evse_id,
                    "status": status,
                    "capabilities": ["RFID_READER"],
                    "connectors": connectors,
                    "last_updated": "2026-11-20T10:00:00Z",
                }
            )
            if not absent:
                devices.append(Device(evse_id, tuple(truth_connectors)))
        publish = rng.random() >= 0.02
        document: dict[str, object] = {
            "country_code": country,
            "party_id": party,
            "id": location_id,
            "publish": publish,
            "name": f"{town} - {rng.choice(_SITES)}",
            "address": f"{rng.choice(_SITES)} {rng.randint(1, 200)}",
            "city": town,
            "postal_code": f"{rng.randint(1000, 9999)} AB",
            "country": "NLD",
            "coordinates": {"latitude": f"{latitude:.6f}", "longitude": f"{longitude:.6f}"},
            "parking_type": "ON_STREET",
            "evses": evses,
            "operator": {"name": f"Operator {party}"},
            "time_zone": "Europe/Amsterdam",
            "last_updated": "2026-11-20T10:00:00Z",
        }
        documents.append(document)
        if publish:
            address = f"{document['address']}, {document['postal_code']} {town}"
            published.append((document, Station(str(document["name"]), address, latitude, longitude, tuple(devices))))
    names = Counter(station.name for _, station in published)
    stations = tuple(
        station if names[station.name] == 1 else replace(station, name=f"{station.name} ({document['id']})")
        for document, station in published
    )
    return OcpiNetwork(Snapshot(stations=stations), tuple(documents))


def _random_ocpi_status(rng: random.Random) -> str:
    return rng.choices(list(_OCPI_STATUSES), weights=[weight for weight, _ in _OCPI_STATUSES.values()])[0]


def render_ocpi(locations: Sequence[dict[str, object]], *, form: str = "array", bom: bool = False) -> bytes:
    """Locations as a feed serves them: `array` (a JSON array), `envelope` (an OCPI response) or
    `wrapped` (`{"Locations": [...]}`, as Greece's MYFAH publishes)."""
    items = list(locations)
    document: object
    if form == "array":
        document = items
    elif form == "envelope":
        document = {
            "data": items,
            "status_code": 1000,
            "status_message": "Success",
            "timestamp": "2026-11-27T07:00:00Z",
        }
    elif form == "wrapped":
        document = {"Locations": items}
    else:
        raise ValueError(f"unknown form {form!r}")
    return (b"\xef\xbb\xbf" if bom else b"") + json.dumps(document, ensure_ascii=False).encode()


def ocpi_pages(locations: Sequence[dict[str, object]], pages: int) -> list[bytes]:
    """The Locations in `pages` OCPI responses, as a paged feed serves them (links are the server's)."""
    size = -(-len(locations) // pages)
    return [render_ocpi(locations[start : start + size], form="envelope") for start in range(0, len(locations), size)]


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


def zipped(body: bytes, name: str = "locations.json") -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as writer:
        writer.writestr(name, body)
    return archive.getvalue()


def _two_part_document(feed_format: str, part: str, encoding: str, sites: int, seed: int) -> bytes:
    from otel_chargy import generator_afir as afir  # the two-part formats' own module

    network = afir.generate_two_part_network(sites, seed)
    if feed_format == "oicp":
        return afir.render_oicp_data(network) if part == "static" else afir.render_oicp_status(network)
    if encoding == "xml":
        return afir.render_datex2_table_xml(network) if part == "static" else afir.render_datex2_status_xml(network)
    return afir.render_datex2_table_json(network) if part == "static" else afir.render_datex2_status_json(network)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m otel_chargy.generator", description=__doc__)
    parser.add_argument("--placemarks", type=int, default=1000, help="stations in the network (default 1000)")
    parser.add_argument(
        "--format", choices=("chargy-kml", "ocpi", "datex2", "oicp"), default="chargy-kml", help="the feed's format"
    )
    parser.add_argument(
        "--part", choices=("static", "status"), default="static", help="datex2, oicp: which publication to write"
    )
    parser.add_argument("--encoding", choices=("json", "xml"), default="json", help="datex2: JSON or XML")
    parser.add_argument(
        "--form", choices=("array", "envelope", "wrapped"), default="array", help="OCPI: the document's shape"
    )
    parser.add_argument("--compress", choices=("none", "gzip", "zip"), default="none", help="OCPI: the transport")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--legacy", action="store_true", help="use the older chargingPointList shape")
    args = parser.parse_args(argv)
    if args.format == "chargy-kml":
        sys.stdout.buffer.write(render_kml(generate_network(args.placemarks, args.seed), legacy=args.legacy))
        return
    if args.format in ("datex2", "oicp"):
        body = _two_part_document(args.format, args.part, args.encoding, args.placemarks, args.seed)
    else:
        body = render_ocpi(generate_ocpi_network(args.placemarks, args.seed).locations, form=args.form)
    sys.stdout.buffer.write({"none": body, "gzip": gzipped(body), "zip": zipped(body)}[args.compress])


if __name__ == "__main__":
    main()
