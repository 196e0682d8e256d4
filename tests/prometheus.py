"""A real Prometheus (Debian's package) run in the foreground on 127.0.0.1, one per test session.

It evaluates the project's recording rules (prometheus/recording.yml), which the dashboards read.
Tests point it at their own otel-chargy with `scraping(...)`; the configuration is reloaded in
place, and when a target is dropped Prometheus marks its series stale, so the next test's instant
queries see only its own target.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.service import free_port, stop_process, wait_until

RECORDING_RULES = Path(__file__).parent.parent / "prometheus" / "recording.yml"


def recording_rules_for_tests() -> dict[str, Any]:
    """The project's recording rules (what the dashboards read), every group evaluated at the test's interval."""
    rules: dict[str, Any] = yaml.safe_load(RECORDING_RULES.read_text())
    for group in rules["groups"]:
        group.pop("interval", None)
    return rules


class PrometheusServer:
    def __init__(self, scrape_interval: str = "1s") -> None:
        binary = shutil.which("prometheus")
        assert binary is not None, "the prometheus binary is missing: apt-get install -y prometheus"
        self._scrape_interval = scrape_interval
        self._directory = tempfile.TemporaryDirectory(prefix="prometheus-")
        directory = Path(self._directory.name)
        self._config = directory / "prometheus.yml"
        self._rules = directory / "recording.yml"
        self._rules.write_text(yaml.safe_dump(recording_rules_for_tests()))
        self._write_config([])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={self._config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> PrometheusServer:
        wait_until(lambda: httpx.get(f"{self.url}/-/ready").status_code == 200, "Prometheus to be ready")
        return self

    def __exit__(self, *exc_info: object) -> None:
        stop_process(self.process, grace_s=20)
        self._log.close()
        self._directory.cleanup()

    def _write_config(self, targets: list[str]) -> None:
        interval = self._scrape_interval
        self._config.write_text(
            f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
            f"rule_files: [{str(self._rules)!r}]\n"
            "scrape_configs:\n  - job_name: chargy\n    static_configs:\n"
            f"      - targets: [{', '.join(repr(target) for target in targets)}]\n"
        )

    def _reload(self, targets: list[str]) -> None:
        self._write_config(targets)
        response = httpx.post(f"{self.url}/-/reload", timeout=30)
        assert response.status_code == 200, response.text

    @contextmanager
    def scraping(self, targets: list[str]) -> Iterator[PrometheusServer]:
        """Scrapes `targets` until the block ends; then drops them and waits until their series are gone."""
        self._reload(targets)
        wait_until(lambda: len(self.query("up == 1")) == len(targets), "Prometheus to scrape every target")
        try:
            yield self
        finally:
            self._reload([])
            wait_until(lambda: not self.query("count(up)"), "the dropped targets' series to go stale")

    def query(self, expression: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=30)
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def label_values(self, label: str) -> list[str]:
        """Values of `label` among the scraped series that are live now: stale series of earlier targets are
        left out, and so are recorded series (a rule over a day's window still sees a target dropped just now)."""
        live = f'count by ({label}) ({{{label}!="", __name__!~".*:.*"}})'
        return sorted(item["metric"][label] for item in self.query(live))
