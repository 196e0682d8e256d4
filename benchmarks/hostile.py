"""What each hostile document costs the parser, against a legitimate feed of ten times today's
network, in one run.

    python benchmarks/hostile.py                                  # every document, 5 runs each
    python benchmarks/hostile.py --kinds huge-text --repeats 1    # one document

The documents are tests/hostile_documents.py's: one for each bound of the parser, up to the default
--max-bytes in size, and one that reaches every bound at once without crossing one. Each run parses
one document in a fresh interpreter. The table gives the median and the largest CPU time of the
runs against the 2 s budget, the ratio of the median to the legitimate feed's, and the extra memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from otel_chargy.generator import generate_network, render_kml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # the documents and their measurement live with the tests
from tests.hostile_documents import DOCUMENTS, measure  # noqa: E402

CPU_BUDGET_S = 2.0
LEGITIMATE = "legitimate feed"


def measure_runs(body: bytes, repeats: int, directory: Path) -> dict[str, Any]:
    path = directory / "feed.kml"
    path.write_bytes(body)
    runs = [measure(path) for _ in range(repeats)]
    cpu_s = [run["cpu_s"] for run in runs]
    return {
        "megabytes": len(body) / 1e6,
        "outcome": runs[0]["outcome"],
        "cpu_s_median": statistics.median(cpu_s),
        "cpu_s_max": max(cpu_s),
        "extra_mib_max": max(run["extra_mib"] for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = [document.kind for document in DOCUMENTS]
    parser.add_argument("--kinds", nargs="+", choices=kinds, default=kinds, help="documents to measure")
    parser.add_argument("--repeats", type=int, default=5, help="runs per document")
    parser.add_argument("--reference-placemarks", type=int, default=10_000, help="size of the legitimate feed")
    parser.add_argument("--output", type=Path, default=HERE / "hostile.json")
    args = parser.parse_args()
    network = generate_network(args.reference_placemarks, seed=1)
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "reference": f"{args.reference_placemarks} placemarks, {network.connector_count} connectors",
        "documents": {},
    }
    with tempfile.TemporaryDirectory() as directory:
        documents = report["documents"]
        documents[LEGITIMATE] = measure_runs(render_kml(network), args.repeats, Path(directory))
        for document in DOCUMENTS:
            if document.kind in args.kinds:
                documents[document.kind] = measure_runs(document.build(), args.repeats, Path(directory))
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))


def table(report: dict[str, Any]) -> str:
    reference_s = report["documents"][LEGITIMATE]["cpu_s_median"]
    lines = [
        f"Machine: {report['machine']}; {report['date']}. Legitimate feed: {report['reference']}.",
        f"CPU budget: {CPU_BUDGET_S:g} s a document. Ratio: median CPU / the legitimate feed's.",
        "",
        "| document | MB | outcome | CPU s, median | CPU s, max | ratio | extra MiB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, figures in report["documents"].items():
        ratio = figures["cpu_s_median"] / reference_s if reference_s else float("nan")
        lines.append(
            f"| {kind} | {figures['megabytes']:.1f} | `{figures['outcome']}` | {figures['cpu_s_median']:.3f} "
            f"| {figures['cpu_s_max']:.3f} | {ratio:.2f} | {figures['extra_mib_max']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
