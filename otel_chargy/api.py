"""The read-only JSON API under /api/v1: the stations of the snapshot in service, and the feed's health.

The station documents are rendered once per snapshot and served from memory; a request only adds
the snapshot's time in front.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from otel_chargy.health import FeedHealth
from otel_chargy.history import RefreshRecord
from otel_chargy.model import SimpleState, Snapshot, Station
from otel_chargy.redact import Redactor
from otel_chargy.reply import JSON_TYPE, Reply, json_bytes, json_reply
from otel_chargy.status_page import station_max_power_kw

STATIONS_PATH = "/api/v1/stations"
STATUS_PATH = "/api/v1/status"


def iso_time(timestamp: float | None) -> str | None:
    return None if timestamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def station_document(station: Station) -> dict[str, Any]:
    counts = station.count_by_state()
    return {
        "name": station.name,
        "address": station.address,
        "latitude": station.latitude,
        "longitude": station.longitude,
        **{state.value: counts[state] for state in SimpleState},
        "max_power_kw": station_max_power_kw(station),
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
    """The JSON of one snapshot's stations: all of them as one array, and each one by name."""

    all_stations: bytes
    by_name: dict[str, bytes]

    @classmethod
    def render(cls, snapshot: Snapshot, redactor: Redactor) -> StationDocuments:
        rendered = [redactor(json_bytes(station_document(station)).decode()).encode() for station in snapshot.stations]
        by_name: dict[str, bytes] = {}
        for station, document in zip(snapshot.stations, rendered, strict=True):
            by_name.setdefault(station.name, document)  # two stations of one name: the first answers
        return cls(b"[" + b",".join(rendered) + b"]", by_name)


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
    path: str, documents: StationDocuments | None, fetched_at: float, reason: str, redactor: Redactor
) -> Reply:
    """The answer to /api/v1/stations or /api/v1/stations/{name}."""
    if documents is None:
        error = {"error": "no snapshot in service", "reason": redactor(reason)}
        return json_reply(error, HTTPStatus.SERVICE_UNAVAILABLE)
    time_field = b'{"fetched_at":"' + (iso_time(fetched_at) or "").encode() + b'",'
    if path == STATIONS_PATH:
        return Reply(HTTPStatus.OK, [time_field, b'"stations":', documents.all_stations, b"}\n"], JSON_TYPE)
    name = unquote(path.removeprefix(STATIONS_PATH + "/"))
    document = documents.by_name.get(name)
    if document is None:
        return json_reply({"error": "no such station", "name": redactor(name)}, HTTPStatus.NOT_FOUND)
    # The station's own object, with the snapshot's time as its first field.
    return Reply(HTTPStatus.OK, [time_field, document[1:], b"\n"], JSON_TYPE)
