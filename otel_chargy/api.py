"""The read-only JSON API under /api/v1: the stations of the snapshot in service, their state changes
(events) and the feed's health.

The station documents are rendered once per snapshot and served from memory; a request only adds
the snapshot's time, the station's "since" and its last events in front.
"""

from __future__ import annotations

import calendar
import difflib
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from otel_chargy.events import Event, EventLog, state_of_station
from otel_chargy.health import FeedHealth
from otel_chargy.history import RefreshRecord
from otel_chargy.model import SimpleState, Snapshot, Station
from otel_chargy.redact import Redactor
from otel_chargy.reply import JSON_TYPE, Reply, json_bytes, json_reply

API_PREFIX = "/api"
STATIONS_PATH = "/api/v1/stations"
STATUS_PATH = "/api/v1/status"
EVENTS_PATH = "/api/v1/events"
ENDPOINTS = (STATIONS_PATH, STATIONS_PATH + "/{name}", EVENTS_PATH, STATUS_PATH)
DEFAULT_EVENTS_LIMIT = 100
MAX_EVENTS_LIMIT = 10_000
STATION_EVENTS = 20
"""The last events shown with a station."""
SUGGESTIONS = 3


def iso_time(timestamp: float | None) -> str | None:
    return None if timestamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def station_document(station: Station) -> dict[str, Any]:
    counts = station.count_by_state()
    return {
        "name": station.name,
        "state": state_of_station(station).value,
        "address": station.address,
        "latitude": station.latitude,
        "longitude": station.longitude,
        **{state.value: counts[state] for state in SimpleState},
        "max_power_kw": station.max_power_kw,
        "devices": [
            {
                "name": device.name,
                "connectors": [
                    {
                        "name": connector.name,
                        "position": connector.position,
                        "state": connector.state.value,
                        "raw_state": connector.raw_state,
                        "max_power_kw": connector.max_power_kw,
                    }
                    for connector in device.connectors
                ],
            }
            for device in station.devices
        ],
    }


@dataclass(frozen=True, slots=True)
class StationDocuments:
    """The JSON of one snapshot's stations: all of them as one array, and each one by its casefolded name."""

    all_stations: bytes
    by_name: dict[str, tuple[str, bytes]]
    """Casefolded name -> (the name as the feed writes it, its document)."""

    @classmethod
    def render(cls, snapshot: Snapshot, redactor: Redactor) -> StationDocuments:
        rendered = [redactor(json_bytes(station_document(station)).decode()).encode() for station in snapshot.stations]
        by_name: dict[str, tuple[str, bytes]] = {}
        for station, document in zip(snapshot.stations, rendered, strict=True):
            # Two stations of one name, in any case: the first answers, as the events follow it.
            by_name.setdefault(station.name.casefold(), (station.name, document))
        return cls(b"[" + b",".join(rendered) + b"]", by_name)

    def closest(self, name: str) -> list[str]:
        """The names most like `name`, for a 404: a typo or a partial name finds its station."""
        wanted = name.casefold()
        starting = [key for key in self.by_name if wanted and wanted in key][:SUGGESTIONS]
        close = difflib.get_close_matches(wanted, self.by_name, n=SUGGESTIONS, cutoff=0.6) if len(wanted) < 200 else []
        keys = list(dict.fromkeys([*close, *starting]))[:SUGGESTIONS]
        return [self.by_name[key][0] for key in keys]


def event_document(event: Event) -> dict[str, Any]:
    return {
        "at": iso_time(event.at),
        "event": event.name.value,
        "station": event.station,
        "device": event.device,
        "connector": event.connector,
        "from": event.from_state,
        "to": event.to_state,
        "from_raw": event.from_raw,
        "to_raw": event.to_raw,
    }


def error_reply(status: HTTPStatus, error: str, redactor: Redactor, **details: Any) -> Reply:
    return json_reply({"error": error, **{key: _redacted(value, redactor) for key, value in details.items()}}, status)


def _redacted(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, list):
        return [_redacted(item, redactor) for item in value]
    return value


def unknown_path_reply(path: str, redactor: Redactor) -> Reply:
    return error_reply(HTTPStatus.NOT_FOUND, "no such endpoint", redactor, path=path[:200], endpoints=list(ENDPOINTS))


def _parse_time(text: str) -> float:
    """Unix seconds, or an ISO 8601 UTC time as the API writes it (2026-12-03T18:00:00Z)."""
    try:
        return float(text)
    except ValueError:
        pass
    for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d"):
        try:
            return float(calendar.timegm(time.strptime(text, layout)))
        except ValueError:
            continue
    raise ValueError("not a time: give Unix seconds or an ISO 8601 UTC time such as 2026-12-03T18:00:00Z")


