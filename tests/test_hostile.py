"""No hostile document makes the parser use more than 100 MB extra or 2 s of CPU.

Each document is parsed in a fresh interpreter, so that its peak memory is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from otel_chargy.outcome import Outcome

MEASURE = r"""
import json, resource, sys
from otel_chargy.outcome import FeedError
from otel_chargy.parse import parse_kml

def build(kind):
    head = b'<?xml version="1.0"?>'
    def one_placemark(name, dtd=b""):
        return head + dtd + b"<kml><Document><Placemark><name>" + name + b"</name></Placemark></Document></kml>"
    if kind == "billion-laughs":
        levels = [b"&l%d;" % (i - 1) * 10 for i in range(1, 10)]
        entities = b'<!ENTITY l0 "lol">' + b"".join(b'<!ENTITY l%d "%s">' % (i + 1, l) for i, l in enumerate(levels))
        return one_placemark(b"&l9;", b"<!DOCTYPE kml [" + entities + b"]>")
    if kind == "quadratic-blowup":
        return one_placemark(b"&a;" * 20_000, b'<!DOCTYPE kml [<!ENTITY a "' + b"x" * 200_000 + b'">]>')
    if kind == "external-entity":
        return one_placemark(b"&x;", b'<!DOCTYPE kml [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>')
    if kind == "deep-nesting":
        return head + b"<kml>" + b"<Folder>" * 1_000_000 + b"</Folder>" * 1_000_000 + b"</kml>"
    if kind == "wide-document":
        return head + b"<kml><Document>" + b"<x/>" * 5_000_000 + b"</Document></kml>"
    if kind == "wide-placemark":
        return one_placemark(b"S</name>" + b"<x/>" * 5_000_000 + b"<name>")
    if kind == "junk-placemarks":
        junk = b"<Placemark><name>S</name>" + b"<x/>" * 900 + b"</Placemark>"
        return head + b"<kml><Document>" + junk * 10_000 + b"</Document></kml>"
    if kind == "many-attributes":
        attributes = b" ".join(b'a%d="v"' % i for i in range(500_000))
        return head + b"<kml><Document><Placemark " + attributes + b"><name>S</name></Placemark></Document></kml>"
    if kind == "distinct-names":
        attributes = lambda i: b" ".join(b'n%d_%d="v"' % (i, j) for j in range(50))
        return head + b"<kml><Document>" + b"".join(
            b"<Placemark " + attributes(i) + b"><name>S</name></Placemark>" for i in range(30_000)
        ) + b"</Document></kml>"
    if kind == "distinct-elements":
        names = b"".join(b"<e%d/>" % i for i in range(900))
        return head + b"<kml><Document>" + b"".join(
            b"<Placemark><name>S</name>" + names.replace(b"<e", b"<p%d_" % i) + b"</Placemark>" for i in range(1_000)
        ) + b"</Document></kml>"
    raise ValueError(kind)

body = build(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF)
try:
    parse_kml(body)
    outcome = "success"
except FeedError as error:
    outcome = error.outcome.value
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "outcome": outcome,
    "extra_mib": (after.ru_maxrss - before.ru_maxrss) / 1024,
    "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
}))
"""


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("billion-laughs", Outcome.FORBIDDEN_XML),
        ("quadratic-blowup", Outcome.FORBIDDEN_XML),
        ("external-entity", Outcome.FORBIDDEN_XML),
        ("deep-nesting", Outcome.FORBIDDEN_XML),
        ("wide-document", Outcome.FORBIDDEN_XML),
        ("junk-placemarks", Outcome.FORBIDDEN_XML),
        ("wide-placemark", Outcome.FORBIDDEN_XML),
        ("many-attributes", Outcome.FORBIDDEN_XML),
        ("distinct-names", Outcome.FORBIDDEN_XML),
        ("distinct-elements", Outcome.FORBIDDEN_XML),
    ],
)
def test_hostile_document_is_bounded(kind: str, outcome: Outcome | None) -> None:
    result = subprocess.run([sys.executable, "-c", MEASURE, kind], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    if outcome is not None:
        assert measured["outcome"] == outcome.value
    assert measured["extra_mib"] < 100, measured
    assert measured["cpu_s"] < 2, measured
