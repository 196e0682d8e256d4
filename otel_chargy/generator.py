"""Synthetic Chargy networks: the demo's feed, the tests' truth and the benchmarks' load.

`python -m otel_chargy.generator --placemarks 1000 > feed.kml` writes one.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zlib
from collections.abc import Sequence
from dataclasses import replace
from xml.sax.saxutils import escape

from otel_chargy.model import KNOWN_RAW_STATES, Connector, Device, Snapshot, Station, simple_state_of

_TOWNS = (
    "Luxembourg",
    "Esch-sur-Alzette",
    "Differdange",
    "Dudelange",
    "Ettelbruck",
    "Diekirch",
    "Wiltz",
    "Echternach",
    "Rumelange",
    "Grevenmacher",
    "Remich",
    "Vianden",
    "Clervaux",
    "Mersch",
    "Schuttrange",
    "Bettembourg",
    "Hesperange",
    "Sanem",
    "Pétange",
    "Mamer",
    "Strassen",
    "Bertrange",
    "Junglinster",
    "Mondorf-les-Bains",
    "Steinfort",
    "Käerjeng",
    "Redange",
    "Troisvierges",
    "Wasserbillig",
    "Kayl",
)
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
                latitude=round(rng.uniform(49.45, 50.18), 6),
                longitude=round(rng.uniform(5.74, 6.53), 6),
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


def _device_json(device: Device, legacy: bool) -> str:
    entries = []
    for connector in device.connectors:
        entry: dict[str, object] = {
            "id": zlib.crc32(connector.name.encode()) % 1_000_000,
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m otel_chargy.generator", description=__doc__)
    parser.add_argument("--placemarks", type=int, default=1000, help="stations in the network (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--legacy", action="store_true", help="use the older chargingPointList shape")
    args = parser.parse_args(argv)
    sys.stdout.buffer.write(render_kml(generate_network(args.placemarks, args.seed), legacy=args.legacy))


if __name__ == "__main__":
    main()
