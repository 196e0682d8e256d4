"""The HTTP server's limits on each client, tried from outside against the server run in-process
(with limits small enough to reach quickly). tests/test_clients.py tries the whole process."""

from __future__ import annotations

import base64
import contextlib
import http.client
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from otel_chargy.server import ClientLimits
from otel_chargy.webconfig import WebConfig
from tests.inprocess import make_certificate, serving
from tests.service import WAIT_LIMIT_S, run_together, wait_until

PASSWORD = "s3cret-scrape"


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serving() as serving_port:
        yield serving_port


def answer_of(connection: socket.socket) -> bytes:
    """All the server sends until it closes the connection (a reset after an answer keeps the answer)."""
    connection.settimeout(WAIT_LIMIT_S)  # a bound on a hang
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(request)
        return answer_of(connection)


def test_request_head_is_bounded_in_all_not_only_per_line(port: int) -> None:
    # Each line well under Python's 64 KiB and fewer than its 100 lines: only a bound on the whole head stops it.
    lines = b"".join(b"X-H%d: " % index + b"a" * 1_000 + b"\r\n" for index in range(40))
    refused = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert refused.startswith(b"HTTP/1.1 431 ")
    assert b"Connection: close" in refused
    half = b"".join(b"X-H%d: " % index + b"a" * 1_000 + b"\r\n" for index in range(20))
    assert raw_request(port, b"GET /healthz HTTP/1.0\r\n" + half + b"\r\n").startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "request_line", [b"TRACE / HTTP/1.1", b"CONNECT 127.0.0.1:443 HTTP/1.1", b"POST / HTTP/1.1", b"BREW / HTTP/1.1"]
)
def test_methods_other_than_get_and_head_answer_405(port: int, request_line: bytes) -> None:
    answer = raw_request(port, request_line + b"\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: GET, HEAD\r\n" in answer


def drip_until_dropped(
    connections: list[socket.socket], meanwhile: Callable[[], None], payload: bytes = b"x"
) -> list[bytes]:
    """Sends each connection the next byte of `payload` (repeated) every 0.1 s until the server
    answers or closes it; calls `meanwhile` once, after the first byte. Returns what each got."""
    answers: dict[socket.socket, bytes] = {}
    give_up = time.monotonic() + WAIT_LIMIT_S  # a bound on a hang
    with selectors.DefaultSelector() as selector:
        for connection in connections:
            selector.register(connection, selectors.EVENT_READ)
        sent = 0
        while len(answers) < len(connections) and time.monotonic() < give_up:
            for connection in connections:
                if connection not in answers:
                    with contextlib.suppress(OSError):  # closed by the server: its answer is read below
                        connection.send(payload[sent % len(payload) : sent % len(payload) + 1])
            if (sent := sent + 1) == 1:
                meanwhile()
            for key, _ in selector.select(timeout=0.1):
                answered = key.fileobj
                assert isinstance(answered, socket.socket)
                answers[answered] = answer_of(answered)
                selector.unregister(answered)
    return [answers.get(connection, b"still open") for connection in connections]


def test_clients_dripping_their_request_head_are_dropped_at_its_deadline() -> None:
    with serving(ClientLimits(head_timeout_s=2)) as port:
        dripping = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        served: list[int] = []
        try:
            for connection in dripping:
                connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: ")
            answers = drip_until_dropped(
                dripping, lambda: served.append(httpx.get(f"http://127.0.0.1:{port}/").status_code)
            )
        finally:
            for connection in dripping:
                connection.close()
    assert served == [200]
    assert {answer[:13] for answer in answers} == {b"HTTP/1.1 408 "}


def test_silence_before_a_request_is_idle_time_not_part_of_its_deadline() -> None:
    with serving(ClientLimits(head_timeout_s=0.3, idle_timeout_s=1)) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_LIMIT_S)
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b"ok\n"
        time.sleep(0.6)  # longer than the head's deadline, shorter than the idle timeout: on purpose
        connection.request("GET", "/healthz")  # the same keep-alive connection
        assert connection.getresponse().read() == b"ok\n"
        connection.close()
        with socket.create_connection(("127.0.0.1", port)) as silent:
            assert answer_of(silent) == b""  # closed, without an answer, after the idle timeout


