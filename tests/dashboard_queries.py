"""The PromQL of a Grafana dashboard's panels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def panel_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if "expr" in target:
                yield target["expr"]
