"""The README is the user's manual and docs/ the reference: every relative link leads somewhere, and the
manual stays short enough to read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
