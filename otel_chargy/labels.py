"""Text from a feed made fit for a label: bounded in length, valid Unicode. Each repair is counted as a
parse issue; the rest of the feed is used. Knows nothing of metrics."""

from __future__ import annotations

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
    "invalid_text": "a text held a lone surrogate (a JSON escape UTF-8 cannot hold) or, in a JSON feed, bytes"
    " that are not UTF-8: each became U+FFFD",
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
