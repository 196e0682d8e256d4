"""Hostile KML documents, each built to reach one of the parser's bounds (or all of them at once,
without crossing one), and what parsing one costs, measured in a fresh interpreter so that its peak
memory is its own. Shared by tests/test_hostile.py (outcome, reason, memory) and
benchmarks/hostile.py (CPU time).

    python -m tests.hostile_documents FILE    # parse FILE, print outcome, reason, extra MiB, CPU s
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_chargy.config import DEFAULT_MAX_BYTES
from otel_chargy.outcome import FeedError, Outcome
from otel_chargy.parse import MAX_PLACEMARK_ELEMENTS, SizeBounds, parse_kml
from tests.process_status import status_kib

ROOT = Path(__file__).parent.parent
# The largest body a refresh hands to the parser.
LARGEST_BODY = DEFAULT_MAX_BYTES
_HEAD = b'<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
_TAIL = b"</Document></kml>"


def _document(*parts: bytes) -> bytes:
    return _HEAD + b"".join(parts) + _TAIL


def _placemark(name: bytes = b"S", inner: bytes = b"", attributes: bytes = b"") -> bytes:
    return b"<Placemark" + attributes + b"><name>" + name + b"</name>" + inner + b"</Placemark>"


def _repeat(part: bytes) -> bytes:
    """As many parts as fit in the largest body, leaving room for the rest of the document."""
    return part * ((LARGEST_BODY - 1_000) // len(part))


def _with_dtd(dtd: bytes, name: bytes) -> bytes:
    return b'<?xml version="1.0"?><!DOCTYPE kml [' + dtd + b"]><kml><Document>" + _placemark(name) + _TAIL


def _connectors(count: int, first_id: int = 0) -> bytes:
    entries = (
        b'{"id": %d, "name": "C%d", "maxchspeed": 22.0, "connector": 1, "description": "AVAILABLE"}' % (i, i)
        for i in range(first_id, first_id + count)
    )
    return (
        b'<ExtendedData><Data name="chargingdevice"><value>{"name": "D", "connectors": ['
        + b", ".join(entries)
        + b"]}</value></Data></ExtendedData>"
    )


def _billion_laughs() -> bytes:
    levels = b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10))
    return _with_dtd(b'<!ENTITY l0 "lol">' + levels, b"&l9;")


def _every_bound_nearly_reached() -> bytes:
    """As costly as a document may be without being refused: the most placemarks, connectors,
    elements and attributes the parser accepts, all at once."""
    bounds = SizeBounds()
    placemarks = bounds.placemarks
    per_placemark = bounds.connectors // placemarks
    # Placemark, name, ExtendedData, Data and value: 5 elements; the kml and Document elements: 2.
    fillers = (bounds.elements - 2) // placemarks - 5
    # The Data element carries one attribute, a filler the rest of the placemark's share.
    attributes = b"".join(b' a%d="v"' % i for i in range(bounds.attributes // placemarks - 1))
    filler = b"<x" + attributes + b"/>" + b"<x/>" * (fillers - 1)
    return _document(
        *(_placemark(b"S%d" % p, _connectors(per_placemark, p * per_placemark) + filler) for p in range(placemarks))
    )


@dataclass(frozen=True)
class HostileDocument:
    kind: str
    build: Callable[[], bytes]
    outcome: Outcome
    reason: str
    """A part of the refusal's reason: which bound stopped the document; empty for the one accepted."""


