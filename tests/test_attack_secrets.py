"""The key echoed by a lying feed (issue #17, rows 7 and 8): from every field an OCPI feed can carry, from
its JSON keys, status code, archive member names, headers and links, while the service runs with OTLP
metrics and traces going to the test receiver. Every output is then searched for the key, whole or cut:
the log, /metrics, the page, the API, readiness, the spans and metrics on the wire, the `check` command."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from typing import Any

from otel_chargy.generator import generate_ocpi_network, render_ocpi
from otel_chargy.generator_afir import generate_two_part_network, render_oicp_data, render_oicp_status
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.otlp_receiver import OtlpReceiver
from tests.service import ServiceProcess, command, wait_until

KEY = TEST_API_KEY
FEED_PATH = f"/ocpi?token={KEY}"
JSON = "application/json"
# A text cut at a bound (an echoed key is shown up to 40 characters) must not leave the key's start either.
KEY_START = KEY[:12]


def location_echoing_the_key() -> dict[str, Any]:
    """A Location whose every text field holds the key."""
    location: dict[str, Any] = json.loads(json.dumps(generate_ocpi_network(1, seed=7).locations[0]))
    location |= {"id": KEY, "name": f"Station {KEY}", "address": KEY, "city": KEY, "postal_code": KEY}
    location["operator"] = {"name": KEY}
    for evse in location["evses"]:
        evse |= {"uid": f"{evse['uid']}-{KEY}", "evse_id": f"NL*ABC*{KEY}", "status": KEY}
        for connector in evse["connectors"]:
            connector["id"] = f"{connector['id']}-{KEY}"
    return location


def zip_whose_member_names_echo_the_key(body: bytes) -> bytes:
    """A zip whose one member is named after the key in its directory, and slightly otherwise in its local
    header: Python's zipfile names both in its error."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as writer:
        writer.writestr(f"{KEY}.json", body)
    data = bytearray(archive.getvalue())
    data[30] = ord("T")  # the local header's file name starts at byte 30
    return bytes(data)


VALID_PAGE = render_ocpi(generate_ocpi_network(3, seed=8).locations, form="envelope")
# What the feed serves in turn, and the outcome each one ends with.
ECHOES: list[tuple[str, FeedResponse]] = [
    (
        "success",
        FeedResponse(
            render_ocpi([location_echoing_the_key(), *generate_ocpi_network(3, seed=8).locations], form="envelope"),
            content_type=JSON,
        ),
    ),
    ("not_ocpi", FeedResponse(json.dumps({KEY: 1, "other": 2}).encode(), content_type=JSON)),
    ("ocpi_error", FeedResponse(json.dumps({"data": [], "status_code": KEY}).encode(), content_type=JSON)),
    ("invalid_json", FeedResponse(zip_whose_member_names_echo_the_key(VALID_PAGE), content_type="application/zip")),
    ("network_error", FeedResponse(VALID_PAGE, content_type=JSON, headers={"Content-Encoding": KEY})),
    (
        "broken_paging",
        FeedResponse(VALID_PAGE, content_type=JSON, headers={"Link": f'<http://{KEY}.example/ocpi>; rel="next"'}),
    ),
]


def assert_holds_no_key(where: str, text: str | bytes) -> None:
    """In any case: an echo upper-cased on its way out (a raw state is) still gives the key away."""
    shown = (text.decode(errors="replace") if isinstance(text, bytes) else text).lower()
    assert KEY.lower() not in shown, f"the key in {where}"
    assert KEY_START.lower() not in shown, f"the key's start in {where}"


