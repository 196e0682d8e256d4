"""The immutable snapshot of the network that one refresh produces."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class SimpleState(StrEnum):
    """The original exporter's three states, and `unknown`: a status the feed gives that no table maps."""

    AVAILABLE = "available"
    CHARGING = "charging"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


# FEED.md's table, plus the values public parsers of the same feed have seen.
_SIMPLE_STATE_OF_RAW: Mapping[str, SimpleState] = MappingProxyType(
    {
        "AVAILABLE": SimpleState.AVAILABLE,
        "CHARGING": SimpleState.CHARGING,
        "PREPARING": SimpleState.CHARGING,
        "FINISHING": SimpleState.CHARGING,
        "SUSPENDED_EV": SimpleState.CHARGING,
        "SUSPENDED_EVSE": SimpleState.CHARGING,
        "OCCUPIED": SimpleState.CHARGING,
        "UNAVAILABLE": SimpleState.UNAVAILABLE,
        "OFFLINE": SimpleState.UNAVAILABLE,
        "FAULT": SimpleState.UNAVAILABLE,
        "FAULTED": SimpleState.UNAVAILABLE,
        "RESERVED": SimpleState.UNAVAILABLE,
    }
)

KNOWN_RAW_STATES: tuple[str, ...] = tuple(_SIMPLE_STATE_OF_RAW)


def normalise_raw_state(raw: str) -> str:
    return raw.strip().upper()


def simple_state_of(normalised_raw: str) -> SimpleState | None:
    """The simple state of a normalised raw state, or None when it is unknown."""
    return _SIMPLE_STATE_OF_RAW.get(normalised_raw)


@dataclass(frozen=True, slots=True)
class Connector:
    name: str
    position: int
    max_power_kw: float
    raw_state: str
    state: SimpleState
    identity: str = field(default="", compare=False)
    """The feed's own id for the connector, unique in the snapshot, kept from one refresh to the next
    whatever its labels; empty where the feed gives none (then its labels identify it)."""

    @property
    def speed(self) -> str:
        """The original exporter's `speed` label: the integer part of the kW figure."""
        return str(int(self.max_power_kw))


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    connectors: tuple[Connector, ...]
    identity: str = field(default="", compare=False)
    """The feed's own id for the device, unique in its station; empty where the feed gives none (then
    its name identifies it)."""


@dataclass(frozen=True, slots=True)
class Station:
    name: str
    address: str
    latitude: float | None
    longitude: float | None
    devices: tuple[Device, ...]
    identity: str = field(default="", compare=False)
    """The feed's own id for the station, unique in the snapshot; empty where the feed gives none (then
    its name, unique in the snapshot, identifies it)."""

    @property
    def max_power_kw(self) -> float:
        return max((c.max_power_kw for d in self.devices for c in d.connectors), default=0.0)

    def count_by_state(self) -> dict[SimpleState, int]:
        counts = dict.fromkeys(SimpleState, 0)
        for device in self.devices:
            for connector in device.connectors:
                counts[connector.state] += 1
        return counts


@dataclass(frozen=True, slots=True)
class Snapshot:
    stations: tuple[Station, ...]
    # parse issue kind -> how many times it was met in this document
    issues: Mapping[str, int] = field(default_factory=dict)
    version: str = ""
    """The format and version read ("KML", "OCPI 2.1.1"), as `check`, the log and the page say it."""
    power_rules: Mapping[str, int] = field(default_factory=dict)
    """How each connector's power was read (a rule's description -> connectors): what `check` shows."""

    def connectors(self) -> Iterator[tuple[Station, Device, Connector]]:
        for station in self.stations:
            for device in station.devices:
                for connector in device.connectors:
                    yield station, device, connector

    @property
    def device_count(self) -> int:
        return sum(len(station.devices) for station in self.stations)

    @property
    def connector_count(self) -> int:
        return sum(len(device.connectors) for station in self.stations for device in station.devices)

    def count_by_state(self) -> dict[SimpleState, int]:
        counts = dict.fromkeys(SimpleState, 0)
        for _, _, connector in self.connectors():
            counts[connector.state] += 1
        return counts

    def count_by_speed_and_state(self) -> dict[str, dict[SimpleState, int]]:
        """Connectors by speed (slowest first) and simple state; every state of a speed present, 0 or not."""
        by_speed = Counter((connector.speed, connector.state) for _, _, connector in self.connectors())
        speeds = sorted({speed for speed, _ in by_speed}, key=int)
        return {speed: {state: by_speed[speed, state] for state in SimpleState} for speed in speeds}

    def unknown_raw_states(self) -> dict[str, int]:
        """The raw states no table maps, with the connectors showing each: most frequent first."""
        counts: dict[str, int] = {}
        for _, _, connector in self.connectors():
            if connector.state is SimpleState.UNKNOWN:
                counts[connector.raw_state] = counts.get(connector.raw_state, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