def events_reply(query_string: str, events: EventLog, documents: StationDocuments | None, redactor: Redactor) -> Reply:
    """The answer to /api/v1/events?station=NAME&since=TIME&limit=N: events newest first."""
    try:
        values = parse_qs(query_string[:2000], keep_blank_values=True, strict_parsing=False, max_num_fields=10)
    except ValueError:
        return error_reply(HTTPStatus.BAD_REQUEST, "too many query parameters", redactor)
    unknown = sorted(set(values) - {"station", "since", "limit"})
    if unknown:
        return error_reply(
            HTTPStatus.BAD_REQUEST, "unknown query parameter", redactor, parameter=unknown[0][:100],
            parameters=["station", "since", "limit"],
        )  # fmt: skip
    since = None
    if "since" in values:
        try:
            since = _parse_time(values["since"][0].strip())
        except ValueError as error:
            return error_reply(HTTPStatus.BAD_REQUEST, str(error), redactor, parameter="since")
    limit = DEFAULT_EVENTS_LIMIT
    if "limit" in values:
        text = values["limit"][0].strip()
        if not text.isdigit() or not 1 <= int(text[:7]) <= MAX_EVENTS_LIMIT:
            return error_reply(
                HTTPStatus.BAD_REQUEST, f"limit must be a whole number from 1 to {MAX_EVENTS_LIMIT}", redactor,
                parameter="limit",
            )  # fmt: skip
        limit = int(text)
    station = values["station"][0] if "station" in values else None
    found = events.newest(station.casefold() if station is not None else None, since, limit)
    if station is not None and not found and (documents is None or station.casefold() not in documents.by_name):
        suggestions = documents.closest(station) if documents is not None else []
        return error_reply(HTTPStatus.NOT_FOUND, "no such station", redactor, name=station[:200], closest=suggestions)
    document = {
        "events": [event_document(event) for event in found],
        "kept": len(events),
        "max_kept": events.max_events,
        "since_start": iso_time(events.started_at),
    }
    return Reply(HTTPStatus.OK, [redactor(json_bytes(document).decode()).encode() + b"\n"], JSON_TYPE)


def _record_document(record: RefreshRecord) -> dict[str, Any]:
    return {
        "finished_at": iso_time(record.finished_at),
        "outcome": record.outcome.value,
        "reason": record.reason,
        "duration_s": round(record.duration_s, 4),
        "stations": record.stations,
        "connectors": record.connectors,
    }


def status_document(health: FeedHealth) -> dict[str, Any]:
    snapshot = health.snapshot
    return {
        "feed": health.feed,
        "up": health.up,
        "outcome": health.outcome.value if health.outcome else None,
        "reason": health.reason,
        "cause": health.advice.cause if health.advice else None,
        "next_step": health.advice.next_step if health.advice else None,
        "since": iso_time(health.since),
        "last_refresh_at": iso_time(health.last_refresh_at),
        "next_refresh_at": iso_time(health.next_refresh_at),
        "last_success_at": iso_time(health.last_success_at),
        "duration_s": None if health.duration_s is None else round(health.duration_s, 4),
        "snapshot": None
        if snapshot is None
        else {
            "fetched_at": iso_time(snapshot.fetched_at),
            "fresh": snapshot.fresh,
            "stations": snapshot.stations,
            "connectors": snapshot.connectors,
            "connectors_by_state": {state.value: count for state, count in snapshot.connectors_by_state.items()},
            "parse_issues": dict(snapshot.parse_issues),
            "format": snapshot.version,
        },
        "refreshes": [_record_document(record) for record in health.refreshes],
        "otlp_push": [
            {"signal": push.signal, "healthy": push.healthy, "summary": push.summary} for push in health.push
        ],
    }


def status_reply(health: FeedHealth, redactor: Redactor) -> Reply:
    return Reply(HTTPStatus.OK, [redactor(json_bytes(status_document(health)).decode()).encode() + b"\n"], JSON_TYPE)


def stations_reply(
    path: str,
    documents: StationDocuments | None,
    fetched_at: float,
    reason: str,
    redactor: Redactor,
    events: EventLog | None = None,
) -> Reply:
    """The answer to /api/v1/stations or /api/v1/stations/{name} (any case)."""
    if documents is None:
        error = {"error": "no snapshot in service", "reason": redactor(reason)}
        return json_reply(error, HTTPStatus.SERVICE_UNAVAILABLE)
    time_field = b'{"fetched_at":"' + (iso_time(fetched_at) or "").encode() + b'",'
    if path == STATIONS_PATH:
        return Reply(HTTPStatus.OK, [time_field, b'"stations":', documents.all_stations, b"}\n"], JSON_TYPE)
    name = unquote(path.removeprefix(STATIONS_PATH + "/"))
    found = documents.by_name.get(name.casefold())
    if found is None:
        return error_reply(
            HTTPStatus.NOT_FOUND, "no such station", redactor, name=name[:200], closest=documents.closest(name)
        )
    feed_name, document = found
    history = b""
    if events is not None:
        condition = events.condition(feed_name)
        last = events.newest(feed_name.casefold(), limit=STATION_EVENTS)
        history = json_bytes(
            {
                "since": iso_time(condition.since) if condition else None,
                "since_start": condition.since_start if condition else None,
                "events": [event_document(event) for event in last],
            }
        )[1:-1]
        history = redactor(history.decode()).encode() + b","
    # The station's own object, with the snapshot's time and the station's history as its first fields.
    return Reply(HTTPStatus.OK, [time_field, history, document[1:], b"\n"], JSON_TYPE)
