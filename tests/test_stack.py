"""The docker compose stack, checked with real tools where no Docker engine runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboard_queries import log_queries, panel_queries
from tests.prometheus import PrometheusServer
from tests.service import ServiceProcess, wait_until

ROOT = Path(__file__).parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
PROVISIONED_DATASOURCE_UIDS = {"prometheus", "jaeger", "loki"}
PUBLISHED_PORTS = {"9000", "9090", "3000", "16686"}

# What otel/opentelemetry-collector-contrib 0.114.0 ships, of the kinds this stack could use
# (from the release's component list); a component outside it would stop the collector at start.
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.114.0"
COLLECTOR_COMPONENTS = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "filelog"},
    "processors": {"memory_limiter", "batch", "resource", "attributes", "filter", "transform", "resourcedetection"},
    "exporters": {"otlp", "otlphttp", "prometheus", "prometheusremotewrite", "debug", "file"},
    "extensions": {"health_check", "pprof", "zpages", "basicauth", "bearertokenauth"},
    "connectors": {"forward", "spanmetrics"},
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=ROOT / "prometheus")


def test_prometheus_config_and_rules_pass_promtool() -> None:
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


ALERT_TESTS = ("alerts_test.yml", "alerts_day_test.yml")
"""Every minute, and the alerts that wait a day every 5 minutes."""


def test_alert_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", *ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = [test for name in ALERT_TESTS for test in yaml.safe_load((ROOT / "prometheus" / name).read_text())["tests"]]
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    for alert in {rule["alert"] for rule in rules}:
        cases = [case for test in tests for case in test["alert_rule_test"] if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in cases), f"{alert} is never tested firing"
        assert any(not case["exp_alerts"] for case in cases), f"{alert} is never tested not firing"


def test_every_alert_has_a_runbook_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert f"| `{rule['alert']}` |" in readme


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def test_compose_files_follow_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE), str(ROOT / "docker-compose.demo.yml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_exist_images_are_pinned_and_ports_are_few() -> None:
    services = compose()["services"]
    assert set(services) == {"otel-chargy", "otel-collector", "prometheus", "grafana", "jaeger", "loki"}
    published: list[str] = []
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        if "build" not in service:
            image = service["image"]
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: {image} is not pinned to a version"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in compose()["volumes"], f"{name}: {source} is not a declared named volume"
        published += [port.split(":")[0] for port in service.get("ports", [])]
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] in ("service_healthy", "service_started")
    assert sorted(published) == sorted(PUBLISHED_PORTS)
    assert len(published) == len(set(published))
    # Healthchecks: in the file, or in the image otel-chargy is built from; the collector's
    # distroless image has nothing to probe with (see the comment in docker-compose.yml).
    for name in ("prometheus", "grafana", "jaeger"):
        assert "healthcheck" in services[name], name
    assert services["otel-collector"]["image"] == COLLECTOR_IMAGE


def test_collector_pipelines_use_defined_components_the_release_ships() -> None:
    config = yaml.safe_load((ROOT / "collector-config" / "otel-collector.yaml").read_text())
    for kind in ("receivers", "processors", "exporters", "extensions"):
        for component in config.get(kind, {}):
            assert component.split("/")[0] in COLLECTOR_COMPONENTS[kind], f"{kind}: {component}"
    for pipeline, parts in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in parts.get(kind, []):
                assert component in config[kind], f"pipeline {pipeline} names undefined {component}"
        assert parts["processors"][0] == "memory_limiter", pipeline
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"]
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def test_the_events_go_from_otel_chargy_through_the_collector_to_loki_and_grafana_reads_them() -> None:
    services = compose()["services"]
    assert services["otel-chargy"]["environment"]["OTEL_LOGS_EXPORTER"] == "otlp"
    config = yaml.safe_load((ROOT / "collector-config" / "otel-collector.yaml").read_text())
    (exporter,) = config["service"]["pipelines"]["logs"]["exporters"]
    assert config["service"]["pipelines"]["logs"]["receivers"] == ["otlp"]
    # Loki takes OTLP/HTTP at /otlp on its HTTP port, by the service name compose gives it.
    assert exporter.split("/")[0] == "otlphttp" and config["exporters"][exporter]["endpoint"] == "http://loki:3100/otlp"
    assert "loki" in services and "loki" in services["otel-collector"]["depends_on"]
    datasources = yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yml").read_text())
    (loki,) = [source for source in datasources["datasources"] if source["type"] == "loki"]
    assert loki["url"] == "http://loki:3100" and loki["uid"] == "loki"
    network = json.loads((ROOT / "grafana/dashboards/chargy-network.json").read_text())
    (query,) = log_queries(network)
    # The labels Loki makes of OTLP: service.name -> service_name, the scope's name -> scope_name.
    assert query == '{service_name="otel-chargy"} | scope_name = "otel_chargy.events"'
    assert any(panel["type"] == "logs" and "Recent changes" in panel["title"] for panel in network["panels"])


def test_dockerfile_runs_as_non_root_and_probes_a_path_that_answers() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) == 2, "multi-stage"
    final_stage = dockerfile.split("\nFROM ")[-1]
    users = re.findall(r"^USER (\S+)", final_stage, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "EXPOSE 9000" in final_stage and 'ENTRYPOINT ["otel-chargy"]' in final_stage
    assert not re.search(r"apt-get|gcc|build-essential", final_stage)
    (path,) = re.findall(r"HEALTHCHECK .*?http://127\.0\.0\.1:9000(/\w+)", final_stage, re.S)
    with ServiceProcess(["--demo"]) as service:
        assert service.get(path).status_code == 200


def datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict) and "uid" in node["datasource"]:
            yield node["datasource"]["uid"]
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_dashboards_use_only_provisioned_datasources(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    uids = set(datasource_uids(dashboard))
    # "-- Grafana --" is Grafana's built-in source of annotations, present in every instance.
    assert uids and uids <= PROVISIONED_DATASOURCE_UIDS | {"${datasource}", "-- Grafana --"}
    datasources = yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yml").read_text())
    assert {source["uid"] for source in datasources["datasources"]} == PROVISIONED_DATASOURCE_UIDS


def test_station_view_keeps_every_query_of_the_seed() -> None:
    seed = json.loads((Path(__file__).parent / "data" / "station-view-dashboard.json").read_text())
    provisioned = json.loads((ROOT / "grafana/dashboards/station-view.json").read_text())
    assert list(panel_queries(provisioned)) == list(panel_queries(seed))
    assert provisioned["uid"] == seed["uid"]  # the network dashboard links to it


def test_every_dashboard_panel_returns_data_from_the_demo(prometheus: PrometheusServer) -> None:
    queries = [(path.stem, query) for path in DASHBOARDS for query in panel_queries(json.loads(path.read_text()))]
    assert len(queries) > 10
    with (
        # The snapshot stays in service however slowly a loaded machine refreshes.
        ServiceProcess(["--demo", "--refresh-interval", "1", "--max-staleness", "600"]) as service,
        prometheus.scraping([f"127.0.0.1:{service.port}"]),
    ):
        wait_until(lambda: prometheus.query("count(chargy_connector_state)"), "Prometheus to scrape the demo")
        station = prometheus.label_values("station")[0]
        for dashboard, query in queries:
            expression = query.replace("${chargy_station}", station).replace("$__rate_interval", "1m")
            wait_until(lambda e=expression: prometheus.query(e), f"data for {dashboard}: {expression}")  # type: ignore[misc]
