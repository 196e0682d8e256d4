"""The README is the user's manual and docs/ the reference: every relative link leads somewhere, and the
manual stays short enough to read."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 286

_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def prose(markdown: str) -> str:
    """The text outside code blocks: a `# comment` in a shell example is not a heading."""
    return _FENCE.sub("", markdown)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(heading) for heading in _HEADING.findall(prose(path.read_text()))}


def relative_links(path: Path) -> list[str]:
    return [target for target in _LINK.findall(prose(path.read_text())) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    for link in relative_links(page):
        file_part, _, fragment = link.partition("#")
        target = (page.parent / file_part).resolve() if file_part else page
        assert target.is_file(), f"{page.name}: {link} leads to no file"
        if fragment and target.suffix == ".md":
            assert fragment in anchors(target), f"{page.name}: {link} leads to no heading"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in relative_links(README)}
    assert [page.name for page in PAGES if page.resolve() not in linked] == []


def test_the_readme_is_at_most_286_lines() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move reference material to docs/"


def readme_scrape_config() -> dict[str, Any]:
    """The `prometheus.yml` example of the README, as a user copies it."""
    text = README.read_text().split("Prometheus scrapes otel-chargy by default; in `prometheus.yml`:", 1)[1]
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config: dict[str, Any] = yaml.safe_load(block)
    return config


def test_the_readmes_scrape_config_with_the_alert_rules_fires_exporter_down(tmp_path: Path) -> None:
    """The README's scrape config, copied into a Prometheus beside prometheus/alerts.yml: a target it
    cannot scrape raises ChargyExporterDown after 5 minutes. Prometheus labels each `up` sample with the
    job's name and the target's address; promtool plays that series against the rules."""
    config = readme_scrape_config()
    (job,) = config["scrape_configs"]
    (target,) = [target for group in job["static_configs"] for target in group["targets"]]
    shutil.copy(ROOT / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({**config, "rule_files": ["alerts.yml"]}))
    up = f'up{{job="{job["job_name"]}", instance="{target}"}}'
    (tmp_path / "readme_test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["alerts.yml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [{"series": up, "values": "0x10"}],
                        "alert_rule_test": [
                            {"eval_time": "4m", "alertname": "ChargyExporterDown", "exp_alerts": []},
                            {
                                "eval_time": "6m",
                                "alertname": "ChargyExporterDown",
                                "exp_alerts": [
                                    {
                                        "exp_labels": {
                                            "severity": "critical",
                                            "job": job["job_name"],
                                            "instance": target,
                                        },
                                        "exp_annotations": {
                                            "summary": f"otel-chargy on {target} is down",
                                            "description": "Prometheus has not been able to scrape otel-chargy "
                                            "for 5 minutes.",
                                        },
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        )
    )
    for args in (("check", "config", "prometheus.yml"), ("test", "rules", "readme_test.yml")):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


# The real feed's documented size (the project's feed notes, FEED.md: ~526 placemarks, ~1,870 connectors): the
# one figure the docs give for today's network.
TODAYS_CONNECTORS = "1,870"
BENCHMARKS = json.loads((ROOT / "benchmarks" / "latest.json").read_text())


def otlp_table(page: Path) -> list[list[str]]:
    """The `--otlp.detail` table's rows, cells stripped: the header first."""
    lines = [line for line in page.read_text().splitlines() if line.startswith("| ")]
    start = next(index for index, line in enumerate(lines) if line.startswith("| `--otlp.detail` | pushes |"))
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[start:]]
    return [rows[0], *[row for row in rows[2:5]]]


def test_the_otlp_points_table_gives_the_benchmarks_figures() -> None:
    """docs/otlp.md's points per export: benchmarks/latest.json's, measured with three states, plus the
    series the fourth state (`unknown`) adds, as the page counts them: one per connector, two per
    station, one for the network; and the two of the logs signal's export counter (success, failure)."""
    header, *rows = otlp_table(ROOT / "docs" / "otlp.md")
    small, large = BENCHMARKS["sizes"]
    assert f"{small['placemarks']:,} placemarks ({small['connectors']:,} connectors)" in header[2]
    assert f"{large['placemarks']:,} placemarks ({large['connectors']:,}" in header[3]
    assert [row[0] for row in rows] == ["`connector` (default)", "`station`", "`network`"]
    for row in rows:
        detail = row[0].split("`")[1]
        figures = []
        for size in (small, large):
            added = {"network": 1 + 2, "station": 2 * size["placemarks"] + 1 + 2}
            added["connector"] = added["station"] + size["connectors"]
            figures.append(f"{size['otlp'][detail]['points_per_export'] + added[detail]:,}")
        assert row[2:] == figures, detail


def test_todays_network_is_one_figure_the_real_feeds() -> None:
    """Wherever the docs give today's network a connector count, it is the real feed's; the benchmarks'
    generated networks are named by their placemarks."""
    stated = []
    for page in [README, *PAGES, ROOT / "benchmarks" / "README.md"]:
        text = " ".join(page.read_text().split())
        stated += [
            (page.name, figure)
            for figure in re.findall(r"today(?:'s)?(?: network| size)?[^.()]{0,12}\(?~?([\d,]+) connectors", text)
        ]
    assert stated and all(figure == TODAYS_CONNECTORS for _, figure in stated), stated


def test_the_readmes_performance_figures_are_the_benchmarks() -> None:
    """Each figure of the README's Performance paragraph, from the benchmark's JSON that produced it."""
    text = " ".join(README.read_text().split("## Performance\n", 1)[1].split("\n## ", 1)[0].split())
    large = BENCHMARKS["sizes"][1]
    ours, naive = large["otel-chargy"], large["naive"]
    hostile = json.loads((ROOT / "benchmarks" / "hostile.json").read_text())["documents"]
    refused = [figures for kind, figures in hostile.items() if figures["outcome"] != "success"]
    ocpi = json.loads((ROOT / "benchmarks" / "ocpi.json").read_text())["cases"]
    whole, city = ocpi["whole network"], ocpi["one city (--feed.bbox)"]
    expected = [
        f"At {large['placemarks']:,} placemarks ({large['connectors']:,} connectors,",
        f"a scrape took {ours['scrape_p50_ms']:.0f} ms at the median "
        f"({naive['scrape_p50_ms'] / ours['scrape_p50_ms']:.0f}\N{MULTIPLICATION SIGN} faster than a naive exporter)",
        f"a refresh {ours['refresh_s']:.1f} s ({naive['refresh_s'] / ours['refresh_s']:.1f}\N{MULTIPLICATION SIGN})",
        f"within {max(figures['cpu_s_max'] for figures in refused):.2f} s of CPU "
        f"and {max(figures['extra_mib_max'] for figures in refused):.0f} MiB",
        f"an OTLP export goes as {large['otlp']['connector']['grpc_requests_per_export']} gRPC requests",
        f"refreshes whole in {whole['refresh_s']:.0f} s within {whole['peak_rss_mib']:.0f} MiB",
        f"filtered to a city in {city['refresh_s']:.1f} s within {city['peak_rss_mib']:.0f} MiB",
    ]
    assert [figure for figure in expected if figure not in text] == []
