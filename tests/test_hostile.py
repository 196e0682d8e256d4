"""No hostile document makes the parser use more than 100 MB extra, and each is stopped by the bound
built for it. What each costs in CPU time is measured by benchmarks/hostile.py, not asserted here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otel_chargy.outcome import Outcome
from tests.hostile_documents import DOCUMENTS, LARGEST_BODY, HostileDocument, measure

REFUSED = [document for document in DOCUMENTS if document.outcome is not Outcome.SUCCESS]
(AT_EVERY_BOUND,) = [document for document in DOCUMENTS if document.outcome is Outcome.SUCCESS]


def parsed(document: HostileDocument, directory: Path) -> dict[str, Any]:
    body = document.build()
    assert len(body) <= LARGEST_BODY
    path = directory / "feed.kml"
    path.write_bytes(body)
    return measure(path)


@pytest.mark.parametrize("document", REFUSED, ids=[document.kind for document in REFUSED])
def test_hostile_document_is_stopped_by_its_bound_within_100_mb(document: HostileDocument, tmp_path: Path) -> None:
    measured = parsed(document, tmp_path)
    assert measured["outcome"] == document.outcome.value, measured
    assert document.reason in measured["reason"], measured
    assert measured["extra_mib"] < 100, measured


def test_document_reaching_every_bound_is_accepted_within_100_mb(tmp_path: Path) -> None:
    measured = parsed(AT_EVERY_BOUND, tmp_path)
    assert measured["outcome"] == Outcome.SUCCESS.value, measured
    assert measured["extra_mib"] < 100, measured