DOCUMENTS = (
    HostileDocument("billion-laughs", _billion_laughs, Outcome.FORBIDDEN_XML, "DTD"),
    HostileDocument(
        "quadratic-blowup",
        lambda: _with_dtd(b'<!ENTITY a "' + b"x" * 200_000 + b'">', b"&a;" * 20_000),
        Outcome.FORBIDDEN_XML,
        "DTD",
    ),
    HostileDocument(
        "deep-nesting",
        lambda: _HEAD + b"<Folder>" * 2_500_000 + b"</Folder>" * 2_500_000 + _TAIL,
        Outcome.FORBIDDEN_XML,
        "nested deeper",
    ),
    HostileDocument("wide-document", lambda: _document(_repeat(b"<x/>")), Outcome.FORBIDDEN_XML, "outside placemarks"),
    HostileDocument(
        "wide-placemark",
        lambda: _document(_placemark(inner=_repeat(b"<x/>"))),
        Outcome.FORBIDDEN_XML,
        "placemark holds",
    ),
    HostileDocument(
        "junk-placemarks",
        lambda: _document(_repeat(_placemark(inner=b"<x/>" * (MAX_PLACEMARK_ELEMENTS - 1)))),
        Outcome.FORBIDDEN_XML,
        "elements",
    ),
    HostileDocument("many-placemarks", lambda: _document(_repeat(_placemark())), Outcome.TOO_LARGE, "placemarks"),
    HostileDocument(
        "many-connectors",
        lambda: _document(*(_placemark(b"S%d" % p, _connectors(1_000, p * 1_000)) for p in range(500))),
        Outcome.TOO_LARGE,
        "connectors",
    ),
    HostileDocument(
        "many-attributes",
        lambda: _document(_repeat(_placemark(inner=b"<x " + b" ".join(b'a%d="v"' % i for i in range(100)) + b"/>"))),
        Outcome.FORBIDDEN_XML,
        "attributes",
    ),
    HostileDocument(
        "attribute-flood",
        lambda: _document(b"<Placemark " + b" ".join(b'a%d="v"' % i for i in range(3_500_000)) + b"/>"),
        Outcome.FORBIDDEN_XML,
        "spans",
    ),
    HostileDocument("huge-text", lambda: _document(_placemark(_repeat(b"x"))), Outcome.FORBIDDEN_XML, "spans"),
    HostileDocument(
        "huge-comment", lambda: _document(b"<!--" + _repeat(b"x") + b"-->"), Outcome.FORBIDDEN_XML, "spans"
    ),
    HostileDocument(
        "huge-cdata",
        lambda: _document(_placemark(inner=b"<description><![CDATA[" + _repeat(b"x") + b"]]></description>")),
        Outcome.FORBIDDEN_XML,
        "spans",
    ),
    HostileDocument(
        "fat-placemark",
        lambda: _document(_placemark(inner=(b"<description>" + b"x" * 900_000 + b"</description>") * 50)),
        Outcome.FORBIDDEN_XML,
        "placemark spans",
    ),
    HostileDocument(
        "distinct-names",
        lambda: _document(
            *(_placemark(attributes=b"".join(b' n%d_%d="v"' % (p, i) for i in range(50))) for p in range(30_000))
        ),
        Outcome.FORBIDDEN_XML,
        "distinct",
    ),
    HostileDocument(
        "distinct-elements",
        lambda: _document(*(_placemark(inner=b"<e%d/>" % p) for p in range(100_000))),
        Outcome.FORBIDDEN_XML,
        "distinct",
    ),
    HostileDocument("every-bound-nearly-reached", _every_bound_nearly_reached, Outcome.SUCCESS, ""),
)


def measure(path: Path) -> dict[str, Any]:
    """Parses the document in FILE in a fresh interpreter: outcome, reason, extra MiB, CPU s."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.hostile_documents", str(path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=True,
    )  # fmt: skip
    measured: dict[str, Any] = json.loads(result.stdout)
    return measured


def _parse_and_measure(path: Path) -> dict[str, Any]:
    body = path.read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # the peak so far is the reading's: start it anew
    rss_before = status_kib("VmRSS")
    before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        parse_kml(body)
        outcome, reason = Outcome.SUCCESS, ""
    except FeedError as error:
        outcome, reason = error.outcome, error.reason
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "outcome": outcome.value,
        "reason": reason,
        "extra_mib": (status_kib("VmHWM") - rss_before) / 1024,
        "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
    }


if __name__ == "__main__":
    print(json.dumps(_parse_and_measure(Path(sys.argv[1]))))
