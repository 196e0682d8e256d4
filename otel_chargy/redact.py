"""Keeps the feed's API key (and anything like it) out of every output."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
_SECRET_WORDS = ("key", "token", "secret", "signature", "password")


def _is_secret_parameter(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact_url(url: str) -> str:
    """The URL with the password and every secret-looking query value replaced by REDACTED."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", f":{REDACTED}@", 1)
    query = urlencode(
        [
            (name, REDACTED if _is_secret_parameter(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe=":/,",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets_of_url(url: str) -> list[str]:
    """The secret values a URL carries, as they may appear in text (raw and percent-encoded)."""
    parts = urlsplit(url)
    raw_query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
    found = {value for name, value in parse_qsl(parts.query, keep_blank_values=True) if _is_secret_parameter(name)}
    found |= {value for name, value in raw_query.items() if _is_secret_parameter(name)}
    if parts.password:
        found.add(parts.password)
    return [value for value in found if value]


class Redactor:
    """Replaces known secret values in any text: the last line of defence for logs and pages."""

    def __init__(self, secrets: list[str]) -> None:
        # Longest first, so that a secret that contains another is replaced whole.
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text
