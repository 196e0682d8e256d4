"""The refresh loop and the holder, in process."""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import threading
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_chargy.catalog import SNAPSHOT_METRICS
from otel_chargy.fetch import Fetched, Validators
from otel_chargy.generator import generate_network, render_kml
from otel_chargy.history import RefreshHistory
from otel_chargy.holder import RefreshStatus, SnapshotHolder
from otel_chargy.metrics import RefreshRecorder
from otel_chargy.model import Snapshot
from otel_chargy.outcome import Outcome
from otel_chargy.parse import SizeBounds
from otel_chargy.publication import Outputs
from otel_chargy.refresh import DEFAULT_MAX_SHRINK, Refresher
from tests.service import WAIT_LIMIT_S, wait_until


class ScriptedSource:
    """Answers each fetch with the next item: bytes, or an exception to raise."""

    description = "scripted"

    def __init__(self, *answers: bytes | Exception) -> None:
        self._answers = list(answers)

    def fetch(self, validators: Validators) -> Fetched:
        answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Fetched(answer)

    def close(self) -> None:
        pass


def refresher_for(
    source: ScriptedSource, interval_s: float = 60, max_shrink: float = DEFAULT_MAX_SHRINK
) -> tuple[Refresher, SnapshotHolder]:
    holder = SnapshotHolder(Outputs(SNAPSHOT_METRICS, exposition=True), max_staleness_s=600)
    refresher = Refresher(
        source, holder, RefreshRecorder([]), trace.NoOpTracer(), interval_s, SizeBounds(), max_shrink=max_shrink
    )
    return refresher, holder


FULL = generate_network(30, seed=7)
# Under half of the connectors, and exactly half.
SMALL = Snapshot(stations=FULL.stations[:10])
HALF = Snapshot(stations=FULL.stations[:15])


def test_a_feed_that_lost_over_half_is_refused_until_it_comes_three_times_in_a_row() -> None:
    assert SMALL.connector_count < FULL.connector_count / 2
    refresher, holder = refresher_for(ScriptedSource(*[render_kml(n) for n in (FULL, SMALL, SMALL, SMALL)]))
    assert refresher.refresh_once().outcome is Outcome.SUCCESS
    good = holder.latest
    for so_far in (1, 2):
        refused = refresher.refresh_once()
        assert refused.outcome is Outcome.SHRUNK
        assert f"from {FULL.connector_count} to {SMALL.connector_count} connectors" in refused.reason
        assert f"({so_far} so far)" in refused.reason
        assert holder.latest is good and holder.status.outcome is Outcome.SHRUNK
        # Asked again at the interval, not sooner: the guard must see the shrink hold for a while.
        assert refresher.next_delay_s() == 60
    assert refresher.refresh_once().outcome is Outcome.SUCCESS
    assert holder.latest is not None and holder.latest.snapshot.stations == SMALL.stations


def test_another_outcome_between_shrunk_feeds_starts_the_count_again() -> None:
    answers = [FULL, SMALL, SMALL, FULL, SMALL, SMALL]
    refresher, _ = refresher_for(ScriptedSource(*[render_kml(n) for n in answers]))
    outcomes = [refresher.refresh_once().outcome for _ in answers]
    assert outcomes == [
        Outcome.SUCCESS,
        Outcome.SHRUNK,
        Outcome.SHRUNK,
        Outcome.SUCCESS,
        Outcome.SHRUNK,
        Outcome.SHRUNK,
    ]


def first_connectors(network: Snapshot, count: int) -> Snapshot:
    """The network cut to its first `count` connectors, in document order."""
    stations = []
    for station in network.stations:
        devices = []
        for device in station.devices:
            kept = device.connectors[: max(count, 0)]
            count -= len(kept)
            if kept:
                devices.append(dataclasses.replace(device, connectors=kept))
        if devices:
            stations.append(dataclasses.replace(station, devices=tuple(devices)))
    return Snapshot(stations=tuple(stations))


