"""otel-chargy run as a real subprocess, and ways to read what it serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

T = TypeVar("T")

# How long a test waits for a condition before it gives up: a bound on a hang, not a timing assertion.
WAIT_LIMIT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], T | None], what: str, limit_s: float = WAIT_LIMIT_S) -> T:
    """Polls `condition` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + limit_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (httpx.HTTPError, AssertionError) as error:
            last_error = error
        else:
            if result:
                return result
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


def run_together(count: int, work: Callable[[int], None]) -> None:
    """`count` threads that start `work` at the same moment, all joined."""
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        work(index)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def before_a_hang(work: Callable[[], T], what: str, limit_s: float = WAIT_LIMIT_S) -> T:
    """Runs `work` and returns what it returns; fails only if it has not returned after `limit_s`, a bound
    that only a hang can miss (how long it took is a benchmark's figure, not the test's)."""
    outcome: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, name=what, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"{what} hung"
    if errors:
        raise errors[0]
    return outcome[0]


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 10) -> int:
    """SIGTERM, then SIGKILL if the process has not ended after `grace_s`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def command() -> list[str]:
    return [sys.executable, "-m", "otel_chargy.main"]


class ServiceProcess:
    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log_file = tempfile.NamedTemporaryFile(prefix="otel-chargy-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log_file.name)
        full_env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "CHARGY_"))}
        full_env.pop("KML_URL", None)
        full_env.pop("FEED_URL", None)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [*command(), "--web.listen-address", f"127.0.0.1:{self.port}", *args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        self.client = httpx.Client(base_url=self.base_url, timeout=30)

    def __enter__(self) -> ServiceProcess:
        wait_until(lambda: self.get("/healthz").status_code == 200, "the service to answer /healthz")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> int:
        self.client.close()
        returncode = stop_process(self.process)
        self._log_file.close()
        return returncode

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        if self.process.poll() is not None:
            raise RuntimeError(f"otel-chargy exited with {self.process.returncode}:\n{self.logs()}")
        return self.client.get(path, headers=headers)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self, path: str = "/metrics", only: str | None = None) -> dict[str, Metric]:
        """The families served at `path`; with `only`, just that family's lines are parsed: a network's
        connector series are megabytes of text that a question about one family need not read."""
        response = self.get(path)
        assert response.status_code == 200, response.text
        text = response.text
        if only is not None:
            prefixes = (f"# HELP {only} ", f"# TYPE {only} ", f"{only}{{", f"{only} ")
            text = "".join(line for line in text.splitlines(keepends=True) if line.startswith(prefixes))
        return {family.name: family for family in text_string_to_metric_families(text)}

    def samples(self, family: str) -> list[Sample]:
        """The samples of a family; none when the family has no series at all."""
        metrics = self.metrics(only=family)
        return metrics[family].samples if family in metrics else []

    def sample(self, family: str, **labels: str) -> float | None:
        """The value of one series, or None when it is absent."""
        metrics = self.metrics(only=family)
        name = family.removesuffix("_total")
        if name not in metrics:
            return None
        for sample in metrics[name].samples:
            if sample.name == family and sample.labels == labels:
                return float(sample.value)
        return None

    def wait_for_refreshes(self, outcome: str, count: int) -> None:
        wait_until(
            lambda: (self.sample("chargy_feed_refreshes_total", outcome=outcome) or 0) >= count,
            f"{count} refreshes with outcome {outcome}",
        )


def raw_get(port: int, target: str, authorization: str | None = None) -> tuple[int, bytes]:
    """The status and body of one GET of `target` exactly as written, on a connection of its own."""
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head.encode("latin-1") + b"\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer, f"no answer to GET {target}"
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]
