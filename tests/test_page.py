"""The status page at /, as a person sees it: otel-chargy run for real, the page rendered by headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag

from otel_chargy.generator import generate_network, render_kml
from otel_chargy.health import PushHealth
from otel_chargy.history import RefreshHistory, RefreshRecord
from otel_chargy.holder import RefreshStatus, SnapshotHolder
from otel_chargy.model import Snapshot
from otel_chargy.outcome import Outcome
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor
from otel_chargy.server import Pages
from otel_chargy.status_page import CONTENT_SECURITY_POLICY, ROWS_PER_PAGE
from tests import browser
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.network import HOSTILE_NAME, UNPLACED_NAME, counts_of, page_network
from tests.service import ServiceProcess, free_port, wait_until

FILTER = "steinfort"


# --- what a person sees, in Chromium -------------------------------------------------------------


@pytest.fixture(scope="module")
def network() -> Snapshot:
    return page_network()


@pytest.fixture(scope="module")
def service(network: Snapshot) -> Iterator[ServiceProcess]:
    with FeedServer() as feed:
        feed.serve(FeedResponse(render_kml(network)))
        with ServiceProcess(["--kml-url", feed.url(query=f"API-KEY={TEST_API_KEY}")]) as service:
            wait_until(lambda: service.get("/api/v1/status").json()["up"], "the first refresh")
            yield service


@pytest.fixture(scope="module")
def page_dom(service: ServiceProcess, chromium: browser.Browser) -> Callable[[bool], BeautifulSoup]:
    """The page's DOM once loaded, with JavaScript on and off, each rendered once for the module."""

    @cache
    def render(javascript: bool) -> BeautifulSoup:
        soup = chromium.open(f"{service.base_url}/", javascript=javascript).dom()
        # The page's script marks the document: proof that JavaScript ran, or did not.
        assert ("scripted" in (soup.html.get("class") or [])) is javascript  # type: ignore[union-attr]
        return soup

    return render


def _text(node: object) -> str:
    """The text of an element that must be there."""
    assert isinstance(node, Tag), node
    return node.get_text()


def _attribute(node: object, name: str) -> str:
    assert isinstance(node, Tag), node
    return str(node[name])


def _visible_rows(soup: BeautifulSoup) -> list[Tag]:
    table = soup.find(id="station-table")
    assert isinstance(table, Tag)
    return [row for row in table.find_all("tr") if row.find("td") and not row.has_attr("hidden")]


def _row_of(row: Tag) -> tuple[str, dict[str, int]]:
    cells = [cell.get_text() for cell in row.find_all("td")]
    counts = {"available": int(cells[3]), "charging": int(cells[4]), "unavailable": int(cells[5])}
    return cells[1], {**counts, "unknown": int(cells[6])}


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_every_station_is_listed_with_its_counts(
    page_dom: Callable[[bool], BeautifulSoup], network: Snapshot, javascript: bool
) -> None:
    soup = page_dom(javascript)
    shown = dict(_row_of(row) for row in _visible_rows(soup))
    assert shown == {station.name: counts_of(station) for station in network.stations}


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_the_map_has_one_dot_per_station_with_coordinates(
    page_dom: Callable[[bool], BeautifulSoup], network: Snapshot, javascript: bool
) -> None:
    soup = page_dom(javascript)
    svg = soup.select_one("#map svg")
    assert svg is not None
    titles = [_text(circle.title) for circle in svg.find_all("circle")]
    expected = [
        f"{s.name}: {counts_of(s)['available']} available, {counts_of(s)['charging']} charging, "
        f"{counts_of(s)['unavailable']} unavailable, {counts_of(s)['unknown']} unknown"
        for s in network.stations
        if s.latitude is not None
    ]
    assert sorted(titles) == sorted(expected)
    unplaced = soup.find(id="unplaced")
    assert unplaced is not None and UNPLACED_NAME in unplaced.get_text()
    assert not any(title.startswith(UNPLACED_NAME) for title in titles)


