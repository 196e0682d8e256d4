"""The PromQL of a Grafana dashboard's panels (the LogQL of its Loki panels is not PromQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def panel_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            if "expr" in target and source.get("type") != "loki":
                yield target["expr"]


def log_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    """The LogQL of the panels that read Loki."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            if "expr" in target and source.get("type") == "loki":
                yield target["expr"]