@pytest.mark.parametrize(("max_shrink", "lost"), [(0.5, 50), (0.25, 25), (0.75, 75)])
def test_losing_exactly_the_allowed_fraction_is_accepted(max_shrink: float, lost: int) -> None:
    """Of 100 connectors, losing exactly `max_shrink` of them is taken; one more is refused."""
    network = generate_network(60, seed=7)
    hundred = first_connectors(network, 100)
    exactly, one_more = first_connectors(network, 100 - lost), first_connectors(network, 100 - lost - 1)
    assert (hundred.connector_count, exactly.connector_count, one_more.connector_count) == (100, 100 - lost, 99 - lost)
    answers = [render_kml(network) for network in (hundred, exactly, hundred, one_more)]
    refresher, _ = refresher_for(ScriptedSource(*answers), max_shrink=max_shrink)
    outcomes = [refresher.refresh_once().outcome for _ in answers]
    assert outcomes == [Outcome.SUCCESS, Outcome.SUCCESS, Outcome.SUCCESS, Outcome.SHRUNK]


def test_max_shrink_sets_the_guard_and_1_turns_it_off() -> None:
    refresher, _ = refresher_for(ScriptedSource(render_kml(FULL), render_kml(HALF)), max_shrink=0.4)
    refresher.refresh_once()
    assert refresher.refresh_once().outcome is Outcome.SHRUNK
    refresher, _ = refresher_for(ScriptedSource(render_kml(FULL), render_kml(SMALL)), max_shrink=1)
    refresher.refresh_once()
    assert refresher.refresh_once().outcome is Outcome.SUCCESS
    with pytest.raises(ValueError):
        refresher_for(ScriptedSource(), max_shrink=0)


def test_an_unexpected_error_is_counted_and_the_loop_goes_on() -> None:
    good = render_kml(generate_network(5))
    refresher, holder = refresher_for(ScriptedSource(good, RuntimeError("boom"), good))
    assert refresher.refresh_once().outcome is Outcome.SUCCESS
    first = holder.latest
    failed = refresher.refresh_once()
    assert failed.outcome is Outcome.INTERNAL_ERROR and "RuntimeError" in failed.reason
    assert holder.latest is first and holder.status.outcome is Outcome.INTERNAL_ERROR
    assert refresher.refresh_once().outcome is Outcome.SUCCESS


def test_backoff_grows_and_never_passes_the_interval() -> None:
    refresher, _ = refresher_for(ScriptedSource(*[ConnectionError()] * 8), interval_s=10)
    delays = []
    for _ in range(8):
        refresher.refresh_once()
        delays.append(refresher.next_delay_s())
    assert delays[0] <= 1 and all(delay <= 10 for delay in delays)
    assert delays[-1] > delays[0] and delays[-1] >= 5  # 2**7 s, capped at the interval, with jitter down to half


def test_run_refreshes_at_once_and_stops_when_asked() -> None:
    good = render_kml(generate_network(3))
    refresher, holder = refresher_for(ScriptedSource(good, good))
    stop = threading.Event()
    thread = threading.Thread(target=refresher.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: holder.latest is not None, "the first refresh")
    finally:
        stop.set()
        thread.join(timeout=WAIT_LIMIT_S)
    assert not thread.is_alive()