def test_a_key_echoed_from_every_field_shows_in_no_output(feed: FeedServer) -> None:
    with OtlpReceiver() as receiver:
        env = {
            "OTEL_METRICS_EXPORTER": "prometheus,otlp",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        args = ["--feed.format", "ocpi", "--feed.url", feed.url(FEED_PATH), "--refresh-interval", "0.5"]
        # The snapshot of the first answer stays in service while the failures come: its labels are searched.
        args += ["--max-staleness", "3600", "--log.level", "debug"]
        with ServiceProcess(args, env=env) as service:
            for outcome, response in ECHOES:
                feed.serve_path(FEED_PATH, response)
                service.wait_for_refreshes(outcome, 1)
                if outcome == "success":
                    wait_until(lambda: "REDACTED" in receiver.all_bytes().decode(errors="replace"), "pushed labels")
            outcomes = {outcome for outcome, _ in ECHOES if outcome != "success"}
            wait_until(
                lambda: (
                    outcomes
                    <= {
                        attribute.value.string_value
                        for _, span in receiver.spans()
                        for attribute in span.attributes
                        if attribute.key == "error.type"
                    }
                ),
                "a span of every failure at the receiver",
            )
            outputs = {path: service.get(path).text for path in ("/metrics", "/", "/readyz", "/api/v1/status")}
            outputs["/?q=REDACTED"] = service.get("/?q=REDACTED").text
            outputs["/api/v1/stations"] = service.get("/api/v1/stations").text
        logs = service.logs()
        wire = receiver.all_bytes()
    # The echoes reached every output, redacted: the search below is not vacuous.
    assert "REDACTED" in outputs["/metrics"] and "REDACTED" in outputs["/api/v1/stations"]
    assert b"REDACTED" in wire and "REDACTED" in logs
    texts: dict[str, str | bytes] = {**outputs, "the log": logs, "the OTLP wire": wire}
    for where, text in texts.items():
        assert_holds_no_key(where, text)
    assert "Traceback" not in logs


def test_check_shows_no_echoed_key(feed: FeedServer) -> None:
    for outcome, response in ECHOES[1:]:
        feed.serve_path(FEED_PATH, response)
        result = subprocess.run(
            [*command(), "--feed.format", "ocpi", "check", feed.url(FEED_PATH)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1 and outcome in result.stdout, result.stdout + result.stderr
        assert_holds_no_key(f"check of {outcome}", result.stdout + result.stderr)


def test_a_key_echoed_by_both_parts_of_a_two_part_feed_shows_in_no_output(feed: FeedServer) -> None:
    """OICP (as DATEX II) is read by a feed of its own, not the one-document parse: its snapshot is redacted
    all the same. Station names and statuses echo the key; the statuses come out upper-cased."""
    network = generate_two_part_network(5, seed=3)
    data = json.loads(render_oicp_data(network))
    for operator in data["EVSEData"]:
        for record in operator["EVSEDataRecord"]:
            record["ChargingStationNames"] = [{"lang": "de", "value": f"Station {KEY}"}]
    status = json.loads(render_oicp_status(network))
    for operator in status["EVSEStatuses"]:
        for record in operator["EVSEStatusRecord"]:
            record["EVSEStatus"] = KEY
    feed.serve_path("/static", FeedResponse(json.dumps(data).encode(), content_type=JSON))
    feed.serve_path(f"/status?token={KEY}", FeedResponse(json.dumps(status).encode(), content_type=JSON))
    with OtlpReceiver() as receiver:
        env = {"OTEL_METRICS_EXPORTER": "prometheus,otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint}
        args = ["--feed.format", "oicp", "--feed.url", feed.url("/static"), "--refresh-interval", "0.5"]
        args += ["--feed.status-url", feed.url(f"/status?token={KEY}"), "--max-staleness", "3600"]
        with ServiceProcess(args, env=env) as service:
            service.wait_for_refreshes("success", 1)
            wait_until(lambda: b"REDACTED" in receiver.all_bytes(), "pushed labels")
            outputs = {path: service.get(path).text for path in ("/metrics", "/", "/api/v1/stations")}
        wire = receiver.all_bytes()
    assert "REDACTED" in outputs["/metrics"]
    searched: dict[str, str | bytes] = {**outputs, "the log": service.logs(), "the OTLP wire": wire}
    for where, text in searched.items():
        assert_holds_no_key(where, text)