def test_connections_beyond_the_cap_are_answered_503_and_the_server_recovers() -> None:
    with serving(ClientLimits(max_connections=4)) as port:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        try:
            # Accepted in the order they were made: these come after the four held ones.
            for _ in range(20):
                with socket.create_connection(("127.0.0.1", port)) as extra:
                    assert answer_of(extra).startswith(b"HTTP/1.1 503 ")
        finally:
            for connection in held:
                connection.close()
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, "a free connection")


@pytest.fixture(scope="module")
def auth_config() -> WebConfig:
    return WebConfig(basic_auth_users={"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10))})


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_password_checks_run_at_most_two_at_once_and_a_known_scraper_passes_meanwhile(
    auth_config: WebConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spy around the real bcrypt: how many checks run at once is not visible from outside.
    lock = threading.Lock()
    running = most = 0
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return real_checkpw(password, hashed)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    statuses: list[int] = []
    with serving(web_config=auth_config) as port:
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(url, headers=basic("prometheus", PASSWORD)).status_code == 200  # now remembered
        checks_so_far = most

        def guess(index: int) -> None:
            statuses.append(httpx.get(url, headers=basic("prometheus", f"guess-{index}"), timeout=60).status_code)

        def scrape_or_guess(index: int) -> None:
            if index == 0:  # among the guesses, not behind them: a remembered password needs no check
                scraped.append(httpx.get(url, headers=basic("prometheus", PASSWORD), timeout=60).status_code)
            else:
                guess(index)

        scraped: list[int] = []
        run_together(13, scrape_or_guess)
    assert checks_so_far == 1
    assert scraped == [200]
    assert statuses == [401] * 12
    assert most in (1, 2)


def test_over_long_passwords_and_unknown_users_are_answered_401(auth_config: WebConfig) -> None:
    with serving(web_config=auth_config) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        assert client.get("/", headers=basic("prometheus", PASSWORD + "x" * 72)).status_code == 401
        assert client.get("/", headers=basic("nobody", PASSWORD)).status_code == 401
        assert client.get("/", headers=basic("prometheus", "wrong")).status_code == 401
        assert client.get("/", headers=basic("prometheus", PASSWORD)).status_code == 200
        assert client.get("/", headers=basic("prometheus", PASSWORD)).status_code == 200  # remembered


# Every path a client may ask for, answered or not: only /healthz is open (README, docs/security.md).
GUARDED_PATHS = (
    "/",
    "/?station=x",
    "/metrics",
    "/readyz",
    "/static/status.css",
    "/static/status.js",
    "/static/missing.css",
    "/api/v1/status",
    "/api/v1/stations",
    "/api/v1/stations/x",
    "/no/such/page",
    "/healthz/",
    "/healthzx",
)


def test_every_path_but_healthz_asks_for_credentials(auth_config: WebConfig) -> None:
    with serving(web_config=auth_config) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for path in GUARDED_PATHS:
            refused = client.get(path)
            assert (path, refused.status_code) == (path, 401)
            assert refused.headers["www-authenticate"].startswith("Basic")
            assert (path, client.get(path, headers=basic("prometheus", "wrong")).status_code) == (path, 401)
            assert client.get(path, headers=basic("prometheus", PASSWORD)).status_code in (200, 404)
        assert client.get("/static/status.css", headers=basic("prometheus", PASSWORD)).status_code == 200
        assert client.get("/healthz").status_code == 200


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def test_a_tls_handshake_dripped_a_byte_at_a_time_is_dropped_at_the_deadline(certificate: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate / "server.crt", certificate / "server.key")
    trust = ssl.create_default_context(cafile=str(certificate / "server.crt"))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    handshake = trust.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        handshake.do_handshake()
    client_hello = outgoing.read()
    assert len(client_hello) > 100  # tens of seconds at a byte every 0.1 s
    with (
        serving(ClientLimits(head_timeout_s=1), WebConfig(tls=context)) as port,
        socket.create_connection(("127.0.0.1", port)) as dripping,
    ):
        served: list[str] = []
        answers = drip_until_dropped(
            [dripping],
            lambda: served.append(httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trust).text),
            client_hello,
        )
    assert served == ["ok\n"]
    assert answers == [b""]  # closed before the handshake ended
