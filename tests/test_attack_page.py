"""The HTTP surface attacked from outside (issue #17, row 12): every request gets an answer, whatever its
query; health stays open behind basic auth, as the README says. Played against the running service, its
requests written byte for byte on a socket so that no client library tidies them first."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import bcrypt
import pytest

from tests.service import ServiceProcess, raw_get

PASSWORD = "page-attack"
AUTHORIZATION = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = tmp_path_factory.mktemp("web") / "web.yml"
    web_config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    with ServiceProcess(["--demo", "--web.config.file", str(web_config)]) as running:
        running.client.headers["Authorization"] = AUTHORIZATION
        running.wait_for_refreshes("success", 1)
        yield running


@pytest.mark.parametrize(
    "target",
    [
        "/?page=%C2%B2",  # "²": a digit to str.isdigit, not to int()
        "/?page=%D9%A3",  # "٣", an Arabic-Indic three
        "/?page=%ED%A0%80",  # a lone surrogate, UTF-8-encoded
        "/?page=99999999999999999999",
        "/?q=%FF%FE&sort=%00",
        "/?" + "&".join(f"f{number}=x" for number in range(50)),
        "/api/v1/stations/%ED%A0%80",
        "/api/v1/status?x",
    ],
)
def test_a_hostile_query_of_a_page_is_answered(service: ServiceProcess, target: str) -> None:
    status, body = raw_get(service.port, target, AUTHORIZATION)
    assert status in (200, 404), (status, body[:200])
    assert body


@pytest.mark.parametrize("target", ["/healthz?x", "/healthz?", "/healthz?probe=1&x=%ZZ"])
def test_health_with_a_query_is_health_and_stays_open(service: ServiceProcess, target: str) -> None:
    assert raw_get(service.port, target) == (200, b"ok\n")


@pytest.mark.parametrize("target", ["/readyz?x", "/readyz?"])
def test_readiness_with_a_query_is_readiness_behind_auth(service: ServiceProcess, target: str) -> None:
    assert raw_get(service.port, target)[0] == 401
    status, body = raw_get(service.port, target, AUTHORIZATION)
    assert status in (200, 503) and body.startswith((b"ready", b"not ready")), (status, body)


def test_metrics_with_a_query_are_the_metrics(service: ServiceProcess) -> None:
    status, body = raw_get(service.port, "/metrics?x", AUTHORIZATION)
    assert status == 200 and b"# TYPE chargy_feed_up gauge" in body


def test_a_path_that_only_looks_like_health_is_not_open(service: ServiceProcess) -> None:
    for target in ("/healthz/", "/healthz%3Fx", "/healthzx"):
        assert raw_get(service.port, target)[0] == 401, target
