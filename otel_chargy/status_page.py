"""The status page at /: the feed's health, the stations that are down and since when, the last
changes, a map and every station; and each station's own page at /station/{name}.

Server-rendered, no inline script or style (it is sent with a strict Content-Security-Policy), and
cheap per request: the station table rows and the map are rendered once per snapshot; a request
picks and joins ready rows and renders only the small parts that change between refreshes.
"""

from __future__ import annotations

import bisect
import functools
import html
import itertools
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, quote, urlencode

from otel_chargy import __version__
from otel_chargy.events import Event, EventLog, EventName, StationCondition, StationState, state_of_station
from otel_chargy.health import FeedHealth, age_text
from otel_chargy.model import SimpleState, Snapshot, Station
from otel_chargy.redact import Redactor
from otel_chargy.reply import Reply

ROWS_PER_PAGE = 1000
"""Rows drawn at once: a browser stays quick with a thousand; the filter and the paging reach the rest."""
MAX_QUERY_CHARS = 200
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HTML_TYPE = "text/html; charset=utf-8"
SORTS = ("name", "available", "charging", "unavailable", "unknown", "power")
STATIC_FILES = {"status.css": "text/css; charset=utf-8", "status.js": "text/javascript; charset=utf-8"}

STATION_PAGE_PREFIX = "/station/"
MAX_PROBLEMS_LISTED = 200
"""Down and unknown stations listed at the top; the table's state column and sort reach the rest."""
LAST_CHANGES = 20

