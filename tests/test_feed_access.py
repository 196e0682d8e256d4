"""Access as AFIR access points require it: a client certificate (Mobilithek's machine access) and a key
in a header (E-Control's), against a real TLS feed server on 127.0.0.1 that demands both; and the
secrets kept out of every output, looked for from outside the process."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry import trace

from otel_chargy.config import ConfigError, load_config
from otel_chargy.fetch import FeedAccess, HttpSource, Validators
from otel_chargy.generator_afir import generate_two_part_network, render_datex2_status_json, render_datex2_table_json
from otel_chargy.outcome import FeedError, Outcome
from tests.feedserver import FeedResponse, FeedServer
from tests.otlp_receiver import OtlpReceiver
from tests.service import ServiceProcess, wait_until

HEADER_SECRET = "ek-4f9c2d1e8b7a6f5e-SECRET"
NETWORK = generate_two_part_network(20, seed=21)


@dataclass(frozen=True)
class Credentials:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _issue(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, server: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name("otel-chargy test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    folder = tmp_path_factory.mktemp("tls")
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    files = Credentials(*(folder / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")))
    certificates = {
        files.ca: _issue("otel-chargy test CA", ca_key, ca_key, ca=True, server=False),
        files.server_cert: _issue("127.0.0.1", server_key, ca_key, ca=False, server=True),
        files.client_cert: _issue("otel-chargy client", client_key, ca_key, ca=False, server=False),
    }
    for path, certificate in certificates.items():
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, files.server_key)
    _write_key(client_key, files.client_key)
    return files


class TlsFeed:
    """HTTPS on 127.0.0.1 that answers only a client presenting a certificate of the test CA and the
    header key; a request without the key gets 401 with the key it expected echoed in the body, as a
    careless server might."""

    def __init__(self, credentials: Credentials) -> None:
        self.status_body = render_datex2_status_json(NETWORK)
        self.seen_headers: list[str | None] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                given = self.headers.get("X-Api-Key")
                feed.seen_headers.append(given)
                if given != HEADER_SECRET:
                    body = f"expected X-Api-Key {HEADER_SECRET}".encode()
                    status = 401
                else:
                    status = 200
                    body = render_datex2_table_json(NETWORK) if self.path == "/static" else feed.status_body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(credentials.ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(credentials.server_cert, credentials.server_key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> TlsFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def tls_feed(credentials: Credentials, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsFeed]:
    monkeypatch.setenv("SSL_CERT_FILE", str(credentials.ca))
    with TlsFeed(credentials) as served:
        yield served


def _fetch(url: str, access: FeedAccess | None) -> bytes | None:
    source = HttpSource(url, timeout_s=10, max_bytes=10_000_000, tracer=trace.NoOpTracer(), access=access)
    try:
        return source.fetch(Validators()).body
    finally:
        source.close()


def test_the_client_certificate_and_header_open_the_feed(tls_feed: TlsFeed, credentials: Credentials) -> None:
    access = FeedAccess({"X-Api-Key": HEADER_SECRET}, (str(credentials.client_cert), str(credentials.client_key)))
    assert _fetch(tls_feed.url("/static"), access) == render_datex2_table_json(NETWORK)
    assert tls_feed.seen_headers == [HEADER_SECRET]


def test_without_the_client_certificate_the_handshake_fails(tls_feed: TlsFeed) -> None:
    with pytest.raises(FeedError) as raised:
        _fetch(tls_feed.url("/static"), FeedAccess({"X-Api-Key": HEADER_SECRET}))
    assert raised.value.outcome is Outcome.NETWORK_ERROR and "127.0.0.1" in raised.value.reason


def test_without_the_header_the_feed_answers_401_and_the_key_it_echoes_is_not_repeated(
    tls_feed: TlsFeed, credentials: Credentials
) -> None:
    access = FeedAccess({}, (str(credentials.client_cert), str(credentials.client_key)))
    with pytest.raises(FeedError) as raised:
        _fetch(tls_feed.url("/static"), access)
    assert raised.value.outcome is Outcome.HTTP_ERROR and "401" in raised.value.reason
    assert HEADER_SECRET not in raised.value.reason


def _key_material(path: Path) -> list[str]:
    """The lines of a PEM key between its armour: what would betray it if any output held them."""
    return [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]


def test_the_header_value_and_the_client_key_appear_in_no_output(tls_feed: TlsFeed, credentials: Credentials) -> None:
    """The service run as a process against the TLS feed: once healthy, then with a status part that
    fails (a malformed document that holds the key) and a wrong header that makes the server echo it."""
    args = [
        "--feed.format",
        "datex2",
        "--feed.url",
        tls_feed.url("/static"),
        "--feed.status-url",
        tls_feed.url("/status"),
        "--feed.header",
        f"X-Api-Key: {HEADER_SECRET}",
        "--feed.client-cert",
        str(credentials.client_cert),
        "--feed.client-key",
        str(credentials.client_key),
        "--refresh-interval",
        "0.5",
        "--log.level",
        "debug",
    ]
    with OtlpReceiver() as receiver:
        env = {
            "SSL_CERT_FILE": str(credentials.ca),
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        with ServiceProcess(args, env=env) as service:
            service.wait_for_refreshes("success", 1)
            tls_feed.status_body = b'{"messageContainer": {"payload": [{"x": "' + HEADER_SECRET.encode() + b'" ]'
            service.wait_for_refreshes("invalid_json", 1)
            assert service.sample("chargy_feed_up") == 0
            paths = ("/", "/metrics", "/readyz", "/api/v1/status", "/api/v1/stations")
            outputs = [service.get(path).text for path in paths]
            wait_until(lambda: len(receiver.spans()) >= 6, "the spans of both refreshes")
        outputs += [service.logs(), receiver.all_bytes().decode(errors="replace")]
    assert service.process.returncode == 0
    assert "the status part failed" in outputs[-2]
    secrets = [HEADER_SECRET, *_key_material(credentials.client_key)]
    for output in outputs:
        for secret in secrets:
            assert secret not in output


def test_a_bad_header_or_key_is_a_configuration_error_that_shows_neither(
    credentials: Credentials, tmp_path: Path
) -> None:
    base = [
        "--feed.format",
        "datex2",
        "--feed.url",
        "https://nap.example/t",
        "--feed.status-url",
        "https://nap.example/s",
    ]
    with pytest.raises(ConfigError) as raised:
        load_config([*base, "--feed.header", f"X-Api-Key {HEADER_SECRET}"], {})
    assert HEADER_SECRET not in str(raised.value) and str(raised.value).startswith("--feed.header ")
    with pytest.raises(ConfigError) as raised:
        load_config(base, {"CHARGY_FEED_HEADER": f"Authorization: Token {HEADER_SECRET}\nX-Bad\x01: y"})
    assert HEADER_SECRET not in str(raised.value) and str(raised.value).startswith("CHARGY_FEED_HEADER ")
    wrong_key = tmp_path / "wrong.key"
    _write_key(ec.generate_private_key(ec.SECP256R1()), wrong_key)
    with pytest.raises(ConfigError) as raised:
        load_config(
            [*base, "--feed.client-cert", str(credentials.client_cert), "--feed.client-key", str(wrong_key)], {}
        )
    assert all(line not in str(raised.value) for line in _key_material(wrong_key))
    assert "not a PEM certificate and its unencrypted private key" in str(raised.value)
    with pytest.raises(ConfigError, match=r"--feed\.client-cert needs --feed\.client-key"):
        load_config([*base, "--feed.client-cert", str(credentials.client_cert)], {})


def test_headers_from_the_variable_are_read_one_a_line() -> None:
    base = ["--feed.format", "oicp", "--feed.url", "https://a.example/d", "--feed.status-url", "https://a.example/s"]
    config = load_config(base, {"CHARGY_FEED_HEADER": "X-Api-Key: k-7f3a\nAuthorization: Token t-9c1e\n"})
    assert config.feed_headers == (("X-Api-Key", "k-7f3a"), ("Authorization", "Token t-9c1e"))
    assert "k-7f3a" not in repr(config) and "t-9c1e" not in repr(config)


def test_the_header_key_is_not_carried_across_a_redirect_to_another_host() -> None:
    """httpx takes Authorization off a redirect to another origin, not a header of the feed's own."""
    with FeedServer() as feed, FeedServer() as elsewhere:
        body = render_datex2_table_json(NETWORK)
        elsewhere.serve(FeedResponse(body, content_type="application/json"))
        feed.serve(FeedResponse(b"", status=302, headers={"Location": elsewhere.url("/moved")}))
        assert _fetch(feed.url("/static"), FeedAccess({"X-Api-Key": HEADER_SECRET})) == body
        assert httpx.Headers(feed.requests[0][1]).get("x-api-key") == HEADER_SECRET
        assert "x-api-key" not in httpx.Headers(elsewhere.requests[0][1])
