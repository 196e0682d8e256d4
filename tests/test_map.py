"""The page at 1,000 and 10,000 stations, on a desktop and on a 390-pixel phone, as Chromium draws it:
the stations that are down come first with how long they have been down, every one of them can be
seen on the map (none covered by another station), the country's outline is drawn, nothing runs off
the side; and the map highlights the same stations for ?q= as for typing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from otel_chargy.config import ListenAddress
from otel_chargy.generator import generate_network
from otel_chargy.holder import SnapshotHolder
from otel_chargy.model import SimpleState, Snapshot, Station
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor
from otel_chargy.server import Pages, make_server
from otel_chargy.webconfig import WebConfig
from tests.browser import Browser, Tab

ROOT = Path(__file__).parent.parent
DOWN_RED = (0xCF, 0x22, 0x2E)  # --down in status.css
UNKNOWN_GREY = (0x8C, 0x95, 0x9F)  # --unknown
HOME_FILL = (0xFF, 0xFF, 0xFF)  # .map path.home
LAND_FILL = (0xEA, 0xEE, 0xF2)  # .map path.land
DESKTOP, PHONE = (1280, 900), (390, 844)
HOURS_AGO, MINUTES_AGO = 2 * 3600, 10 * 60


def _down(station: Station) -> bool:
    """No connector available or charging (all unavailable, or of unknown state): written here from the
    model, not asked of the page."""
    return all(c.state in (SimpleState.UNAVAILABLE, SimpleState.UNKNOWN) for d in station.devices for c in d.connectors)


def _broken(station: Station) -> Station:
    devices = tuple(
        replace(
            d, connectors=tuple(replace(c, raw_state="FAULTED", state=SimpleState.UNAVAILABLE) for c in d.connectors)
        )
        for d in station.devices
    )
    return replace(station, devices=devices)


@dataclass(frozen=True)
class Network:
    before: Snapshot
    """Published two hours ago."""
    now: Snapshot
    """Published ten minutes ago: ten more stations down."""
    newly_down: frozenset[str]

    @property
    def down(self) -> list[Station]:
        return [station for station in self.now.stations if _down(station)]


@cache
def _network(size: int) -> Network:
    before = generate_network(size, seed=size)
    stations = list(before.stations)
    newly = [index for index, station in enumerate(stations) if not _down(station)][:: size // 10][:10]
    for index in newly:
        stations[index] = _broken(stations[index])
    now = Snapshot(tuple(stations))
    return Network(before, now, frozenset(stations[index].name for index in newly))


@dataclass
class Site:
    url: str
    network: Network


@pytest.fixture(scope="module")
def sites() -> Iterator[Callable[[int], Site]]:
    """A server in this process for each network size, its snapshot two refreshes old."""
    servers = []

    @cache
    def serve(size: int) -> Site:
        network = _network(size)
        holder = SnapshotHolder(Outputs(), max_staleness_s=7 * 86400)
        now = time.time()
        holder.publish(network.before, now - HOURS_AGO)
        holder.publish(network.now, now - MINUTES_AGO)
        pages = Pages(holder, None, "/metrics", "test feed", Redactor([]))
        server = make_server(ListenAddress("127.0.0.1", 0), pages, WebConfig())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return Site(f"http://127.0.0.1:{server.server_address[1]}", network)

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def _screen_check(tab: Tab, width: int) -> None:
    assert tab.evaluate("document.documentElement.scrollWidth") <= width, "the page runs off the side"


_PAGE = """
(() => ({
  sections: Array.from(document.querySelectorAll("section")).map(section => section.id),
  problems: Array.from(document.querySelectorAll("#problems li")).map(item => [item.querySelector("a").textContent,
                                                                              item.textContent]),
  first_problem_top: document.querySelector("#problems li").getBoundingClientRect().top,
  home: document.querySelector("svg.map path.home title").textContent,
}))()
"""
_PROBLEM_DOTS = """
(() => {
  const map = document.querySelector("svg.map");
  map.scrollIntoView({block: "start"});
  const hidden = [];
  const shown = [];
  for (const dot of map.querySelectorAll("circle.down, circle.unknown")) {
    const box = dot.getBoundingClientRect();
    const cx = box.left + box.width / 2, cy = box.top + box.height / 2, r = box.width / 2;
    const name = dot.querySelector("title").textContent.split(": ")[0];
    // Seen if any of its centre and eight points around it shows this very dot.
    const points = [[0, 0]].concat([0, 1, 2, 3, 4, 5, 6, 7].map(k => [Math.cos(k * Math.PI / 4) * r * 0.6,
                                                                      Math.sin(k * Math.PI / 4) * r * 0.6]));
    const seen = points.find(([dx, dy]) => document.elementFromPoint(cx + dx, cy + dy) === dot);
    if (seen) {
      shown.push([name, cx + seen[0], cy + seen[1], dot.classList.contains("unknown") ? "unknown" : "down"]);
    } else {
      hidden.push([name, cx, cy]);
    }
  }
  const box = map.getBoundingClientRect();
  return {hidden, shown, map: [box.left, box.top, box.width, box.height], scroll: [window.scrollX, window.scrollY]};
})()
"""


@pytest.mark.parametrize("size", [1000, 10_000])
@pytest.mark.parametrize("screen", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_down_stations_lead_the_page_and_every_one_shows_on_the_map(
    sites: Callable[[int], Site], chromium: Browser, size: int, screen: tuple[int, int], tmp_path: Path
) -> None:
    site = sites(size)
    width, height = screen
    tab = chromium.open(f"{site.url}/", width=width, height=height)
    try:
        _screen_check(tab, width)
        page = tab.evaluate(_PAGE)
        # The stations that are down come right after the feed's health, each with how long, longest first.
        assert page["sections"][:3] == ["health", "problems", "changes"]
        down = site.network.down
        assert len(down) > size // 100 and {name for name, _ in page["problems"]} == {s.name for s in down}
        durations = [" ".join(text.split()) for _, text in page["problems"]]
        old = [text for text in durations if "for at least 2 h" in text]
        new = [text for text in durations if " for 10 min " in text]
        assert len(old) + len(new) == len(down) and len(new) == len(site.network.newly_down)
        assert durations == old + new, "longest first"
        assert all(name in text for name, text in zip(sorted(site.network.newly_down), sorted(new), strict=True))
        assert page["first_problem_top"] < 2 * height, "the down stations are near the top"
        # Every down station can be seen on the map: none is covered by another station.
        found = tab.evaluate(_PROBLEM_DOTS)
        assert found["hidden"] == [] and len(found["shown"]) == len(down)
        left, top, map_width, map_height = found["map"]
        assert left >= 0 and left + map_width <= width and top + map_height <= height
        scroll_x, scroll_y = found["scroll"]  # a screenshot's clip is placed on the document, not the viewport
        picture = tab.picture(
            left + scroll_x, top + scroll_y, map_width, map_height, tmp_path / f"map-{size}-{width}.png"
        )
        for name, x, y, kind in found["shown"]:
            colour = DOWN_RED if kind == "down" else UNKNOWN_GREY
            column, row = int(x - left), int(y - top)
            around = [
                picture.rgb(column + dx, row + dy)
                for dx in (-1, 0, 1)
                for dy in (-1, 0, 1)
                if 0 <= column + dx < picture.width and 0 <= row + dy < picture.height
            ]
            assert any(max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) <= 12 for pixel in around), (
                "the dot's colour is not on the screen where it is",
                name,
                around,
            )
        # The country's outline: Luxembourg drawn (white), its neighbours around it (grey), a border line.
        assert page["home"] == "Luxembourg"
        assert picture.count(HOME_FILL, 2) > map_width * map_height * 0.1
        assert picture.count(LAND_FILL, 2) > map_width * map_height * 0.02
        # On a phone every column of the table shows, under its name; nothing is cut off.
        if width == PHONE[0]:
            cells = tab.evaluate(
                "Array.from(document.querySelectorAll('#station-table tbody tr:nth-child(-n+30) td'))"
                ".map(td => { const r = td.getBoundingClientRect(); return [r.left, r.right, r.width,"
                " getComputedStyle(td).display, getComputedStyle(td, '::before').content]; })"
            )
            assert len(cells) == 30 * 8
            assert all(cell[2] > 0 and cell[0] >= 0 and cell[1] <= width and cell[3] != "none" for cell in cells)
            assert {cell[4] for cell in cells[:8]} == {
                '"State: "', '"Station: "', '"Address: "', '"Available: "', '"Charging: "', '"Unavailable: "',
                '"Unknown: "', '"Power: "',
            }  # fmt: skip
    finally:
        tab.close()


_HIGHLIGHTED = """
Array.from(document.querySelectorAll("svg.map circle:not(.dim)"))
  .map(dot => { const title = dot.querySelector("title").textContent; return title.slice(0, title.lastIndexOf(": ")); })
