"""Host names as the fetch uses them: checked once for the configuration and again for every redirect."""

from __future__ import annotations

import httpx

BAD_HOST = "not a valid host name (IDNA): an empty or over-long label, or a malformed xn-- label"


def host_is_usable(url: str | httpx.URL) -> bool:
    """Whether a URL's host can be used the way the fetch uses it: httpx reads a non-ASCII or `xn--`
    name through IDNA 2008, then the resolver encodes the name again with Python's IDNA codec, which
    refuses an empty label (`a..b`) or one over 63 characters (a traceback, were it not checked)."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        parsed.host  # noqa: B018  # httpx decodes an xn-- name to use it, and raises on a malformed one
        parsed.raw_host.decode("ascii").encode("idna")
    except (httpx.InvalidURL, UnicodeError):  # idna's IDNAError is a UnicodeError
        return False
    return True
