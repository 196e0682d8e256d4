"""The network over time: connector-seconds by state and charging sessions, per station and per speed.

Counted from one successful refresh to the next, from what the feed showed at each: a connector
seen at the refresh at t' adds t - t' to the state it had then (`unknown` too: a state no table maps,
which uptime counts neither up nor down), and a connector charging at t that was seen available or
unavailable at t' began a session. Pure: no I/O, no clock; the caller gives the times.

A station and a connector are followed by the feed's own ids where it gives them, never by a label that
another station's name can move (a ` (<id>)` suffix comes and goes with the Locations that share a
name). Every series a counter family exports is withdrawn once what it describes has been absent
longer than the maximum staleness: a station, or a speed no connector has any more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from otel_chargy.model import Connector, Device, SimpleState, Snapshot, Station

STATES: tuple[SimpleState, ...] = tuple(SimpleState)
"""The order of `UsageTotals.seconds`."""

ConnectorKey = tuple[str, str, str, str]
"""What identifies a connector from one refresh to the next: its station's and device's ids (names where
the feed gives none), its own id, and its name where it has no id."""


def connector_key(station: Station, device: Device, connector: Connector) -> ConnectorKey:
    return (
        station.identity or station.name,
        device.identity or device.name,
        connector.identity,
        "" if connector.identity else connector.name,
    )


@dataclass(frozen=True, slots=True)
class UsageTotals:
    seconds: tuple[float, ...]
    """Connector-seconds spent in each state, in the order of STATES."""
    sessions: int
    created: float
    """Unix time these counters started from zero (OpenMetrics `_created`)."""


@dataclass(frozen=True, slots=True)
class UsageView:
    """The counters after one refresh; what every reader reads."""

    stations: Mapping[str, UsageTotals]
    network: Mapping[str, UsageTotals]
    """By `speed`: the connector's maximum power in kW, integer part, as text."""


EMPTY_VIEW = UsageView(MappingProxyType({}), MappingProxyType({}))


class _Totals:
    __slots__ = ("created", "label", "last_seen", "seconds", "sessions")

    def __init__(self, label: str, created: float, last_seen: float) -> None:
        self.seconds = [0.0] * len(STATES)
        self.sessions = 0
        self.label = label
        """What the series are labelled with: the station's label (or the speed) when last seen."""
        self.created = created
        self.last_seen = last_seen

    def frozen(self) -> UsageTotals:
        return UsageTotals(tuple(self.seconds), self.sessions, self.created)


@dataclass(frozen=True, slots=True)
class _Refresh:
    """What one refresh saw, as the next one needs it."""

    at: float
    snapshot: Snapshot
    states: Mapping[ConnectorKey, SimpleState]
    by_station: Mapping[str, list[int]]
    """Connectors in each state (index of STATES), by station identity."""
    by_speed: Mapping[str, list[int]]


class UsageTracker:
    """The counters' state across refreshes; updated by the refresh loop only (one thread)."""

    def __init__(self, max_staleness_s: float) -> None:
        self._max_staleness_s = max_staleness_s
        self._stations: dict[str, _Totals] = {}
        """By station identity (its name where the feed gives no id)."""
        self._network: dict[str, _Totals] = {}
        """By speed."""
        self._previous: _Refresh | None = None
        self.view = EMPTY_VIEW

    def observe(self, snapshot: Snapshot, monotonic_s: float, wall_s: float) -> UsageView:
        """Counts a successful refresh at `monotonic_s` (`wall_s`: Unix time); for a 304, the snapshot in service."""
        previous = self._previous
        if previous is not None and 0.0 <= monotonic_s - previous.at <= self._max_staleness_s:
            # Longer than the maximum staleness, the gap is attributed to no state: nobody knows.
            elapsed_s = monotonic_s - previous.at
            for totals, counts_by_key in ((self._stations, previous.by_station), (self._network, previous.by_speed)):
                for key, counts in counts_by_key.items():
                    seconds = totals[key].seconds
                    for index, count in enumerate(counts):
                        seconds[index] += elapsed_s * count
        if previous is not None and previous.snapshot is snapshot:
            # Nothing changed (304): the same states, no session began.
            self._previous = _Refresh(monotonic_s, snapshot, previous.states, previous.by_station, previous.by_speed)
            for totals, keys in ((self._stations, previous.by_station), (self._network, previous.by_speed)):
                for key in keys:
                    totals[key].last_seen = monotonic_s
        else:
            self._previous = self._count(snapshot, monotonic_s, wall_s, previous)
        for totals in (self._stations, self._network):
            _forget_departed(totals, monotonic_s, self._max_staleness_s)
        self.view = UsageView(
            MappingProxyType({totals.label: totals.frozen() for totals in self._stations.values()}),
            MappingProxyType({speed: totals.frozen() for speed, totals in self._network.items()}),
        )
        return self.view

    def _count(self, snapshot: Snapshot, monotonic_s: float, wall_s: float, previous: _Refresh | None) -> _Refresh:
        before = previous.states if previous is not None else {}
        states: dict[ConnectorKey, SimpleState] = {}
        by_station: dict[str, list[int]] = {}
        by_speed: dict[str, list[int]] = {}
        index_of = {state: index for index, state in enumerate(STATES)}
        charging, unknown = SimpleState.CHARGING, SimpleState.UNKNOWN
        for station in snapshot.stations:
            station_key = station.identity or station.name
            station_totals = self._stations.get(station_key)
            if station_totals is None:
                station_totals = self._stations[station_key] = _Totals(station.name, wall_s, monotonic_s)
            station_totals.label = station.name
            station_totals.last_seen = monotonic_s
            station_counts = by_station.setdefault(station_key, [0] * len(STATES))
            for device in station.devices:
                for connector in device.connectors:
                    key = connector_key(station, device, connector)
                    state = connector.state
                    states[key] = state
                    speed = connector.speed
                    speed_counts = by_speed.get(speed)
                    if speed_counts is None:
                        speed_counts = by_speed[speed] = [0] * len(STATES)
                        if speed not in self._network:
                            self._network[speed] = _Totals(speed, wall_s, monotonic_s)
                        self._network[speed].last_seen = monotonic_s
                    index = index_of[state]
                    station_counts[index] += 1
                    speed_counts[index] += 1
                    if state is charging:
                        was = before.get(key)
                        # From unknown, nobody knows whether a session began: none is counted.
                        if was is not None and was is not charging and was is not unknown:
                            station_totals.sessions += 1
                            self._network[speed].sessions += 1
        return _Refresh(monotonic_s, snapshot, states, by_station, by_speed)


def _forget_departed(totals_by_key: dict[str, _Totals], monotonic_s: float, max_staleness_s: float) -> None:
    """A station (or speed) absent from the feed for longer than the maximum staleness is no longer
    exported; if it returns, its counters start again from zero (a reset, with a new `_created`). One
    absent whose label another has taken since is forgotten at once: a label names one series."""
    latest_by_label: dict[str, float] = {}
    for totals in totals_by_key.values():
        latest_by_label[totals.label] = max(totals.last_seen, latest_by_label.get(totals.label, totals.last_seen))
    departed = [
        key
        for key, totals in totals_by_key.items()
        if monotonic_s - totals.last_seen > max_staleness_s or totals.last_seen < latest_by_label[totals.label]
    ]
    for key in departed:
        del totals_by_key[key]