def test_fully_unavailable_stations_stand_out(page_dom: Callable[[bool], BeautifulSoup], network: Snapshot) -> None:
    soup = page_dom(True)
    down = {name for name, counts in map(_row_of, soup.select("#station-table tr.down")) if counts}
    assert down == {
        s.name
        for s in network.stations
        if counts_of(s)["available"] == counts_of(s)["charging"] == 0 and counts_of(s)["unavailable"]
    }
    assert all(_text(row.find("td")) == "all unavailable" for row in soup.select("#station-table tr.down"))


def test_a_station_of_unknown_state_is_grey_not_down(
    page_dom: Callable[[bool], BeautifulSoup], network: Snapshot
) -> None:
    soup = page_dom(True)
    unknown = {name: counts for name, counts in map(_row_of, soup.select("#station-table tr.unknown"))}
    expected = {s.name: counts_of(s) for s in network.stations if counts_of(s)["unknown"] == sum(counts_of(s).values())}
    assert unknown == expected and len(unknown) == 1
    assert all(_text(row.find("td")) == "state unknown" for row in soup.select("#station-table tr.unknown"))
    (name,) = unknown
    dots = [circle for circle in soup.select("#map svg circle") if _text(circle.title).startswith(f"{name}: ")]
    assert [dot["class"] for dot in dots] == [["unknown"]]


def test_a_station_named_with_markup_is_text_on_the_page_and_in_the_map(
    page_dom: Callable[[bool], BeautifulSoup],
) -> None:
    soup = page_dom(True)
    # The only script is the page's own, and the name is a cell's text and a dot's title, unchanged.
    assert [script.get("src") for script in soup.find_all("script")] == ["/static/status.js?v=0.1.0"]
    assert HOSTILE_NAME in [cell.get_text() for cell in soup.select("#station-table td")]
    assert any(_text(circle.title).startswith(HOSTILE_NAME + ": ") for circle in soup.select("#map circle"))


def test_typing_a_filter_and_clicking_a_sort_apply_without_a_round_trip(
    service: ServiceProcess, chromium: browser.Browser, network: Snapshot
) -> None:
    tab = chromium.open(f"{service.base_url}/")
    tab.evaluate("window.loadedOnce = true")  # gone if the page were loaded again
    tab.type_into("#q", FILTER.capitalize())
    tab.click('a[data-sort="available"]')
    soup = tab.dom()
    assert tab.evaluate("window.loadedOnce") is True
    rows = [_row_of(row) for row in _visible_rows(soup)]
    expected = {s.name: counts_of(s) for s in network.stations if FILTER in s.name.casefold()}
    assert expected and dict(rows) == expected
    available = [counts["available"] for _, counts in rows]
    assert available == sorted(available, reverse=True)
    assert len(soup.select("#station-table tr[hidden]")) == len(network.stations) - len(expected)
    placed = [s for s in network.stations if s.latitude is not None]
    placed_matches = [s for s in placed if FILTER in s.name.casefold()]
    assert len(soup.select("#map circle.dim")) == len(placed) - len(placed_matches)
    shown = soup.find(id="shown")
    assert shown is not None and shown.get_text() == f"{len(expected)} of {len(network.stations)} stations match."
    # The state is kept in the fragment: the same view comes back on a reload or from a bookmark.
    assert tab.evaluate("location.hash") == f"#q={FILTER.capitalize()}&sort=available"
    reopened = chromium.open(tab.evaluate("location.href")).dom()
    assert [_row_of(row) for row in _visible_rows(reopened)] == rows
    tab.close()


