"""The status page at /: the feed's health, the last refreshes, every station and a map.

Server-rendered, no inline script or style (it is sent with a strict Content-Security-Policy), and
cheap per request: the station table rows and the map are rendered once per snapshot; a request
picks and joins ready rows and renders only the small health part.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, urlencode

from otel_chargy import __version__
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

_MAP_WIDTH = 1000.0
_MAP_PADDING = 12.0
_DOT_RADIUS = 6.0


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _time(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    return f'<time datetime="{_iso(timestamp)}">{shown}</time> ({age_text(timestamp, now)})'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "&ndash;"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _power(kw: float) -> str:
    return f"{kw:g} kW"


def station_max_power_kw(station: Station) -> float:
    return max((c.max_power_kw for d in station.devices for c in d.connectors), default=0.0)


def availability(counts: dict[SimpleState, int]) -> str:
    """free: a connector is available; busy: none is, some charge; down: every connector whose state is
    known is unavailable; unknown: the feed gives no state we can read (the operator's data, not its
    chargers, is at fault: grey, never red)."""
    if counts[SimpleState.AVAILABLE]:
        return "free"
    if counts[SimpleState.CHARGING]:
        return "busy"
    if counts[SimpleState.UNAVAILABLE]:
        return "down"
    return "unknown"


class StationView:
    """The station part of the page for one snapshot: table rows, sort orders and the map, rendered once."""

    def __init__(self, snapshot: Snapshot, redactor: Redactor) -> None:
        self.snapshot = snapshot
        stations = snapshot.stations
        counts = [station.count_by_state() for station in stations]
        powers = [station_max_power_kw(station) for station in stations]
        self.match_keys = [station.name.casefold() for station in stations]
        self.rows = [
            redactor(self._row(station, station_counts, power)).encode()
            for station, station_counts, power in zip(stations, counts, powers, strict=True)
        ]
        by_name = sorted(range(len(stations)), key=lambda index: (self.match_keys[index], index))
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
        self.map = redactor(self._map(stations, counts)).encode()

    @staticmethod
    def _row(station: Station, counts: dict[SimpleState, int], power_kw: float) -> str:
        state = availability(counts)
        label = {"free": "free", "busy": "busy", "down": "all unavailable", "unknown": "state unknown"}[state]
        if state == "down" and counts[SimpleState.UNKNOWN]:
            label = "none available"
        return (
            f'<tr class="{state}"><td><span class="dot {state}"></span>{label}</td>'
            f"<td>{_escape(station.name)}</td><td>{_escape(station.address)}</td>"
            f'<td class="n">{counts[SimpleState.AVAILABLE]}</td><td class="n">{counts[SimpleState.CHARGING]}</td>'
            f'<td class="n">{counts[SimpleState.UNAVAILABLE]}</td><td class="n">{counts[SimpleState.UNKNOWN]}</td>'
            f'<td class="n">{_power(power_kw)}</td></tr>\n'
        )

    @staticmethod
    def _map(stations: Sequence[Station], counts: list[dict[SimpleState, int]]) -> str:
        placed = [
            (station, station_counts)
            for station, station_counts in zip(stations, counts, strict=True)
            if station.latitude is not None and station.longitude is not None
        ]
        unplaced = [station.name for station in stations if station.latitude is None or station.longitude is None]
        parts = ['<div class="map-box">']
        if placed:
            latitudes = [station.latitude for station, _ in placed if station.latitude is not None]
            longitudes = [station.longitude for station, _ in placed if station.longitude is not None]
            south, north, west, east = min(latitudes), max(latitudes), min(longitudes), max(longitudes)
            # Equirectangular, squeezed by the cosine of the middle latitude: true enough for a small country.
            squeeze = math.cos(math.radians((south + north) / 2))
            span = max((east - west) * squeeze, north - south, 1e-6)
            scale = (_MAP_WIDTH - 2 * _MAP_PADDING) / span
            width = (east - west) * squeeze * scale + 2 * _MAP_PADDING
            height = (north - south) * scale + 2 * _MAP_PADDING
            dots = []
            # Down first, free last: a free connector is what most readers look for, so it is drawn on top.
            order = {"unknown": 0, "down": 1, "busy": 2, "free": 3}
            for station, station_counts in sorted(placed, key=lambda item: order[availability(item[1])]):
                assert station.latitude is not None and station.longitude is not None
                x = _MAP_PADDING + (station.longitude - west) * squeeze * scale
                y = _MAP_PADDING + (north - station.latitude) * scale
                title = (
                    f"{station.name}: {station_counts[SimpleState.AVAILABLE]} available, "
                    f"{station_counts[SimpleState.CHARGING]} charging, "
                    f"{station_counts[SimpleState.UNAVAILABLE]} unavailable, "
                    f"{station_counts[SimpleState.UNKNOWN]} unknown"
                )
                dots.append(
                    f'<circle class="{availability(station_counts)}" cx="{x:.1f}" cy="{y:.1f}" r="{_DOT_RADIUS:g}">'
                    f"<title>{_escape(title)}</title></circle>"
                )
            parts.append(
                f'<svg class="map" viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-labelledby="map-title">'
                f'<title id="map-title">Map of {len(placed)} stations, coloured by availability</title>'
                f"{''.join(dots)}</svg>"
            )
        else:
            parts.append("<p>No station has coordinates.</p>")
        parts.append(
            '<p class="legend"><span class="dot free"></span>a connector available '
            '<span class="dot busy"></span>all in use <span class="dot down"></span>all unavailable '
            '<span class="dot unknown"></span>state unknown</p>'
        )
        if unplaced:
            names = ", ".join(_escape(name) for name in unplaced)
            parts.append(f'<p id="unplaced">Not on the map, without coordinates: {names}.</p>')
        parts.append("</div>\n")
        return "".join(parts)


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
        page = int(page_text) if page_text.isdigit() and 0 < len(page_text) < 7 else 1
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

_HEAD = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>otel-chargy: Chargy network status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/status.css?v={__version__}">
<script src="/static/status.js?v={__version__}" defer></script>
</head><body>
<header><h1>Chargy network status</h1>
<p>otel-chargy {_escape(__version__)}: the Chargy EV-charging network, published as OpenTelemetry metrics.</p>
</header>
"""


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
            f'<p class="cause"><b>{_escape(outcome)}</b>: {_escape(health.advice.cause)}</p>'
            f'<p class="next-step"><b>What to do:</b> {_escape(health.advice.next_step)}</p>'
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
        stale = "" if snapshot.fresh else ' <b class="stale">older than --max-staleness: not served</b>'
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
        f'<tr class="{"ok" if record.outcome.succeeded else "failed"}"><td>{_time(record.finished_at, now)}</td>'
        f'<td>{_escape(record.outcome.value)}</td><td class="n">{_duration(record.duration_s)}</td>'
        f'<td class="n">{"&ndash;" if record.stations is None else record.stations}</td>'
        f'<td class="n">{"&ndash;" if record.connectors is None else record.connectors}</td>'
        f"<td>{_escape(record.reason)}</td></tr>"
        for record in health.refreshes
    )
    return (
        f'<section id="refreshes"><h2>Last {len(health.refreshes)} refreshes</h2><div class="scroll"><table>'
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
        f'<div class="scroll"><table id="station-table" data-complete="{"1" if complete else "0"}">'
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


def render_page(
    health: FeedHealth,
    view: StationView | None,
    query: PageQuery,
    links: Links,
    redactor: Redactor,
) -> Reply:
    now = time.time()
    head = redactor(_HEAD + _health_part(health, now))
    chunks = [head.encode()]
    if view is None:
        chunks.append(
            b'<section id="stations"><h2>Stations</h2><p>No snapshot in service: nothing to show until a refresh '
            b"succeeds.</p></section>\n"
        )
    else:
        order = view.orders[query.sort]
        if query.q:
            needle = query.q.casefold()
            keys = view.match_keys
            order = [index for index in order if needle in keys[index]]
        matches = len(order)
        last_page = max(1, math.ceil(matches / ROWS_PER_PAGE))
        query = PageQuery(query.q, query.sort, min(query.page, last_page))
        first = (query.page - 1) * ROWS_PER_PAGE
        picked = order[first : first + ROWS_PER_PAGE]
        rows = view.rows
        chunks.append(b'<div class="network"><section id="map"><h2>Map</h2>')
        chunks.append(view.map)
        chunks.append(b"</section>\n")
        chunks.append(redactor(_stations_head(view, query, len(picked), matches, first)).encode())
        chunks.append(b"".join([rows[index] for index in picked]))
        chunks.append(
            b"</tbody></table></div>" + redactor(_paging(query, matches, first, len(picked))).encode() + b"</section>"
        )
        chunks.append(b"</div>\n")
    chunks.append(redactor(_refreshes_part(health, now) + _links_part(links) + "</body></html>\n").encode())
    return Reply(
        HTTPStatus.OK,
        chunks,
        HTML_TYPE,
        {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"},
    )
