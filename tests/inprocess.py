"""The HTTP server of otel-chargy run inside the test process, on 127.0.0.1, with chosen limits:
faster than a subprocess where the process as a whole is not what is measured."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from otel_chargy.config import ListenAddress
from otel_chargy.generator import generate_network
from otel_chargy.holder import SnapshotHolder
from otel_chargy.publication import Outputs
from otel_chargy.redact import Redactor
from otel_chargy.server import ClientLimits, Pages, make_server
from otel_chargy.webconfig import WebConfig


@contextmanager
def serving(limits: ClientLimits | None = None, web_config: WebConfig | None = None) -> Iterator[int]:
    """Serves a small generated network (landing page, /healthz, /readyz; no metrics) and yields the port."""
    holder = SnapshotHolder(Outputs(observed=(), exposition=False), max_staleness_s=3600)
    holder.publish(generate_network(20), time.time())
    pages = Pages(holder, None, "/metrics", "generated network", Redactor([]))
    server = make_server(ListenAddress("127.0.0.1", 0), pages, web_config or WebConfig(), limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def make_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1: server.crt and server.key in `directory`."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(directory / "server.key"),
         "-out", str(directory / "server.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    return directory
