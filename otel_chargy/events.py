"""What changed, and since when: state changes between one refresh and the next, as events.

A refresh's snapshot is compared with the previous one, connector by connector (by station, device
and connector name): a connector whose simple state changed, that appeared or that left is an event,
and so is a station that became all unavailable or all unknown, or recovered. The first refresh
after a start compares with nothing and makes no event. Events are kept newest last in a bounded
ring (`--events.max`); the states' "since" outlive it. Pure: no I/O, no clock; the caller gives the time.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from otel_chargy.model import SimpleState, Snapshot, Station

logger = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 100_000
"""A day of today's network (about 2,800 connectors) even at the demo's churn (10 % of the connectors at
every 5-minute refresh: 288 refreshes of ~280 = ~81,000 events); a real day makes far fewer."""
EVENT_BYTES = 345
"""Memory one kept event costs, measured (benchmarks/events.py): the default bound holds about 33 MiB."""

ConnectorKey = tuple[str, str, str]
"""(station, device, connector) names: what identifies a connector from one refresh to the next."""


class StationState(StrEnum):
    """A station as a person asks after it: can I charge there?"""

    FREE = "free"
    """A connector is available."""
    BUSY = "busy"
    """None is available; some charge."""
    DOWN = "all unavailable"
    UNKNOWN = "unknown"
    """No connector's state can be read."""

    @property
    def is_problem(self) -> bool:
        return self in (StationState.DOWN, StationState.UNKNOWN)


def station_state(states: Iterable[str]) -> StationState:
    """The state of a station whose connectors are in `states` (simple state values)."""
    seen = set(states)
    if SimpleState.AVAILABLE.value in seen:
        return StationState.FREE
    if SimpleState.CHARGING.value in seen:
        return StationState.BUSY
    if SimpleState.UNAVAILABLE.value in seen:
        return StationState.DOWN  # every connector whose state is known is unavailable
    return StationState.UNKNOWN


def state_of_station(station: Station) -> StationState:
    return station_state(connector.state.value for device in station.devices for connector in device.connectors)


class EventName(StrEnum):
    CONNECTOR_STATE = "chargy.connector.state_change"
    CONNECTOR_APPEARED = "chargy.connector.appeared"
    CONNECTOR_LEFT = "chargy.connector.left"
    STATION_DOWN = "chargy.station.down"
    """Every connector of the station became unavailable."""
    STATION_UNKNOWN = "chargy.station.unknown"
    """No connector's state of the station can be read any more."""
    STATION_RECOVERED = "chargy.station.recovered"
    """The station was down or unknown, and a connector is available or charging again."""


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    """Unix time of the fetch that saw the change."""
    name: EventName
    station: str
    device: str | None
    """None for a station's own event."""
    connector: str | None
    from_state: str | None
    """Simple state of a connector, or the station's state; None for what appeared."""
    to_state: str | None
    """None for what left."""
    from_raw: str | None = None
    """The feed's own state of the connector."""
    to_raw: str | None = None


@dataclass(frozen=True, slots=True)
class StationCondition:
    name: str
    state: StationState
    since: float
    """Unix time of the first refresh that saw this state."""
    since_start: bool
    """True when the state was already there at the first refresh after the start: it began earlier."""


@dataclass(slots=True)
class _Seen:
    state: str
    raw: str
    since: float