def test_sorting_by_unknown_leads_with_the_station_of_unknown_state_drawn_grey(
    service: ServiceProcess, chromium: browser.Browser, network: Snapshot
) -> None:
    (unknown,) = [s.name for s in network.stations if counts_of(s)["unknown"] == sum(counts_of(s).values())]
    server_sorted = chromium.open(f"{service.base_url}/?sort=unknown", javascript=False).dom()
    assert _row_of(_visible_rows(server_sorted)[0])[0] == unknown
    tab = chromium.open(f"{service.base_url}/")
    tab.click('a[data-sort="unknown"]')
    assert _row_of(_visible_rows(tab.dom())[0])[0] == unknown
    fill = tab.evaluate(
        "Array.from(document.querySelectorAll('#map circle'))"
        f".filter(c => c.querySelector('title').textContent.startsWith({json.dumps(unknown + ': ')}))"
        ".map(c => getComputedStyle(c).fill)"
    )
    assert fill == ["rgb(140, 149, 159)"]  # --unknown, #8c959f: grey, not the red of a station down
    tab.close()


def test_the_filter_and_sort_work_with_javascript_off(
    service: ServiceProcess, chromium: browser.Browser, network: Snapshot
) -> None:
    soup = chromium.open(f"{service.base_url}/?q={FILTER.upper()}&sort=available", javascript=False).dom()
    rows = [_row_of(row) for row in _visible_rows(soup)]
    expected = {s.name: counts_of(s) for s in network.stations if FILTER in s.name.casefold()}
    assert dict(rows) == expected
    available = [counts["available"] for _, counts in rows]
    assert available == sorted(available, reverse=True)
    search = soup.find(id="q")
    assert isinstance(search, Tag) and search.get("value") == FILTER.upper()


def test_with_the_feed_unreachable_the_page_names_the_cause_and_the_next_step(chromium: browser.Browser) -> None:
    closed_url = f"http://127.0.0.1:{free_port()}/kml?API-KEY={TEST_API_KEY}"
    with ServiceProcess(["--kml-url", closed_url]) as service:
        wait_until(lambda: service.get("/api/v1/status").json()["outcome"], "the first refresh")
        soup = chromium.open(f"{service.base_url}/").dom()
    health = soup.find(id="health")
    assert isinstance(health, Tag) and "failing" in health.get_attribute_list("class")
    assert health.h2 is not None and health.h2.get_text().startswith("Feed failing since")
    cause = health.select_one(".cause")
    next_step = health.select_one(".next-step")
    assert cause is not None and next_step is not None
    assert cause.get_text().startswith("network_error: ") and "refused the connection" in cause.get_text()
    assert "--feed.url" in next_step.get_text() and "--demo" in next_step.get_text()
    assert TEST_API_KEY not in str(soup) and "API-KEY=REDACTED" in health.get_text()


# --- the page's HTML, rendered in this process ---------------------------------------------------


def _pages(network: Snapshot, redactor: Redactor | None = None, **options: Any) -> Pages:
    holder = SnapshotHolder(Outputs(observed=(), exposition=False), 600)
    holder.publish(network, time.time())
    return Pages(holder, None, "/metrics", "test feed", redactor or Redactor([]), **options)


def _html(pages: Pages, target: str) -> BeautifulSoup:
    reply = pages.page(target)
    assert reply is not None and reply.status == 200
    return BeautifulSoup(b"".join(reply.chunks), "lxml")


def test_the_page_runs_under_a_strict_content_security_policy(network: Snapshot) -> None:
    pages = _pages(network)
    reply = pages.page("/")
    assert reply is not None and reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    soup = BeautifulSoup(b"".join(reply.chunks), "lxml")
    assert all(str(script.get("src", "")).startswith("/static/") for script in soup.find_all("script"))
    assert not soup.find_all("style")
    assert not [tag for tag in soup.find_all(True) if any(a == "style" or a.startswith("on") for a in tag.attrs)]
    for link in ("/static/status.css?v=0.1.0", "/static/status.js?v=0.1.0"):
        static = pages.page(link)
        assert static is not None and static.status == 200 and b"".join(static.chunks)


