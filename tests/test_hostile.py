"""No hostile document makes the parser use more than 100 MB extra, and each is stopped by the bound
built for it. What each costs in CPU time is measured by benchmarks/hostile.py, not asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile_documents import DOCUMENTS, LARGEST_BODY, HostileDocument, measure


@pytest.mark.parametrize("document", DOCUMENTS, ids=[document.kind for document in DOCUMENTS])
def test_hostile_document_is_stopped_by_its_bound_within_100_mb(document: HostileDocument, tmp_path: Path) -> None:
    body = document.build()
    assert len(body) <= LARGEST_BODY
    path = tmp_path / "feed.kml"
    path.write_bytes(body)
    measured = measure(path)
    assert measured["outcome"] == document.outcome.value, measured
    assert document.reason in measured["reason"], measured
    assert measured["extra_mib"] < 100, measured
