"""A real Prometheus (Debian's package) run in the foreground on 127.0.0.1 by a test."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.service import free_port, stop_process, wait_until


class PrometheusServer:
    def __init__(self, targets: list[str], scrape_interval: str = "1s") -> None:
        binary = shutil.which("prometheus")
        assert binary is not None, "the prometheus binary is missing: apt-get install -y prometheus"
        self._directory = tempfile.TemporaryDirectory(prefix="prometheus-")
        directory = Path(self._directory.name)
        config = directory / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
            "scrape_configs:\n  - job_name: chargy\n    static_configs:\n"
            f"      - targets: [{', '.join(repr(target) for target in targets)}]\n"
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
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

    def query(self, expression: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=30)
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def label_values(self, label: str) -> list[str]:
        values: list[str] = httpx.get(f"{self.url}/api/v1/label/{label}/values", timeout=30).json()["data"]
        return values
