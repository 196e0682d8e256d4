"""What the attacker's tests share: a real service on a real local feed, the feed changed attack by
attack, and what the service then serves and costs, measured from outside."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.feedserver import FeedResponse, FeedServer
from tests.process_status import status_kib
from tests.service import ServiceProcess, wait_until

JSON = "application/json"
KML = "application/vnd.google-earth.kml+xml"
MIB = 1024 * 1024
FEED_PATH = "/kml"
# The acceptance: what a refresh of any hostile feed of rows 1-4 may cost at most.
MAX_PEAK_RSS_MIB = 300
MAX_METRICS_BYTES = 20_000_000


@contextmanager
def attacked_service(*args: str) -> Iterator[tuple[FeedServer, ServiceProcess]]:
    """A feed server and the service reading it, refreshing every half second."""
    with (
        FeedServer() as feed,
        ServiceProcess(["--feed.url", feed.url(FEED_PATH), "--refresh-interval", "0.5", *args]) as service,
    ):
        yield feed, service


def refreshes(service: ServiceProcess, outcome: str) -> float:
    return service.sample("chargy_feed_refreshes_total", outcome=outcome) or 0.0


def play(feed: FeedServer, service: ServiceProcess, response: FeedResponse, outcome: str) -> dict[str, Any]:
    """Serves `response` until a refresh has read it, and returns the service's status then (/api/v1/status:
    the last refresh's outcome and reason, the parse issues of the snapshot in service), its outcome checked.
    Refreshes never overlap: once the feed is asked a second time after the change, the refresh that asked
    the first time has ended, and so has every refresh of what was served before."""
    feed.serve(response)
    asked = _feed_requests(feed)
    wait_until(lambda: _feed_requests(feed) >= asked + 2, "two requests for the feed")
    status: dict[str, Any] = service.get("/api/v1/status").json()
    assert status["outcome"] == outcome, status["reason"]
    return status


def _feed_requests(feed: FeedServer) -> int:
    """Requests for the feed's first (or only) page."""
    return sum(1 for path, _ in list(feed.requests) if path == FEED_PATH)


def peak_rss_mib(service: ServiceProcess) -> float:
    """The service's high-water mark of resident memory, since it started."""
    return status_kib("VmHWM", service.process.pid) / 1024


def metrics_text(service: ServiceProcess) -> str:
    response = service.get("/metrics")
    assert response.status_code == 200
    return response.text


def series(text: str) -> Counter[str]:
    """Every sample line of an exposition without its value (name and labels, as the service writes them
    in one order), counted: a duplicate series counts twice. Megabytes of hostile labels take
    prometheus_client's parser seconds; a small exposition is read with it (`parsed_series`)."""
    return Counter(line.rpartition(" ")[0] for line in text.splitlines() if line and not line.startswith("#"))


def family_of(line: str) -> str:
    return line.partition("{")[0]


def label_values(line: str) -> list[str]:
    """The label values of a sample line, unescaped."""
    return [_unescape(value) for value in _LABEL_VALUE.findall(line)]


_LABEL_VALUE = re.compile(r'="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda match: "\n" if match.group(1) == "n" else match.group(1), value)


def parsed_series(text: str) -> Counter[tuple[str, tuple[tuple[str, str], ...]]]:
    """`series` as prometheus_client's parser reads them."""
    return Counter(
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    )


def ocpi_body(*locations: dict[str, object]) -> bytes:
    return json.dumps({"data": list(locations), "status_code": 1000}).encode()


def location(
    location_id: str,
    name: str,
    evses: list[dict[str, object]],
    *,
    address: str = "1 Main Street",
    **more: object,
) -> dict[str, object]:
    return {
        "country_code": "LU",
        "party_id": "ATK",
        "id": location_id,
        "name": name,
        "address": address,
        "city": "Luxembourg",
        "postal_code": "1000",
        "coordinates": {"latitude": "49.6", "longitude": "6.1"},
        "evses": evses,
        "last_updated": "2026-12-01T10:00:00Z",
        **more,
    }


def evse(
    uid: str, status: str, connector_ids: list[str], *, evse_id: str | None = None, watts: int = 22000
) -> dict[str, object]:
    return {
        "uid": uid,
        "evse_id": evse_id if evse_id is not None else f"LU*ATK*E{uid}",
        "status": status,
        "connectors": [
            {"id": connector_id, "standard": "IEC_62196_T2", "power_type": "AC_3_PHASE", "max_electric_power": watts}
            for connector_id in connector_ids
        ],
    }


def kml_body(*placemarks: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        + b"".join(placemarks)
        + b"</Document></kml>"
    )


def placemark(name: str, devices: list[dict[str, object]], address: str = "1 rue Principale") -> bytes:
    """A placemark; its devices' JSON is written with ASCII escapes, so that a lone surrogate stays an
    escape, as a feed would send it."""
    values = "".join(
        f'<Data name="chargingdevice"><value>{_xml_text(json.dumps(device))}</value></Data>' for device in devices
    )
    return (
        f"<Placemark><name>{_xml_text(name)}</name><address>{_xml_text(address)}</address>"
        f"<ExtendedData>{values}</ExtendedData><Point><coordinates>6.1,49.6</coordinates></Point></Placemark>"
    ).encode()


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def device(
    device_id: int, name: str, connectors: list[tuple[int, str, str]], power_kw: float = 22.0
) -> dict[str, object]:
    """(id, name, state) per connector."""
    return {
        "id": device_id,
        "name": name,
        "connectors": [
            {
                "id": connector_id,
                "name": connector_name,
                "maxchspeed": power_kw,
                "connector": position,
                "description": state,
            }
            for position, (connector_id, connector_name, state) in enumerate(connectors, start=1)
        ],
    }
