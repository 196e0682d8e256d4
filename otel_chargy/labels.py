"""Text from a feed made fit for a label: bounded in length, valid Unicode. Each repair is counted as a
parse issue; the rest of the feed is used. Knows nothing of metrics."""

from __future__ import annotations

import codecs
import re
from collections import Counter

MAX_LABEL_CHARS = 256
"""The longest station, device, connector, address or state text kept whole. Real station names are
under 100 characters. A station's name labels every series of its connectors: unbounded, one long name
would multiply the size of /metrics and of the process by the connectors it labels."""

_CUT_MARK = "…"
_SURROGATE = re.compile("[\ud800-\udfff]")

LABEL_ISSUE_KINDS: dict[str, str] = {
    "long_text": f"a station, device, connector, address or state text over {MAX_LABEL_CHARS} characters was cut"
    " to that length (ending in …)",
    "invalid_text": "a text held a lone surrogate (a JSON escape UTF-8 cannot hold), or bytes that are not"
    " UTF-8 in a UTF-8 document: each became U+FFFD",
}


def label_text(value: str, issues: Counter[str]) -> str:
    """`value` stripped, cut to MAX_LABEL_CHARS and with lone surrogates replaced by U+FFFD."""
    text = value.strip()
    if len(text) > MAX_LABEL_CHARS:
        issues["long_text"] += 1
        text = text[: MAX_LABEL_CHARS - len(_CUT_MARK)] + _CUT_MARK
    return valid_text(text, issues)


def valid_text(text: str, issues: Counter[str]) -> str:
    """`text` with lone surrogates (which JSON's escapes can carry, and UTF-8 cannot) replaced by U+FFFD."""
    if text.isascii():
        return text
    replaced, count = _SURROGATE.subn("\ufffd", text)
    if count:
        issues["invalid_text"] += 1
    return replaced


def unique_label(name: str, ids: tuple[str, ...], taken: set[str]) -> str:
    """`name (id)` for the first of `ids` that gives a label not in `taken`, else the last numbered
    until free; added to `taken`."""
    candidates = (f"{name} ({identifier})" for identifier in ids)
    label = next((candidate for candidate in candidates if candidate not in taken), None)
    number = 2
    while label is None or label in taken:
        label = f"{name} ({ids[-1]}) ({number})"
        number += 1
    taken.add(label)
    return label


class Utf8Repair:
    """A stream of bytes made UTF-8 chunk by chunk: each sequence that is not UTF-8 becomes U+FFFD, counted
    in `issues` as `invalid_text`. A parser would refuse the whole document for one bad byte in a name."""

    def __init__(self, issues: Counter[str]) -> None:
        self._issues = issues
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def repair(self, data: bytes, *, final: bool = False) -> bytes:
        pending, _ = self._decoder.getstate()
        if not pending and not final and data.isascii():
            return data
        repaired = self._decoder.decode(data, final=final).encode()
        # U+FFFD that the feed itself wrote is no repair.
        replaced = repaired.count(_REPLACEMENT) - (pending + data).count(_REPLACEMENT)
        if replaced > 0:
            self._issues["invalid_text"] += replaced
        return repaired


_REPLACEMENT = "\ufffd".encode()
