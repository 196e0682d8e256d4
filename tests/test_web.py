"""--web.config.file: TLS and basic auth in the exporter-toolkit format."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from otel_chargy.generator import generate_network, render_kml
from tests.feedserver import FeedResponse, FeedServer
from tests.inprocess import make_certificate
from tests.service import WAIT_LIMIT_S, ServiceProcess, command, wait_until

PASSWORD = "s3cret-scrape"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def write_web_config(directory: Path, text: str) -> Path:
    path = directory / "web.yml"
    path.write_text(text)
    return path


@pytest.fixture
def secured(certificate: Path, feed: FeedServer, feed_url: str) -> Iterator[ServiceProcess]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    web_config = write_web_config(
        certificate,
        # Relative paths: relative to the web config file.
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
    )
    feed.serve(FeedResponse(render_kml(generate_network(10))))
    service = ServiceProcess(["--kml-url", feed_url, "--web.config.file", str(web_config)])
    service.base_url = service.base_url.replace("http://", "https://")
    service.client.close()
    trust = ssl.create_default_context(cafile=str(certificate / "server.crt"))
    service.client = httpx.Client(base_url=service.base_url, verify=trust, timeout=30)
    with service:
        yield service


def test_tls_and_basic_auth(secured: ServiceProcess) -> None:
    for path in ("/metrics", "/", "/readyz"):
        refused = secured.get(path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert secured.client.get(path, auth=("prometheus", "wrong")).status_code == 401
        assert secured.client.get(path, auth=("nobody", PASSWORD)).status_code == 401
        assert secured.client.get(path, auth=("prometheus", "x" * 73)).status_code == 401  # over bcrypt's 72 bytes
    wait_until(
        lambda: "chargy_feed_up 1.0" in secured.client.get("/metrics", auth=("prometheus", PASSWORD)).text,
        "an authenticated scrape after a refresh",
    )
    allowed = secured.client.get("/", auth=("prometheus", PASSWORD))
    assert allowed.status_code == 200 and allowed.headers["x-content-type-options"] == "nosniff"
    assert secured.get("/healthz").status_code == 200  # stays open for orchestrators


def test_plain_http_and_a_stalled_handshake_do_not_block_tls_clients(secured: ServiceProcess) -> None:
    plain = httpx.get(f"http://127.0.0.1:{secured.port}/healthz", timeout=WAIT_LIMIT_S)
    assert plain.status_code == 400 and plain.text == "Client sent an HTTP request to an HTTPS server.\n"
    with socket.create_connection(("127.0.0.1", secured.port)):
        # A client that opens a connection and never starts the handshake.
        assert secured.get("/healthz").status_code == 200


def test_handshake_with_an_untrusting_client_fails(secured: ServiceProcess) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{secured.base_url}/healthz", verify=ssl.create_default_context())


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "tls_server_config"),
        ("tls_server_config:\n  cert_file: server.crt\n", "key_file"),
        ("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "cipher_suites"),
        ("basic_auth_users:\n  admin: plaintext\n", "bcrypt"),
        ("no_such_section: {}\n", "no_such_section"),
        ("- a list\n", "mapping"),
    ],
)
def test_bad_web_config_exits_2_with_one_line(certificate: Path, text: str, mentions: str) -> None:
    path = write_web_config(certificate, text)
    result = subprocess.run(
        [*command(), "--demo", "--web.config.file", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--web.config.file" in lines[0] and mentions in lines[0]
