"""The network over time as users look at it: the recording rules (promtool) and the "Chargy
reliability" dashboard. Every panel's query runs against a real Prometheus in tests/test_stack.py."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.dashboard_queries import panel_queries

ROOT = Path(__file__).parent.parent
PROMETHEUS = ROOT / "prometheus"
DASHBOARD = ROOT / "grafana" / "dashboards" / "chargy-reliability.json"
STATION_VIEW = ROOT / "grafana" / "dashboards" / "station-view.json"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def recording_rules() -> dict[str, str]:
    groups = yaml.safe_load((PROMETHEUS / "recording.yml").read_text())["groups"]
    return {rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_recording_rules_pass_promtool_and_their_unit_tests() -> None:
    for args in (("check", "rules", "recording.yml"), ("test", "rules", "recording_test.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr
    tested = yaml.safe_load((PROMETHEUS / "recording_test.yml").read_text())["tests"]
    expressions = " ".join(case["expr"] for test in tested for case in test.get("promql_expr_test", []))
    rules = recording_rules()
    # Every rule is tested, directly or through the rules that read it (the offset at the switches, below).
    for record in rules:
        if record not in expressions:
            readers = [other for other, expr in rules.items() if record in expr and other in expressions]
            assert readers or record == "chargy:luxembourg_utc_offset:seconds", f"{record} is never tested"


def test_summer_time_begins_and_ends_on_the_last_sundays_of_march_and_october(tmp_path: Path) -> None:
    """The offset rule's own expression at the switches of several years (no rule is evaluated
    from 1970 on: promtool then only runs the expression at each time)."""
    offset = recording_rules()["chargy:luxembourg_utc_offset:seconds"]
    switches = [  # (last Sunday of March, last Sunday of October), at 01:00 UTC
        (datetime(2024, 3, 31, 1, tzinfo=UTC), datetime(2024, 10, 27, 1, tzinfo=UTC)),
        (datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)),
        (datetime(2027, 3, 28, 1, tzinfo=UTC), datetime(2027, 10, 31, 1, tzinfo=UTC)),
    ]
    hour = timedelta(hours=1)
    moments = []
    for spring, autumn in switches:
        moments += [(spring - hour, 3600), (spring, 7200), (spring - timedelta(days=1), 3600)]
        moments += [(spring + timedelta(days=7), 7200), (autumn - hour, 7200), (autumn, 3600)]
        moments += [(autumn - timedelta(days=7), 7200), (autumn + timedelta(days=1), 3600)]
        moments += [(datetime(spring.year, 1, 15, tzinfo=UTC), 3600), (datetime(spring.year, 7, 15, tzinfo=UTC), 7200)]
        moments += [(datetime(spring.year, 12, 31, 23, tzinfo=UTC), 3600)]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    cases = [
        {
            "expr": offset,
            "eval_time": f"{int((moment - epoch) / hour)}h",
            "exp_samples": [{"labels": "{}", "value": value}],
        }
        for moment, value in moments
    ]
    (tmp_path / "offset_test.yml").write_text(
        yaml.safe_dump({"evaluation_interval": "1h", "tests": [{"promql_expr_test": cases}]})
    )
    result = promtool("test", "rules", "offset_test.yml", cwd=tmp_path)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def metric_names(query: str) -> set[str]:
    """Recorded (level:metric:operations) and otel-chargy names in a query, leaving out label names and durations."""
    pattern = r"(?<![\w:])(?:[a-z][a-z_]*:[a-z0-9_:]+|chargy_[a-z_]+)\b(?!\s*(?:=|!=|=~|!~))"
    return set(re.findall(pattern, query))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_dashboard_is_provisioned_like_the_others_and_links_each_station_to_its_station_view() -> None:
    board = dashboard()
    assert board["uid"] == "chargy-reliability" and board["title"] == "Chargy reliability"
    (variable,) = board["templating"]["list"]
    assert variable["type"] == "datasource" and variable["name"] == "datasource" and variable["query"] == "prometheus"
    station_view = json.loads(STATION_VIEW.read_text())["uid"]
    panels = {panel["title"]: panel for panel in board["panels"] if panel["type"] != "row"}
    for panel in panels.values():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"])
    for title in ("Every station", "Lowest 30-day uptime"):
        (link,) = panels[title]["fieldConfig"]["defaults"]["links"]
        assert link["url"].startswith(f"/d/{station_view}/station-view?var-chargy_station=$"), title
    assert panels["Busy hours: utilisation by weekday and hour (Luxembourg time, last 4 weeks)"]["transformations"]


def test_dashboard_reads_only_recorded_series_and_usage_counters() -> None:
    from otel_chargy.catalog import METRICS

    recorded = set(recording_rules())
    exported = {spec.prometheus_name for spec in METRICS}
    queries = list(panel_queries(dashboard()))
    assert len(queries) >= 10
    for query in queries:
        names = metric_names(query)
        assert names, query
        for name in names:
            assert name in recorded or name in exported, f"{name} in {query}"


def test_the_usage_page_promql_is_valid_and_reads_what_exists(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "usage-counters.md").read_text()
    queries = re.findall(r"```promql\n(.*?)```", page, re.S)
    assert len(queries) == 3
    rules = {
        "groups": [{"name": "docs", "rules": [{"record": f"docs:q{i}", "expr": q} for i, q in enumerate(queries)]}]
    }
    (tmp_path / "docs.yml").write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", "docs.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    names = metric_names(" ".join(queries))
    assert names <= set(recording_rules()) | {"chargy_station_connector_seconds_total"}