@pytest.mark.parametrize(("jitter", "factor"), [("most", 1.0), ("least", 0.5)])
def test_backoff_doubles_from_1_s_within_its_jitter_up_to_the_interval(
    jitter: str, factor: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1, 2, 4 ... s after each failure in a row (README: "backs off exponentially"), times a jitter in
    [0.5, 1], never past the interval; the jitter's ends are played by replacing the random draw."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high if jitter == "most" else low)
    refresher, _ = refresher_for(ScriptedSource(*[ConnectionError()] * 9), interval_s=100)
    delays = []
    for _ in range(9):
        refresher.refresh_once()
        delays.append(refresher.next_delay_s())
    assert delays == [min(100, 2**failures * factor) for failures in range(9)]


class StopAfterWaits(threading.Event):
    """A stop event that records each wait of the loop, and is set after `waits` of them."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.waited: list[float | None] = []
        self._waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(timeout)
        if len(self.waited) == self._waits:
            self.set()
        return self.is_set()


@pytest.mark.parametrize(("fetch_s", "waited_s"), [(7.0, 53.0), (60.0, 0.0), (75.0, 0.0)])
def test_run_waits_from_the_start_of_each_refresh_and_tells_the_history_when_the_next_one_comes(
    fetch_s: float, waited_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clock that only the feed moves: a fetch of 7 s is followed by a wait of 60 - 7 s; one that took the
    whole interval or more, by none."""
    clock = [1_000.0]

    class SlowSource(ScriptedSource):
        def fetch(self, validators: Validators) -> Fetched:
            clock[0] += fetch_s
            return super().fetch(validators)

    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "time", lambda: clock[0] + 50_000)
    good = render_kml(generate_network(3))
    history = RefreshHistory()
    holder = SnapshotHolder(Outputs(SNAPSHOT_METRICS, exposition=True), max_staleness_s=600)
    refresher = Refresher(
        SlowSource(good, good), holder, RefreshRecorder([]), trace.NoOpTracer(), 60, SizeBounds(), history=history
    )
    stop = StopAfterWaits(2)
    refresher.run(stop)
    assert stop.waited == [waited_s, waited_s]
    assert history.next_refresh_at == clock[0] + 50_000 + waited_s


def test_a_snapshot_exactly_as_old_as_the_maximum_staleness_is_still_served() -> None:
    now = [100.0]
    holder = SnapshotHolder(Outputs(), max_staleness_s=600, monotonic=lambda: now[0])
    holder.publish(generate_network(2), fetched_at=0)
    now[0] = 700.0
    assert holder.current is not None and holder.served().publication is not None
    now[0] = 700.5
    assert holder.current is None and holder.served().publication is None


def test_holder_withdraws_a_stale_snapshot_but_keeps_it() -> None:
    now = [100.0]
    holder = SnapshotHolder(Outputs(), max_staleness_s=5, monotonic=lambda: now[0])
    holder.publish(generate_network(2), fetched_at=0)
    assert holder.current is not None
    now[0] += 6
    assert holder.current is None and holder.latest is not None
    holder.confirm(fetched_at=1)
    assert holder.current is not None


def test_a_confirmed_snapshot_carries_the_time_of_the_fetch_that_confirmed_it() -> None:
    now = [100.0]
    holder = SnapshotHolder(Outputs(), max_staleness_s=600, monotonic=lambda: now[0])
    holder.publish(generate_network(2), fetched_at=1_000)
    now[0] += 300
    holder.confirm(fetched_at=1_300)
    assert holder.latest is not None
    assert (holder.latest.fetched_at, holder.latest.fetched_monotonic) == (1_300, 400.0)


def test_every_change_the_holder_serves_has_a_version_not_seen_before() -> None:
    """A reader caches what it built from a version (the exposition, the pages): a change that reused an
    earlier version would serve what that version showed."""
    holder = SnapshotHolder(Outputs(), max_staleness_s=600)
    versions = [holder.served().version]
    for change in range(3):
        holder.publish(generate_network(2 + change), fetched_at=change)
        versions.append(holder.served().version)
        holder.record(RefreshStatus(Outcome.SUCCESS, "ok", finished_at=change, last_success_at=change))
        versions.append(holder.served().version)
        holder.confirm(fetched_at=change + 0.5)
        versions.append(holder.served().version)
    assert len(set(versions)) == len(versions)


