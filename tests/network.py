"""A network for the status page and API tests: generated, plus the stations that try to break them."""

from __future__ import annotations

from dataclasses import replace

from otel_chargy.generator import generate_network
from otel_chargy.model import SimpleState, Snapshot, Station
from tests.conftest import TEST_API_KEY

HOSTILE_NAME = "<script>alert(1)</script>"
UNPLACED_NAME = "Nowhere - Without Coordinates"
KEY_ADDRESS = f"1 Rue de la Clé, L-1234 Luxembourg API-KEY={TEST_API_KEY}"


def page_network(placemarks: int = 530) -> Snapshot:
    """Today's size; one station named with markup, one without coordinates, one whose address holds the key,
    one whose every connector's state is unknown."""
    network = generate_network(placemarks, seed=12)
    stations = list(network.stations)
    stations[7] = replace(stations[7], name=HOSTILE_NAME)
    stations[11] = replace(stations[11], name=UNPLACED_NAME, latitude=None, longitude=None)
    stations[13] = replace(stations[13], address=KEY_ADDRESS)
    stations[17] = _all_unknown(stations[17], "WORKING")
    return replace(network, stations=tuple(stations))


def _all_unknown(station: Station, raw_state: str) -> Station:
    """The station with every connector in a state no table maps."""
    devices = tuple(
        replace(
            device,
            connectors=tuple(replace(c, raw_state=raw_state, state=SimpleState.UNKNOWN) for c in device.connectors),
        )
        for device in station.devices
    )
    return replace(station, devices=devices)


def counts_of(station: Station) -> dict[str, int]:
    counts = dict.fromkeys((state.value for state in SimpleState), 0)
    for device in station.devices:
        for connector in device.connectors:
            counts[connector.state.value] += 1
    return counts
