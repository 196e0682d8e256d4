"""A network published in two parts: a static table of sites and their refill points (EVSEs), and a
live publication of each refill point's status, joined on the id the status names. DATEX II v3 (AFIR)
and OICP publish this way. Knows nothing of metrics or HTTP.

The static table changes rarely and is read at its own interval; the statuses at every refresh. A
status publication may be a delta: it updates the statuses it names and leaves the others as they were.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from otel_chargy.labels import label_text, unique_label
from otel_chargy.model import Connector, Device, SimpleState, Snapshot, Station
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import SizeBounds
from otel_chargy.parse_ocpi import BoundingBox

NO_STATUS = "unknown"
"""The detailed state of a refill point that no status publication has named yet."""


@dataclass(frozen=True, slots=True)
class Outlet:
    """A connector as the static table describes it."""

    name: str
    position: int
    max_power_kw: float


@dataclass(frozen=True, slots=True)
class RefillPoint:
    key: str
    """The id statuses name it by (DATEX II: its internal id; OICP: its EvseID)."""
    label: str
    """The `device` label: the EVSE id where the table gives one."""
    outlets: tuple[Outlet, ...]


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    address: str
    latitude: float | None
    longitude: float | None
    refill_points: tuple[RefillPoint, ...]


@dataclass(frozen=True)
class StaticTable:
    sites: tuple[Site, ...]
    issues: Mapping[str, int] = field(default_factory=dict)
    filtered_keys: frozenset[str] = frozenset()
    """Refill points the filters (--feed.bbox) left out: their statuses are expected, and ignored."""
    version: str = ""
    """The format read ("DATEX II v3 (JSON)"), as the snapshot reports it."""

    @property
    def refill_point_count(self) -> int:
        return sum(len(site.refill_points) for site in self.sites)


@dataclass(frozen=True)
class StatusUpdate:
    statuses: Mapping[str, str]
    """Refill point key -> its current status as published (raw text)."""
    issues: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusTable:
    """A format's statuses, compared in lower case: what each means, a simple state or None for a refill
    point that does not exist (yet, or any more) and is left out; a status outside the table is unknown."""

    states: Mapping[str, SimpleState | None]

    def state(self, raw: str) -> SimpleState | None:
        return self.states.get(raw.strip().lower(), SimpleState.UNKNOWN)

    def is_unknown(self, raw: str) -> bool:
        """True for a status outside the table (counted as `unknown_state`)."""
        return raw.strip().lower() not in self.states


@dataclass(frozen=True)
class TableOptions:
    """How a two-part format is read: its bounds, and the filter of --feed.bbox."""

    bounds: SizeBounds = field(default_factory=SizeBounds)
    max_bytes: int = 50_000_000
    bbox: BoundingBox | None = None


DEFAULT_TABLE_OPTIONS = TableOptions()


# Whether a status for a refill point is wanted: True (the table holds it), False (the table lacks it:
# counted, not kept), None (the filters left it out: ignored).
Relevance = Callable[[str], bool | None]


class StatusCollector:
    """A status publication's statuses as its parser reads them, one at a time. With a table's
    `relevance`, only those of its refill points are kept: memory follows the table, whatever the
    publication names (a national one, filtered to a city). Without, at most `limit` are kept."""

    def __init__(self, relevance: Relevance | None, limit: int, part: str) -> None:
        self._relevance = relevance
        self._limit = limit
        self._part = part
        self.statuses: dict[str, str] = {}
        self.issues: Counter[str] = Counter()

    def add(self, key: str, status: str) -> None:
        status = label_text(status, self.issues)
        if not key or not status:
            self.issues["invalid_status"] += 1
            return
        wanted = True if self._relevance is None else self._relevance(key)
        if wanted is None:
            return
        if not wanted:
            self.issues["status_of_unknown_refill_point"] += 1
            return
        self.statuses[key] = status
        if len(self.statuses) > self._limit:
            raise FeedError(Outcome.TOO_LARGE, f"the {self._part} holds over {self._limit} statuses (--max-connectors)")

    def update(self) -> StatusUpdate:
        return StatusUpdate(self.statuses, dict(self.issues))


def distinct_site_names(sites: list[tuple[str, Site]], issues: Counter[str]) -> tuple[Site, ...]:
    """Sites (with their ids) labelled as the other formats label theirs: every text bounded and valid
    (labels.py), no two sites sharing a `station` label (a shared name gets the site's id appended,
    checked against every label) and no two refill points of a site sharing a `device` label."""
    bounded = [(site_id, _bounded_site(site, issues)) for site_id, site in sites]
    names = Counter(site.name for _, site in bounded)
    taken = set(names)
    return tuple(
        site if names[site.name] == 1 else replace(site, name=unique_label(site.name, (site_id,), taken))
        for site_id, site in bounded
    )


def _bounded_site(site: Site, issues: Counter[str]) -> Site:
    devices: set[str] = set()
    points = []
    for point in site.refill_points:
        label = label_text(point.label, issues)
        if label in devices:
            label = unique_label(label, (point.key,), devices)
        devices.add(label)
        outlets = tuple(replace(outlet, name=label_text(outlet.name, issues)) for outlet in point.outlets)
        points.append(RefillPoint(point.key, label, outlets))
    return Site(
        label_text(site.name, issues), label_text(site.address, issues), site.latitude, site.longitude, tuple(points)
    )


class LiveTable:
    """The static table in service and the statuses known so far; joins them into a Snapshot.

    Statuses are kept only for refill points the table holds, so memory follows the table, whatever
    the status publications name; a status for a refill point the table lacks is counted and dropped."""

    def __init__(self, statuses: StatusTable) -> None:
        self._statuses_mean = statuses
        self.table: StaticTable | None = None
        self._keys: frozenset[str] = frozenset()
        self._statuses: dict[str, str] = {}
        self._devices: dict[str, tuple[str | None, Device | None]] = {}
        self._stations: list[Station] = []

    def replace_table(self, table: StaticTable) -> None:
        self.table = table
        self._keys = frozenset(point.key for site in table.sites for point in site.refill_points)
        self._statuses = {key: status for key, status in self._statuses.items() if key in self._keys}
        self._devices = {}
        self._stations = []

    def relevance(self, key: str) -> bool | None:
        """A status parser's Relevance for the table in use."""
        if key in self._keys:
            return True
        assert self.table is not None
        return None if key in self.table.filtered_keys else False

    def apply(self, update: StatusUpdate) -> Counter[str]:
        """Takes in the statuses of `update`; returns the issues of the join."""
        issues: Counter[str] = Counter(update.issues)
        assert self.table is not None
        filtered = self.table.filtered_keys
        for key, status in update.statuses.items():
            if key in self._keys:
                self._statuses[key] = status
            elif key not in filtered:
                issues["status_of_unknown_refill_point"] += 1
        return issues

    def snapshot(self, issues: Counter[str]) -> Snapshot:
        """The table joined with the statuses known so far; a refill point without one is `unknown`."""
        table = self.table
        assert table is not None
        issues.update(table.issues)
        stations: list[Station] = []
        for index, site in enumerate(table.sites):
            devices = []
            for point in site.refill_points:
                raw = self._statuses.get(point.key)
                if raw is not None and self._statuses_mean.is_unknown(raw):
                    issues["unknown_state"] += 1
                device = self._device(point, raw)
                if device is not None:
                    devices.append(device)
            stations.append(self._station(index, site, tuple(devices)))
        self._stations = stations
        snapshot = Snapshot(stations=tuple(stations), issues=dict(+issues), version=table.version)
        if snapshot.connector_count == 0:
            raise FeedError(
                Outcome.EMPTY, f"the static part's {len(stations)} sites hold no refill point with a connector"
            )
        return snapshot

    def _station(self, index: int, site: Site, devices: tuple[Device, ...]) -> Station:
        """The site as a station; the one of the last join while its devices are the same."""
        if index < len(self._stations):
            previous = self._stations[index]
            if previous.devices == devices:  # the devices are reused while unchanged: compared by identity first
                return previous
        return Station(site.name, site.address, site.latitude, site.longitude, devices)

    def _device(self, point: RefillPoint, raw: str | None) -> Device | None:
        """The refill point as a device in `raw` state (None: never given a status); the one of the last
        join while its status stays: a national network's refresh then builds only what changed."""
        cached = self._devices.get(point.key)
        if cached is not None and cached[0] == raw:
            return cached[1]
        state = SimpleState.UNKNOWN if raw is None else self._statuses_mean.state(raw)
        shown = NO_STATUS if raw is None else raw
        device = (
            None
            if state is None
            else Device(
                point.label,
                tuple(Connector(o.name, o.position, o.max_power_kw, shown, state) for o in point.outlets),
            )
        )
        self._devices[point.key] = (raw, device)
        return device