"""


def test_the_filter_highlights_the_same_stations_on_the_map_typed_or_asked_at_10000(
    sites: Callable[[int], Site], chromium: Browser
) -> None:
    site = sites(10_000)
    typing = chromium.open(f"{site.url}/")
    for needle in ("STEINFORT", "é"):  # another case; a letter beyond ASCII
        truth = {s.name for s in site.network.now.stations if needle.lower() in s.name.lower()}
        assert 0 < len(truth) < 10_000
        asked = chromium.open(f"{site.url}/?q={quote(needle)}", javascript=False)
        asked_names = set(asked.evaluate(_HIGHLIGHTED))
        asked.close()
        typing.evaluate("document.getElementById('q').value = ''")
        typing.type_into("#q", needle)
        assert asked_names == set(typing.evaluate(_HIGHLIGHTED)) == truth, needle
    typing.close()


def test_the_map_zooms_and_pans_with_javascript_and_stays_fixed_without(
    sites: Callable[[int], Site], chromium: Browser
) -> None:
    site = sites(1000)
    # Without JavaScript the zoom buttons stay hidden: the map is the whole network, fixed.
    assert '<div class="map-controls" hidden>' in httpx.get(f"{site.url}/").text
    tab = chromium.open(f"{site.url}/")
    whole = tab.evaluate("document.querySelector('svg.map').getAttribute('viewBox')")
    tab.click('button[data-zoom="in"]')
    zoomed = [float(v) for v in tab.evaluate("document.querySelector('svg.map').getAttribute('viewBox')").split()]
    assert zoomed[2] == pytest.approx(float(whole.split()[2]) / 2, rel=0.01)
    tab.click('button[data-zoom="reset"]')
    assert tab.evaluate("document.querySelector('svg.map').getAttribute('viewBox')").split() == [
        f"{float(v):.1f}" for v in whole.split()
    ]
    tab.close()


@pytest.mark.parametrize("path", ["/", "/?q=gare", "/station/"], ids=["page", "filtered", "station"])
def test_the_page_fetches_nothing_from_outside_and_breaks_no_rule_of_its_policy(
    sites: Callable[[int], Site], chromium: Browser, path: str
) -> None:
    site = sites(1000)
    if path == "/station/":
        path += quote(site.network.down[0].name, safe="")
    tab = chromium.open(site.url + path, watch=True)
    if not path.startswith("/station/"):
        tab.click('button[data-zoom="in"]')  # the script at work, under the policy
    requests = tab.requests()
    violations = tab.violations()
    tab.close()
    assert requests and all(url.startswith(site.url + "/") for url in requests), requests
    assert violations == []


def _inside(ring: list[tuple[float, float]], x: float, y: float) -> bool:
    """Ray casting, written here apart from the page's own."""
    crossings = 0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 <= y < y2 or y2 <= y < y1) and x < x1 + (y - y1) / (y2 - y1) * (x2 - x1):
            crossings += 1
    return crossings % 2 == 1


def test_the_demo_places_every_station_inside_the_country() -> None:
    data = json.loads((ROOT / "otel_chargy" / "static" / "boundaries" / "europe-50m.json").read_text())
    (luxembourg,) = [country for country in data["countries"] if country["name"] == "Luxembourg"]
    ring = [(float(x), float(y)) for x, y in luxembourg["rings"][0]]
    network = generate_network(10_000, seed=5)
    outside = [s.name for s in network.stations if not _inside(ring, s.longitude or 0.0, s.latitude or 0.0)]
    assert outside == []


def test_the_outline_asset_is_small_and_its_provenance_is_kept() -> None:
    directory = ROOT / "otel_chargy" / "static" / "boundaries"
    assert (directory / "europe-50m.json").stat().st_size < 300_000
    readme = (directory / "README.md").read_text()
    assert "Natural Earth" in readme and "public domain" in readme and "ne_50m_admin_0_countries" in readme