_MAP_WIDTH = 1000.0
_MAP_MARGIN = 0.06
"""Of the stations' extent, on each side: the land around them."""
_DOT_RADIUS = 6.0
_PROBLEM_DOT_RADIUS = 10.0


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _time(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    return f'<time datetime="{_iso(timestamp)}">{shown}</time> ({age_text(timestamp, now)})'


def duration_text(seconds: float) -> str:
    """How long a state has lasted, for people: "45 s", "12 min", "2 h 5 min", "3 days 4 h"."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "&ndash;"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _power(kw: float) -> str:
    return f"{kw:g} kW"


_CSS_CLASS = {
    StationState.FREE: "free",
    StationState.BUSY: "busy",
    StationState.DOWN: "down",
    StationState.UNKNOWN: "unknown",
}
_ROW_LABEL = {
    StationState.FREE: "free",
    StationState.BUSY: "busy",
    StationState.DOWN: "all unavailable",
    StationState.UNKNOWN: "state unknown",
}
# Problems last: drawn on top of the others, and larger.
_DRAWING_ORDER = {StationState.FREE: 0, StationState.BUSY: 1, StationState.UNKNOWN: 2, StationState.DOWN: 3}


@functools.lru_cache(maxsize=65_536)
def station_path(name: str) -> str:
    """The station's own page: a stable URL, its name URL-encoded."""
    return STATION_PAGE_PREFIX + quote(name, safe="")


def filter_key(name: str) -> str:
    """What a filter matches against, the same in the server (?q=) and in the page's script (typing):
    Unicode lower case, as JavaScript's toLowerCase."""
    return name.lower()


@dataclass(frozen=True, slots=True)
class _Frame:
    """The map's projection: equirectangular, squeezed by the cosine of the middle latitude (true enough
    for a country), fitted to the stations with a margin that shows the land around them."""

    west: float
    north: float
    squeeze: float
    scale: float
    width: float
    height: float

    @classmethod
    def around(cls, latitudes: Sequence[float], longitudes: Sequence[float]) -> _Frame:
        south, north, west, east = min(latitudes), max(latitudes), min(longitudes), max(longitudes)
        margin = max(north - south, east - west, 0.02) * _MAP_MARGIN
        south, north, west, east = south - margin, north + margin, west - margin, east + margin
        squeeze = math.cos(math.radians((south + north) / 2))
        span = max((east - west) * squeeze, north - south, 1e-6)
        scale = _MAP_WIDTH / span
        return cls(west, north, squeeze, scale, (east - west) * squeeze * scale, (north - south) * scale)

    def x(self, longitude: float) -> float:
        return (longitude - self.west) * self.squeeze * self.scale

    def y(self, latitude: float) -> float:
        return (self.north - latitude) * self.scale

    def bounds(self) -> tuple[float, float, float, float]:
        """West, south, east, north in degrees."""
        east = self.west + self.width / (self.squeeze * self.scale)
        return self.west, self.north - self.height / self.scale, east, self.north


@dataclass(frozen=True, slots=True)
class _Country:
    name: str
    rings: tuple[tuple[tuple[float, float], ...], ...]
    """Outer rings of (longitude, latitude)."""
    boxes: tuple[tuple[float, float, float, float], ...]
    """Each ring's west, south, east, north."""


@functools.cache
def _countries() -> tuple[_Country, ...]:
    """Natural Earth's outlines (static/boundaries/README.md), smallest first: a point is looked for in
    a small country before the large ones around it."""
    data = json.loads((resources.files("otel_chargy") / "static" / "boundaries" / "europe-50m.json").read_bytes())
    countries = []
    for country in data["countries"]:
        rings = tuple(tuple((float(x), float(y)) for x, y in ring) for ring in country["rings"])
        boxes = tuple(
            (min(x for x, _ in ring), min(y for _, y in ring), max(x for x, _ in ring), max(y for _, y in ring))
            for ring in rings
        )
        countries.append(_Country(country["name"], rings, boxes))
    return tuple(sorted(countries, key=lambda country: sum(len(ring) for ring in country.rings)))


def _inside(ring: Sequence[tuple[float, float]], x: float, y: float) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _country_of(x: float, y: float) -> str | None:
    for country in _countries():
        for ring, (west, south, east, north) in zip(country.rings, country.boxes, strict=True):
            if west <= x <= east and south <= y <= north and _inside(ring, x, y):
                return country.name
    return None


def _outline(frame: _Frame, places: Sequence[tuple[float, float]]) -> str:
    """The land in view, as SVG paths; the country that holds most of the stations stands out."""
    sample = places[:: max(1, len(places) // 50)]
    holding: dict[str | None, int] = {}
    for x, y in sample:
        name = _country_of(x, y)
        holding[name] = holding.get(name, 0) + 1
    home = max((name for name in holding if name is not None), key=lambda name: holding[name], default=None)
    return _outline_paths(frame, home)


@functools.lru_cache(maxsize=4)
def _outline_paths(frame: _Frame, home: str | None) -> str:
    """The paths of the countries in view: the same for every snapshot of a network that keeps its extent."""
    west, south, east, north = frame.bounds()
    paths = []
    for country in sorted(_countries(), key=lambda country: country.name):
        near = [
            ring
            for ring, (ring_west, ring_south, ring_east, ring_north) in zip(country.rings, country.boxes, strict=True)
            if ring_west < east and ring_east > west and ring_south < north and ring_north > south
        ]
        if not near:
            continue
        d = "".join("M" + "L".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in ring) + "Z" for ring in near)
        kind = "land home" if country.name == home else "land"
        paths.append(f'<path class="{kind}" d="{d}"><title>{_escape(country.name)}</title></path>')
    return '<g class="outline">' + "".join(paths) + "</g>"


class _Spots:
    """Where problem dots are drawn: one near another moves aside, along a spiral, until no dot covers
    the middle of another, so that every station with a problem can be seen. A grid of cells the size
    of the distance kept makes each placement look at its neighbours only."""

    def __init__(self, distance: float) -> None:
        self._distance = distance
        self._cells: dict[tuple[int, int], list[tuple[float, float]]] = {}

    def _clear(self, x: float, y: float) -> bool:
        column, row = int(x // self._distance), int(y // self._distance)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for other_x, other_y in self._cells.get((column + dx, row + dy), ()):
                    if math.hypot(x - other_x, y - other_y) < self._distance:
                        return False
        return True

    def free_near(self, x: float, y: float) -> tuple[float, float]:
        step = self._distance / 2
        for turn in range(2000):
            angle = turn * 0.5
            spot_x, spot_y = x + math.cos(angle) * step * angle / math.pi, y + math.sin(angle) * step * angle / math.pi
            if self._clear(spot_x, spot_y):
                break
        cell = (int(spot_x // self._distance), int(spot_y // self._distance))
        self._cells.setdefault(cell, []).append((spot_x, spot_y))
        return spot_x, spot_y


class StationView:
    """The station part of the page for one snapshot: table rows, sort orders and the map, rendered once."""

    def __init__(self, snapshot: Snapshot, redactor: Redactor) -> None:
        self.snapshot = snapshot
        stations = snapshot.stations
        counts = [station.count_by_state() for station in stations]
        powers = [station.max_power_kw for station in stations]
        self.states = [state_of_station(station) for station in stations]
        sort_keys = [station.name.casefold() for station in stations]
        self.match_keys = [filter_key(station.name) for station in stations]
        # The keys in one text, each after a NUL, so that a filter is a scan of it in C rather than a loop here.
        self._keys_text = "".join("\0" + key for key in self.match_keys)
        self._key_starts = list(itertools.accumulate((len(key) + 1 for key in self.match_keys), initial=0))[:-1]
        self.index_of: dict[str, int] = {}
        """Casefolded name -> the first station of that name."""
        for index, key in enumerate(sort_keys):
            self.index_of.setdefault(key, index)
        self.rows = [
            redactor(self._row(station, station_counts, power, state)).encode()
            for station, station_counts, power, state in zip(stations, counts, powers, self.states, strict=True)
        ]
        by_name = sorted(range(len(stations)), key=lambda index: (sort_keys[index], index))
        rank = {index: position for position, index in enumerate(by_name)}

        def by_count(state: SimpleState) -> list[int]:
            return sorted(by_name, key=lambda index: (-counts[index][state], rank[index]))

        self.orders = {
            "name": by_name,
            "available": by_count(SimpleState.AVAILABLE),
            "charging": by_count(SimpleState.CHARGING),
            "unavailable": by_count(SimpleState.UNAVAILABLE),
            "unknown": by_count(SimpleState.UNKNOWN),
            "power": sorted(by_name, key=lambda index: (-powers[index], rank[index])),
        }
        self._render_map(stations, counts, redactor)

    @staticmethod
    def _row(station: Station, counts: dict[SimpleState, int], power_kw: float, state: StationState) -> str:
        css = _CSS_CLASS[state]
        label = _ROW_LABEL[state]
        if state is StationState.DOWN and counts[SimpleState.UNKNOWN]:
            label = "none available"  # the others' state is unknown: not known to be all unavailable
        return (
            f'<tr class="{css}"><td data-label="State"><span class="dot {css}"></span>{label}</td>'
            f'<td data-label="Station"><a href="{station_path(station.name)}">{_escape(station.name)}</a></td>'
            f'<td data-label="Address">{_escape(station.address)}</td>'
            f'<td class="n" data-label="Available">{counts[SimpleState.AVAILABLE]}</td>'
            f'<td class="n" data-label="Charging">{counts[SimpleState.CHARGING]}</td>'
            f'<td class="n" data-label="Unavailable">{counts[SimpleState.UNAVAILABLE]}</td>'
            f'<td class="n" data-label="Unknown">{counts[SimpleState.UNKNOWN]}</td>'
            f'<td class="n" data-label="Power">{_power(power_kw)}</td></tr>\n'
        )

    def _render_map(
        self, stations: Sequence[Station], counts: list[dict[SimpleState, int]], redactor: Redactor
    ) -> None:
        placed = [
            index
            for index, station in enumerate(stations)
            if station.latitude is not None and station.longitude is not None
        ]
        unplaced = [station.name for station in stations if station.latitude is None or station.longitude is None]
        self._dot_order: list[int] = []
        self._dots: list[bytes] = []
        self._dim_dots: list[bytes] = []
        if placed:
            latitudes = [stations[index].latitude or 0.0 for index in placed]
            longitudes = [stations[index].longitude or 0.0 for index in placed]
            frame = _Frame.around(latitudes, longitudes)
            outline = _outline(frame, list(zip(longitudes, latitudes, strict=True)))
            self._dot_order = sorted(placed, key=lambda index: _DRAWING_ORDER[self.states[index]])
            spots = _Spots(_PROBLEM_DOT_RADIUS * 1.2)
            for index in self._dot_order:
                station, station_counts, state = stations[index], counts[index], self.states[index]
                assert station.latitude is not None and station.longitude is not None
                x, y = frame.x(station.longitude), frame.y(station.latitude)
                if state.is_problem:
                    x, y = spots.free_near(x, y)
                title = (
                    f"{station.name}: {station_counts[SimpleState.AVAILABLE]} available, "
                    f"{station_counts[SimpleState.CHARGING]} charging, "
                    f"{station_counts[SimpleState.UNAVAILABLE]} unavailable, "
                    f"{station_counts[SimpleState.UNKNOWN]} unknown"
                )
                radius = _PROBLEM_DOT_RADIUS if state.is_problem else _DOT_RADIUS
                attributes = f'cx="{x:.1f}" cy="{y:.1f}" r="{radius:g}"'
                tail = f"><title>{_escape(title)}</title></circle>"
                css = _CSS_CLASS[state]
                self._dots.append(redactor(f'<circle class="{css}" {attributes}{tail}').encode())
                self._dim_dots.append(redactor(f'<circle class="{css} dim" {attributes}{tail}').encode())
            head = (
                f'<div class="map-box"><div class="map-controls" hidden><button type="button" data-zoom="in" '
                f'aria-label="Zoom in">+</button><button type="button" data-zoom="out" aria-label="Zoom out">&minus;'
                f'</button><button type="button" data-zoom="reset">Whole network</button></div>'
                f'<svg class="map" viewBox="0 0 {frame.width:.0f} {frame.height:.0f}" role="img" '
                f'aria-labelledby="map-title"><title id="map-title">Map of {len(placed)} stations, coloured by '
                f'availability; problems on top</title>{outline}<g class="dots">'
            )
            self._map_head = head.encode()
            self._map_tail = b"</g></svg>"
        else:
            self._map_head = b'<div class="map-box"><p>No station has coordinates.</p>'
            self._map_tail = b""
        tail = (
            '<p class="legend"><span class="dot free"></span>a connector available '
            '<span class="dot busy"></span>all in use <span class="dot down"></span>all unavailable '
            '<span class="dot unknown"></span>state unknown; larger dots: stations with a problem, drawn on top</p>'
        )
        if unplaced:
            names = ", ".join(_escape(name) for name in unplaced)
            tail += f'<p id="unplaced">Not on the map, without coordinates: {names}.</p>'
        self._map_tail += redactor(tail + "</div>\n").encode()
        self.map = self._map_head + b"".join(self._dots) + self._map_tail

    def matching(self, needle: str) -> set[int]:
        """The stations whose filter key holds `needle` (a filter key)."""
        needle = needle.replace("\0", "")
        text, starts = self._keys_text, self._key_starts
        found: set[int] = set()
        at = text.find(needle)
        while at >= 0:
            index = bisect.bisect_right(starts, at) - 1
            found.add(index)
            # On to the next station's key: one match is enough.
            at = text.find(needle, starts[index + 1]) if index + 1 < len(starts) else -1
        return found

    def map_matching(self, matched: set[int] | None) -> list[bytes]:
        """The map with the stations not `matched` dimmed, as typing does; None: no filter."""
        if matched is None:
            return [self.map]
        dots, dim = self._dots, self._dim_dots
        drawn = [dots[at] if index in matched else dim[at] for at, index in enumerate(self._dot_order)]
        return [self._map_head, b"".join(drawn), self._map_tail]


@dataclass(frozen=True, slots=True)
class PageQuery:
    q: str = ""
    sort: str = "name"
    page: int = 1

    @classmethod
    def parse(cls, query_string: str) -> PageQuery:
        try:
            values = parse_qs(query_string[: 4 * MAX_QUERY_CHARS], max_num_fields=10)
        except ValueError:  # more fields than any link of the page has: ignored whole
            values = {}
        q = (values.get("q") or [""])[0].strip()[:MAX_QUERY_CHARS]
        sort = (values.get("sort") or ["name"])[0]
        page_text = (values.get("page") or ["1"])[0]
        # ASCII digits only: "²" is a digit to str.isdigit, not to int().
        page = int(page_text) if page_text.isascii() and page_text.isdigit() and 0 < len(page_text) < 7 else 1
        return cls(q, sort if sort in SORTS else "name", max(page, 1))

    def link(self, **changes: str | int) -> str:
        fields: dict[str, str | int] = {"q": self.q, "sort": self.sort, "page": self.page, **changes}
        defaults = (("sort", "name"), ("page", 1))
        kept = {name: value for name, value in fields.items() if value and (name, value) not in defaults}
        return "?" + urlencode(kept) if kept else "/"


@dataclass(frozen=True, slots=True)
class Links:
    metrics_path: str | None
    """None when the Prometheus endpoint is off."""
    grafana_url: str | None


def static_file(name: str) -> Reply | None:
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        return None
    body = _STATIC_BODIES[name]
    return Reply(HTTPStatus.OK, [body], content_type, {"Cache-Control": "max-age=3600"})


_STATIC_BODIES = {name: (resources.files("otel_chargy") / "static" / name).read_bytes() for name in STATIC_FILES}


def _head(title: str, health: FeedHealth, now: float) -> str:
    """The document's head and the body's opening: the script reloads the page after the next refresh."""
    next_refresh = f"{health.next_refresh_at:.3f}" if health.next_refresh_at is not None else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/status.css?v={__version__}">
<script src="/static/status.js?v={__version__}" defer></script>
</head><body data-rendered-at="{now:.3f}" data-next-refresh="{next_refresh}">
<p id="stale" class="note" hidden>This page shows the network as of <time id="rendered-at"></time>;
a newer refresh has come since. <a href="">Reload</a></p>
"""


_MAIN_HEADER = f"""<header><h1>Chargy network status</h1>
<p>otel-chargy {_escape(__version__)}: the Chargy EV-charging network, published as OpenTelemetry metrics.</p>
<noscript><p class="note">Without JavaScript this page does not update itself: reload it after the next
refresh.</p></noscript>
</header>
"""
_FLAG = re.compile(r"(--[a-z][a-z0-9.-]*[a-z0-9])")


def _with_flags(text: str) -> str:
    """Escaped `text` with its command-line flags as code that does not break at its hyphens."""
    return _FLAG.sub(r'<code class="flag">\1</code>', _escape(text))


def _health_part(health: FeedHealth, now: float) -> str:
    if health.up is None:
        headline, state = "Feed: no refresh has finished yet", "wait"
    elif health.up:
        headline, state = "Feed up", "up"
    else:
        headline, state = "Feed failing", "failing"
    if health.since is not None:
        headline += f" since {_time(health.since, now)}"
    parts = [f'<section id="health" class="{state}"><h2>{headline}</h2>']
    if health.advice is not None:
        outcome = health.outcome.value if health.outcome else ""
        parts.append(
            f'<p class="cause"><b>{_escape(outcome)}</b>: {_with_flags(health.advice.cause)}</p>'
            f'<p class="next-step"><b>What to do:</b> {_with_flags(health.advice.next_step)}</p>'
        )
    rows = [
        ("Feed", f"<code>{_escape(health.feed)}</code>"),
        (
            "Last refresh",
            f"{_time(health.last_refresh_at, now)}: <b>{_escape(health.outcome.value if health.outcome else 'none')}"
            f"</b> ({_escape(health.reason)}), took {_duration(health.duration_s)}",
        ),
        ("Next refresh", _time(health.next_refresh_at, now)),
        ("Last success", _time(health.last_success_at, now)),
    ]
    snapshot = health.snapshot
    if snapshot is None:
        rows.append(("Snapshot", "none yet"))
    else:
        by_state = ", ".join(f"{count} {state.value}" for state, count in snapshot.connectors_by_state.items())
        stale = (
            ""
            if snapshot.fresh
            else ' <b class="stale">older than <code class="flag">--max-staleness</code>: not served</b>'
        )
        rows.append(
            (
                "Snapshot",
                (f"{_escape(snapshot.version)}: " if snapshot.version else "")
                + f"{snapshot.stations} stations, {snapshot.connectors} connectors ({by_state}), "
                f"fetched {_time(snapshot.fetched_at, now)}{stale}",
            )
        )
        issues = ", ".join(f"{count} {_escape(kind)}" for kind, count in sorted(snapshot.parse_issues.items()))
        rows.append(("Parse issues", issues or "none"))
    for push in health.push:
        verdict = "ok" if push.healthy else '<b class="stale">failing</b>'
        rows.append((f"OTLP {_escape(push.signal)} push", f"{verdict}: {_escape(push.summary)}"))
    parts.append("<dl>" + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows) + "</dl></section>\n")
    return "".join(parts)


def _refreshes_part(health: FeedHealth, now: float) -> str:
    if not health.refreshes:
        return '<section id="refreshes"><h2>Last refreshes</h2><p>None yet.</p></section>\n'
    rows = "".join(
        f'<tr class="{"ok" if record.outcome.succeeded else "failed"}">'
        f'<td data-label="Finished">{_time(record.finished_at, now)}</td>'
        f'<td data-label="Outcome">{_escape(record.outcome.value)}</td>'
        f'<td class="n" data-label="Duration">{_duration(record.duration_s)}</td>'
        f'<td class="n" data-label="Stations">{"&ndash;" if record.stations is None else record.stations}</td>'
        f'<td class="n" data-label="Connectors">{"&ndash;" if record.connectors is None else record.connectors}</td>'
        f'<td data-label="Reason">{_escape(record.reason)}</td></tr>'
        for record in health.refreshes
    )
    count = len(health.refreshes)
    title = "The last refresh" if count == 1 else f"The last {count} refreshes"
    return (
        f'<section id="refreshes"><h2>{title}</h2><div class="scroll"><table class="cards">'
        "<thead><tr><th>finished</th><th>outcome</th><th>duration</th><th>stations</th><th>connectors</th>"
        f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table></div></section>\n"
    )


def _links_part(links: Links) -> str:
    items = []
    if links.metrics_path is not None:
        path = _escape(links.metrics_path)
        items.append(f'<li><a href="{path}">{path}</a>: metrics (Prometheus text, OpenMetrics when asked)</li>')
    else:
        items.append("<li>Metrics are pushed over OTLP; the Prometheus endpoint is off.</li>")
    items += [
        '<li><a href="/healthz">/healthz</a>: 200 while the process runs</li>',
        '<li><a href="/readyz">/readyz</a>: 200 while a fresh snapshot is served</li>',
        '<li><a href="/api/v1/stations">/api/v1/stations</a>: every station as JSON; '
        "<code>/api/v1/stations/{name}</code>: one</li>",
        '<li><a href="/api/v1/events">/api/v1/events</a>: the last state changes as JSON, newest first</li>',
        '<li><a href="/api/v1/status">/api/v1/status</a>: the feed\'s health as JSON</li>',
    ]
    if links.grafana_url is not None and links.grafana_url.lower().startswith(("http://", "https://")):
        items.append(f'<li><a href="{_escape(links.grafana_url)}">Grafana dashboards</a></li>')
    return f'<section id="links"><h2>Endpoints</h2><ul>{"".join(items)}</ul></section>\n'


def _stations_head(view: StationView, query: PageQuery, shown: int, matches: int, first: int) -> str:
    total = len(view.rows)
    complete = not query.q and matches <= ROWS_PER_PAGE
    search = (
        '<form id="filter" method="get" action="/" role="search"><label for="q">Filter by name</label> '
        f'<input id="q" name="q" type="search" value="{_escape(query.q)}" autocomplete="off">'
        f'<input type="hidden" name="sort" value="{query.sort}"> <button>Filter</button>'
        + (' <a href="/">show all</a>' if query.q else "")
        + "</form>"
    )
    summary = f"{matches} of {total} stations match “{_escape(query.q)}”" if query.q else f"{total} stations"
    if shown < matches:
        summary += f"; showing {first + 1}&ndash;{first + shown}"
    summary += "."
    headers = []
    titles = {
        "name": "Station",
        "available": "Available",
        "charging": "Charging",
        "unavailable": "Unavailable",
        "unknown": "Unknown",
        "power": "Power",
    }
    for column in ("state", "name", "address", "available", "charging", "unavailable", "unknown", "power"):
        numeric = ' class="n"' if column in ("available", "charging", "unavailable", "unknown", "power") else ""
        if column in titles:
            current = ' aria-sort="ascending"' if column == query.sort and column == "name" else ""
            if column == query.sort and column != "name":
                current = ' aria-sort="descending"'
            link = _escape(query.link(sort=column, page=1))
            headers.append(f'<th{numeric}{current}><a href="{link}" data-sort="{column}">{titles[column]}</a></th>')
        else:
            headers.append(f"<th>{column.capitalize()}</th>")
    return (
        f'<section id="stations"><h2>Stations</h2>{search}'
        f'<p id="shown" data-total="{total}">{summary}</p>'
        f'<p id="partial" hidden>This page holds only part of the stations: press Enter to search all {total}.</p>'
        f'<div class="scroll"><table id="station-table" class="cards" data-complete="{"1" if complete else "0"}">'
        f"<thead><tr>{''.join(headers)}</tr></thead><tbody>\n"
    )


def _paging(query: PageQuery, matches: int, first: int, shown: int) -> str:
    links = []
    if first > 0:
        links.append(f'<a rel="prev" href="{_escape(query.link(page=query.page - 1))}">previous {ROWS_PER_PAGE}</a>')
    if first + shown < matches:
        links.append(f'<a rel="next" href="{_escape(query.link(page=query.page + 1))}">next {ROWS_PER_PAGE}</a>')
    pages = math.ceil(matches / ROWS_PER_PAGE)
    if not links:
        return ""
    return f'<nav class="paging">Page {query.page} of {pages}: {" ".join(links)}</nav>'


def _since_text(condition: StationCondition | tuple[float, bool], now: float) -> str:
    since, since_start = (
        (condition.since, condition.since_start) if isinstance(condition, StationCondition) else condition
    )
    lasted = duration_text(now - since)
    if since_start:
        return f'<span class="for">for at least {lasted}</span> (since otel-chargy started, {_time(since, now)})'
    return f'<span class="for">for {lasted}</span> (since {_time(since, now)})'


def _problems_part(events: EventLog, now: float) -> str:
    problems = events.problems
    down = sum(1 for condition in problems if condition.state is StationState.DOWN)
    unknown = len(problems) - down
    if not problems:
        return (
            '<section id="problems" class="none"><h2>Stations down: none</h2><p>Every station has a connector '
            "available, charging, or whose state the feed tells.</p></section>\n"
        )
    counts = ", ".join(
        part
        for part in (f"{down} all unavailable" if down else "", f"{unknown} of unknown state" if unknown else "")
        if part
    )
    title = "Stations down" if not unknown else "Stations with a problem"
    items = "".join(
        f'<li class="{_CSS_CLASS[condition.state]}"><span class="dot {_CSS_CLASS[condition.state]}"></span>'
        f'<a href="{station_path(condition.name)}">{_escape(condition.name)}</a> '
        f"<b>{condition.state.value}</b> {_since_text(condition, now)}</li>"
        for condition in problems[:MAX_PROBLEMS_LISTED]
    )
    more = ""
    if len(problems) > MAX_PROBLEMS_LISTED:
        more = (
            f"<p>And {len(problems) - MAX_PROBLEMS_LISTED} more: sort the table by "
            '<a href="/?sort=unavailable#stations">unavailable connectors</a>.</p>'
        )
    return (
        f'<section id="problems"><h2>{title}: {counts}</h2><p>Longest first.</p>'
        f'<ol class="problems">{items}</ol>{more}</section>\n'
    )


def _change_text(event: Event) -> str:
    if event.device is None:  # the station's own
        return {
            EventName.STATION_DOWN: "every connector became unavailable",
            EventName.STATION_UNKNOWN: "no connector's state can be read",
            EventName.STATION_RECOVERED: f"recovered: {_escape(event.to_state or '')}",
        }.get(event.name, _escape(event.name.value))
    connector = f"{_escape(event.connector or '')}"
    if event.from_state is None:
        return f"{connector} appeared: {_escape(event.to_state or '')} ({_escape(event.to_raw or '')})"
    if event.to_state is None:
        return f"{connector} left the feed (was {_escape(event.from_state)})"
    return (
        f"{connector}: {_escape(event.from_state)} &rarr; <b>{_escape(event.to_state or '')}</b> "
        f"({_escape(event.from_raw or '')} &rarr; {_escape(event.to_raw or '')})"
    )


def _changes_part(changes: Sequence[Event], now: float, events: EventLog, *, station_column: bool = True) -> str:
    if not changes:
        started = _time(events.started_at, now) if events.started_at is not None else "the first refresh"
        return (
            f'<section id="changes"><h2>Last changes</h2><p>None since otel-chargy started ({started}): '
            "changes are seen from one refresh to the next.</p></section>\n"
        )
    rows = "".join(
        f'<tr class="{_event_class(event)}"><td data-label="Seen">{_time(event.at, now)}</td>'
        + (
            f'<td data-label="Station"><a href="{station_path(event.station)}">{_escape(event.station)}</a></td>'
            if station_column
            else ""
        )
        + f'<td data-label="Change">{_change_text(event)}</td></tr>'
        for event in changes
    )
    station_header = "<th>station</th>" if station_column else ""
    return (
        f'<section id="changes"><h2>Last changes</h2><div class="scroll"><table class="cards">'
        f"<thead><tr><th>seen</th>{station_header}<th>change</th></tr></thead><tbody>{rows}</tbody></table></div>"
        '<p><a href="/api/v1/events">All kept changes as JSON</a></p></section>\n'
    )


def _event_class(event: Event) -> str:
    if event.name is EventName.STATION_RECOVERED or event.to_state == SimpleState.AVAILABLE.value:
        return "better"
    if event.name in (EventName.STATION_DOWN, EventName.STATION_UNKNOWN) or event.to_state in (
        SimpleState.UNAVAILABLE.value,
        SimpleState.UNKNOWN.value,
        None,
    ):
        return "worse"
    return ""


def _reply(status: HTTPStatus, chunks: list[bytes]) -> Reply:
    return Reply(
        status,
        chunks,
        HTML_TYPE,
        {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"},
    )


def render_page(
    health: FeedHealth,
    view: StationView | None,
    query: PageQuery,
    links: Links,
    redactor: Redactor,
    events: EventLog | None = None,
) -> Reply:
    now = time.time()
    events = events if events is not None else EventLog()
    head = _head("otel-chargy: Chargy network status", health, now) + _MAIN_HEADER + _health_part(health, now)
    if view is not None:
        head += _problems_part(events, now)
    head += _changes_part(events.newest(limit=LAST_CHANGES), now, events)
    chunks = [redactor(head).encode()]
    if view is None:
        chunks.append(
            b'<section id="stations"><h2>Stations</h2><p>No snapshot in service: nothing to show until a refresh '
            b"succeeds.</p></section>\n"
        )
    else:
        order = view.orders[query.sort]
        needle = filter_key(query.q)
        matched = view.matching(needle) if needle else None
        if matched is not None:
            order = [index for index in order if index in matched]
        matches = len(order)
        last_page = max(1, math.ceil(matches / ROWS_PER_PAGE))
        query = PageQuery(query.q, query.sort, min(query.page, last_page))
        first = (query.page - 1) * ROWS_PER_PAGE
        picked = order[first : first + ROWS_PER_PAGE]
        rows = view.rows
        chunks.append(b'<div class="network"><section id="map"><h2>Map</h2>')
        chunks.extend(view.map_matching(matched))
        chunks.append(b"</section>\n")
        chunks.append(redactor(_stations_head(view, query, len(picked), matches, first)).encode())
        chunks.append(b"".join([rows[index] for index in picked]))
        chunks.append(
            b"</tbody></table></div>" + redactor(_paging(query, matches, first, len(picked))).encode() + b"</section>"
        )
        chunks.append(b"</div>\n")
    chunks.append(redactor(_refreshes_part(health, now) + _links_part(links) + "</body></html>\n").encode())
    return _reply(HTTPStatus.OK, chunks)


def render_station_page(
    health: FeedHealth,
    view: StationView | None,
    name: str,
    events: EventLog,
    redactor: Redactor,
    closest: Sequence[str] = (),
) -> Reply:
    """The page of one station (any case of its name): its state and since when, its connectors, its
    last changes; 404 with the closest names when there is no such station."""
    now = time.time()
    index = view.index_of.get(name.casefold()) if view is not None else None
    back = '<p class="back"><a href="/">&larr; Chargy network status</a></p>'
    if view is None or index is None:
        why = "no snapshot is in service" if view is None else "no station of that name is in the feed"
        suggestions = "".join(f'<li><a href="{station_path(other)}">{_escape(other)}</a></li>' for other in closest)
        body = (
            _head("otel-chargy: no such station", health, now)
            + f"<header>{back}<h1>No station “{_escape(name[:200])}”</h1></header><p>{why.capitalize()}.</p>"
            + (f"<p>Did you mean:</p><ul>{suggestions}</ul>" if suggestions else "")
            + "</body></html>\n"
        )
        return _reply(HTTPStatus.NOT_FOUND, [redactor(body).encode()])
    station = view.snapshot.stations[index]
    state = view.states[index]
    condition = events.condition(station.name)
    counts = station.count_by_state()
    since = f" {_since_text(condition, now)}" if condition is not None and condition.state is state else ""
    rows = []
    for device in station.devices:
        for connector in device.connectors:
            connector_since = events.connector_since((station.name, device.name, connector.name))
            rows.append(
                f'<tr class="{connector.state.value}"><td data-label="Device">{_escape(device.name)}</td>'
                f'<td data-label="Connector">{_escape(connector.name)}</td>'
                f'<td data-label="State"><b>{_escape(connector.state.value)}</b></td>'
                f'<td data-label="Feed\'s state">{_escape(connector.raw_state)}</td>'
                f'<td data-label="Since">{_since_text(connector_since, now) if connector_since else "&ndash;"}</td>'
                f'<td class="n" data-label="Power">{_power(connector.max_power_kw)}</td></tr>'
            )
    body = (
        _head(f"{station.name}: otel-chargy", health, now)
        + f"<header>{back}<h1>{_escape(station.name)}</h1><p>{_escape(station.address)}</p></header>"
        + f'<section id="station-state" class="{_CSS_CLASS[state]}"><h2><span class="dot {_CSS_CLASS[state]}">'
        + f"</span>{state.value}{since}</h2>"
        + f"<p>{counts[SimpleState.AVAILABLE]} available, {counts[SimpleState.CHARGING]} charging, "
        + f"{counts[SimpleState.UNAVAILABLE]} unavailable; at most {_power(station.max_power_kw)}.</p>"
        + f'<p><a href="/api/v1/stations/{quote(station.name, safe="")}">As JSON</a></p></section>\n'
        + '<section id="connectors"><h2>Connectors</h2><div class="scroll"><table class="cards"><thead><tr>'
        + "<th>device</th><th>connector</th><th>state</th><th>feed's state</th><th>since</th>"
        + '<th class="n">power</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table></div></section>\n"
        + _changes_part(events.newest(station.name.casefold(), limit=LAST_CHANGES), now, events, station_column=False)
        + "</body></html>\n"
    )
    return _reply(HTTPStatus.OK, [redactor(body).encode()])