def test_beyond_a_thousand_stations_rows_are_paged_and_the_filter_reaches_them_all() -> None:
    network = generate_network(ROWS_PER_PAGE + 200, seed=3)
    pages = _pages(network)
    first = _html(pages, "/")
    assert len(first.select("#station-table tbody tr")) == ROWS_PER_PAGE
    assert first.select_one("#station-table")["data-complete"] == "0"  # type: ignore[index]
    assert len(first.select("#map circle")) == ROWS_PER_PAGE + 200  # the map still shows the whole network
    next_link = first.select_one('a[rel="next"]')
    assert next_link is not None and next_link["href"] == "?page=2"
    last = _html(pages, "/?page=2")
    assert len(last.select("#station-table tbody tr")) == 200
    assert last.select_one('a[rel="next"]') is None
    by_name = sorted(network.stations, key=lambda station: station.name.casefold())
    wanted = by_name[-1].name  # on the last page only
    found = _html(pages, "/?q=" + wanted.replace(" ", "+"))
    assert wanted in [row.find_all("td")[1].get_text() for row in found.select("#station-table tbody tr")]
    past_the_end = _html(pages, "/?page=99")
    assert len(past_the_end.select("#station-table tbody tr")) == 200


def test_the_key_is_redacted_from_the_page(network: Snapshot) -> None:
    soup = _html(_pages(network, Redactor([TEST_API_KEY])), "/")
    assert TEST_API_KEY not in str(soup) and "API-KEY=REDACTED" in soup.get_text()


def test_status_page_benchmark_smoke_run(tmp_path: Path) -> None:
    """The benchmark runs end to end on a small network (its timings are not judged here)."""
    output = tmp_path / "status_page.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/status_page.py", "--sizes", "50", "--repeats", "2", "--output", str(output)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (size,) = json.loads(output.read_text())["sizes"]
    assert size["placemarks"] == 50 and size["page"]["bytes"] > 0 and size["page"]["server_p50_ms"] > 0
    assert "| 50 | page |" in result.stdout


@pytest.mark.parametrize(
    "query",
    [
        "q=" + "x" * 100_000,
        "&".join(f"f{index}=1" for index in range(1_000)),
        "page=99999999999999999999&sort=__class__",
        "page=-1&sort=power&q=%ZZ%00",
        "q=%3Cscript%3Ealert(1)%3C/script%3E%22%3E",
    ],
    ids=["long", "many-fields", "huge-page", "bad-values", "markup"],
)
def test_a_hostile_query_gets_the_page_and_stays_text(network: Snapshot, query: str) -> None:
    soup = _html(_pages(network), "/?" + query)
    assert soup.find(id="station-table") is not None
    assert [script.get("src") for script in soup.find_all("script")] == ["/static/status.js?v=0.1.0"]
    search = soup.find(id="q")
    assert isinstance(search, Tag) and len(str(search.get("value"))) <= 200


def test_the_otlp_push_health_is_shown_when_given(network: Snapshot) -> None:
    pushes = [PushHealth("metrics", True, "exported 12 s ago"), PushHealth("traces", False, "<b>collector down</b>")]
    pages = _pages(network, push_health=lambda: pushes)
    health = _html(pages, "/").find(id="health")
    assert health is not None
    shown = {dt.get_text(): _text(dt.find_next_sibling("dd")) for dt in health.find_all("dt")}
    assert shown["OTLP metrics push"] == "ok: exported 12 s ago"
    assert shown["OTLP traces push"] == "failing: <b>collector down</b>"
    reply = pages.page("/api/v1/status")
    assert reply is not None and b'"signal":"traces","healthy":false' in b"".join(reply.chunks)


@pytest.mark.parametrize(
    ("grafana_url", "linked"),
    [(None, False), ("https://grafana.example/d/chargy?a=1&b=2", True), ("javascript:alert(1)", False)],
)
def test_the_grafana_dashboards_are_linked_when_configured(
    network: Snapshot, grafana_url: str | None, linked: bool
) -> None:
    links = _html(_pages(network, grafana_url=grafana_url), "/").select("#links a")
    grafana = [link["href"] for link in links if link.get_text() == "Grafana dashboards"]
    assert grafana == ([grafana_url] if linked else [])