@pytest.mark.parametrize(
    ("history", "served"),
    [
        ("none", "no snapshot is served yet"),
        ("fresh", "the last good snapshot stays in service"),
        ("stale", "the last good snapshot is older than the maximum staleness and no longer served"),
    ],
)
def test_a_failed_refresh_says_what_is_served_meanwhile(
    history: str, served: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    holder = SnapshotHolder(Outputs(SNAPSHOT_METRICS, exposition=True), max_staleness_s=600, monotonic=lambda: now[0])
    answers: list[bytes | Exception] = [ConnectionError("refused")]
    if history != "none":
        answers.insert(0, render_kml(FULL))
    refresher = Refresher(ScriptedSource(*answers), holder, RefreshRecorder([]), trace.NoOpTracer(), 60, SizeBounds())
    if history != "none":
        refresher.refresh_once()
    now[0] += 601 if history == "stale" else 1
    with caplog.at_level(logging.WARNING, logger="otel_chargy"):
        assert refresher.refresh_once().outcome is not Outcome.SUCCESS
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.getMessage().endswith(f"; {served}")


def traced_parse(body: bytes) -> tuple[ReadableSpan, ReadableSpan]:
    """The parse and refresh spans of one refresh of `body`."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    holder = SnapshotHolder(Outputs(SNAPSHOT_METRICS, exposition=True), max_staleness_s=600)
    Refresher(
        ScriptedSource(body), holder, RefreshRecorder([]), provider.get_tracer("t"), 60, SizeBounds()
    ).refresh_once()
    assert sorted(span.name for span in exporter.get_finished_spans()) == ["chargy.parse", "chargy.refresh"]
    parse, refresh = sorted(exporter.get_finished_spans(), key=lambda span: span.name)
    return parse, refresh


def test_the_parse_span_holds_the_documents_size_counts_and_issues() -> None:
    """docs/otlp.md: bytes, placemarks, devices, connectors; an event per parse-issue kind. The counts are
    the generated network's; a copy of its first placemark without a name is skipped, an issue."""
    body = render_kml(FULL)
    first = body[body.index(b"<Placemark>") : body.index(b"</Placemark>") + len(b"</Placemark>")]
    unnamed = re.sub(rb"<name>[^<]*</name>", b"<name></name>", first, count=1)
    body = body.replace(b"</Document>", unnamed + b"</Document>")
    span, refresh = traced_parse(body)
    assert dict(refresh.attributes or {}) == {
        "chargy.feed.bytes": len(body),
        "chargy.feed.stations": len(FULL.stations),
        "chargy.feed.connectors": FULL.connector_count,
        "chargy.snapshot.changed": True,
        "chargy.refresh.outcome": "success",
    }
    assert dict(span.attributes or {}) == {
        "chargy.feed.bytes": len(body),
        "chargy.feed.placemarks": len(FULL.stations),
        "chargy.feed.devices": FULL.device_count,
        "chargy.feed.connectors": FULL.connector_count,
    }
    assert [(event.name, dict(event.attributes or {})) for event in span.events] == [
        ("chargy.parse_issue", {"kind": "placemark_without_name", "count": 1})
    ]


def test_a_failed_parse_span_says_why_and_records_no_exception() -> None:
    span, _ = traced_parse(b"<rss><channel/></rss>")
    assert (span.status.status_code, span.status.description) == (
        StatusCode.ERROR,
        "the root element is <rss>, not <kml>",
    )
    assert dict(span.attributes or {}) == {"chargy.feed.bytes": 21, "error.type": "not_kml"}
    assert list(span.events) == []


def test_a_shrunk_feed_accepted_at_last_is_marked_on_its_refresh_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    holder = SnapshotHolder(Outputs(SNAPSHOT_METRICS, exposition=True), max_staleness_s=600)
    source = ScriptedSource(*[render_kml(network) for network in (FULL, SMALL, SMALL, SMALL)])
    refresher = Refresher(source, holder, RefreshRecorder([]), provider.get_tracer("t"), 60, SizeBounds())
    outcomes = [refresher.refresh_once().outcome for _ in range(4)]
    assert outcomes == [Outcome.SUCCESS, Outcome.SHRUNK, Outcome.SHRUNK, Outcome.SUCCESS]
    refreshes = [span for span in exporter.get_finished_spans() if span.name == "chargy.refresh"]
    accepted = [(span.attributes or {}).get("chargy.feed.shrink_accepted") for span in refreshes]
    assert accepted == [None, None, None, True]