class EventLog:
    """The events of every refresh, bounded, and the "since" of each station and connector.

    Written by the refresh loop (`observe`), read by request threads: the ring is read under a lock,
    and what is replaced whole (`problems`, a station's or connector's "since") is read as it is."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.max_events = max_events
        self._events: deque[Event] = deque(maxlen=max_events)
        self._lock = threading.Lock()
        self._connectors: dict[ConnectorKey, _Seen] | None = None
        """None until the first refresh."""
        self._stations: dict[str, StationCondition] = {}
        self.started_at: float | None = None
        """The first refresh's time: what was there then began at an unknown earlier time."""
        self.problems: tuple[StationCondition, ...] = ()
        """Stations all unavailable or unknown, longest first."""
        self._listeners: list[Callable[[Sequence[Event]], None]] = []

    def subscribe(self, listener: Callable[[Sequence[Event]], None]) -> None:
        """Calls `listener` with the events of each refresh that made some, in the refresh thread."""
        self._listeners.append(listener)

    def observe(self, snapshot: Snapshot, at: float) -> list[Event]:
        """Compares `snapshot`, fetched at `at`, with the previous one; returns and keeps the events."""
        previous = self._connectors
        first = previous is None
        if first:
            self.started_at = at
        before = previous or {}
        seen: dict[ConnectorKey, _Seen] = {}
        events: list[Event] = []
        stations: dict[str, StationCondition] = {}
        state_change, appeared = EventName.CONNECTOR_STATE, EventName.CONNECTOR_APPEARED
        for station in snapshot.stations:
            name = station.name
            states: list[str] = []
            for device in station.devices:
                device_name = device.name
                for connector in device.connectors:
                    connector_name = connector.name
                    key = (name, device_name, connector_name)
                    state = connector.state.value
                    raw = connector.raw_state
                    states.append(state)
                    was = before.get(key)
                    if was is None:
                        seen[key] = _Seen(state, raw, at)
                        if not first:
                            new = Event(at, appeared, name, device_name, connector_name, None, state, to_raw=raw)
                            events.append(new)
                    elif was.state != state:
                        seen[key] = _Seen(state, raw, at)
                        events.append(
                            Event(at, state_change, name, device_name, connector_name, was.state, state, was.raw, raw)
                        )
                    else:
                        if was.raw != raw:
                            was.raw = raw  # the same simple state: no event, the raw state shown stays current
                        seen[key] = was
            if name in stations:
                continue  # two stations of one name: the first is followed, as the API answers it
            condition = self._station(name, station_state(states), at, first, events)
            stations[name] = condition
        if not first:
            for key, was in before.items():
                if key not in seen:
                    events.append(
                        Event(at, EventName.CONNECTOR_LEFT, key[0], key[1], key[2], was.state, None, was.raw, None)
                    )
        self._connectors = seen
        self._stations = stations
        self.problems = tuple(
            sorted(
                (condition for condition in stations.values() if condition.state.is_problem),
                key=lambda condition: (condition.since, condition.name),
            )
        )
        if events:
            with self._lock:
                self._events.extend(events)
            for listener in self._listeners:
                try:
                    listener(events)
                except Exception:  # the refresh must outlive a bug in an output: the events stay kept
                    logger.exception("passing on the state-change events failed", extra={"events": len(events)})
        return events

    def _station(self, name: str, state: StationState, at: float, first: bool, events: list[Event]) -> StationCondition:
        was = self._stations.get(name)
        if was is not None and was.state == state:
            return was
        if was is None:
            if not first and state.is_problem:
                events.append(Event(at, _STATION_EVENT[state], name, None, None, None, state.value))
            return StationCondition(name, state, at, first)
        if state.is_problem or was.state.is_problem:
            name_of_event = _STATION_EVENT[state] if state.is_problem else EventName.STATION_RECOVERED
            events.append(Event(at, name_of_event, name, None, None, was.state.value, state.value))
        return StationCondition(name, state, at, False)

    def condition(self, station: str) -> StationCondition | None:
        return self._stations.get(station)

    def connector_since(self, key: ConnectorKey) -> tuple[float, bool] | None:
        """When the connector entered its state, and whether it was already in it at the start."""
        seen = (self._connectors or {}).get(key)
        if seen is None:
            return None
        return seen.since, seen.since == self.started_at

    def __len__(self) -> int:
        return len(self._events)

    def newest(self, station: str | None = None, since: float | None = None, limit: int | None = None) -> list[Event]:
        """Events newest first; of one station (casefolded name) and from a time, if given."""
        found: list[Event] = []
        folded: dict[str, bool] = {}  # a station's name -> whether it is the one asked for, folded once
        with self._lock:
            for event in reversed(self._events):
                if limit is not None and len(found) >= limit:
                    break
                if since is not None and event.at < since:
                    break  # older still from here on
                if station is not None:
                    wanted = folded.get(event.station)
                    if wanted is None:
                        wanted = folded[event.station] = event.station.casefold() == station
                    if not wanted:
                        continue
                found.append(event)
        return found

    def __iter__(self) -> Iterator[Event]:
        with self._lock:
            return iter(list(self._events))


_STATION_EVENT = {StationState.DOWN: EventName.STATION_DOWN, StationState.UNKNOWN: EventName.STATION_UNKNOWN}