def test_the_last_20_refreshes_are_shown_newest_first_and_failing_since_outlives_them(network: Snapshot) -> None:
    history = RefreshHistory()
    started = time.time() - 1000
    history.record(RefreshRecord(started, Outcome.SUCCESS, "ok", 0.2, 530, 1800))
    for index in range(1, 26):
        reason = "the feed did not answer within 30 s"
        history.record(RefreshRecord(started + index, Outcome.TIMEOUT, reason, 30, None, None))
    history.expect_next(time.time() + 60)
    pages = _pages(network, history=history)
    soup = _html(pages, "/")
    rows = soup.select("#refreshes tbody tr")
    assert len(rows) == 20
    finished = [_attribute(row.find("time"), "datetime") for row in rows]
    assert finished == sorted(finished, reverse=True)
    assert all(row.find_all("td")[1].get_text() == "timeout" for row in rows)
    status = pages.page("/api/v1/status")
    assert status is not None
    document = json.loads(b"".join(status.chunks))
    assert len(document["refreshes"]) == 20
    # Failing since the first of the 25 failures, though the list no longer holds it.
    assert document["since"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + 1))
    assert document["next_refresh_at"] is not None


def test_one_refresh_is_told_in_the_singular_and_flags_do_not_break_at_their_hyphens(network: Snapshot) -> None:
    history = RefreshHistory()
    history.record(
        RefreshRecord(time.time(), Outcome.NETWORK_ERROR, "name feed.invalid not resolved (x)", 0.1, None, None)
    )
    holder = SnapshotHolder(Outputs(observed=(), exposition=False), 600)
    holder.record(RefreshStatus(Outcome.NETWORK_ERROR, "name feed.invalid not resolved (x)", time.time()))
    soup = _html(Pages(holder, None, "/metrics", "test feed", Redactor([]), history=history), "/")
    heading = soup.select_one("#refreshes h2")
    assert heading is not None and heading.get_text() == "The last refresh"
    flags = [code.get_text() for code in soup.select("#health code.flag")]
    assert "--feed.url" in flags
    css = (Path(__file__).parent.parent / "otel_chargy" / "static" / "status.css").read_text()
    assert "code.flag { white-space: nowrap;" in css


def test_each_new_snapshot_is_told_in_the_refresh_thread_and_a_failing_listener_harms_nothing(
    network: Snapshot, caplog: pytest.LogCaptureFixture
) -> None:
    history = RefreshHistory()
    told: list[Snapshot] = []

    def broken(snapshot: Snapshot) -> None:
        raise RuntimeError("a bug in a page")

    history.on_each_snapshot(broken)
    history.on_each_snapshot(told.append)
    history.record(RefreshRecord(time.time(), Outcome.SUCCESS, "ok", 0.1, 530, 1800), network)
    history.record(RefreshRecord(time.time(), Outcome.NOT_MODIFIED, "the feed has not changed", 0.1, None, None))
    assert told == [network]
    assert len(history.records) == 2
    assert "the status page failed to take a new snapshot" in caplog.text


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (412, 900)], ids=["desktop", "phone"])
def test_the_page_fits_the_screen_without_sideways_scrolling(
    service: ServiceProcess, chromium: browser.Browser, width: int, height: int
) -> None:
    tab = chromium.open(f"{service.base_url}/", width=width, height=height)
    assert tab.evaluate("document.documentElement.scrollWidth") <= width
    # The health part comes first: it starts within the first screen.
    assert tab.evaluate("document.getElementById('health').getBoundingClientRect().top") < height / 2
    tab.close()


def test_before_the_first_refresh_the_page_says_so() -> None:
    holder = SnapshotHolder(Outputs(observed=(), exposition=False), 600)
    soup = _html(Pages(holder, None, "/metrics", "test feed", Redactor([])), "/")
    health = soup.find(id="health")
    assert health is not None and health.h2 is not None
    assert health.h2.get_text() == "Feed: no refresh has finished yet"
    stations = soup.find(id="stations")
    assert stations is not None and "No snapshot in service" in stations.get_text()
