"""Keeps the feed's API key (and anything like it) out of every output."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus

REDACTED = "REDACTED"
_SECRET_WORDS = ("key", "token", "secret", "sig", "pass", "auth", "credential")
# RFC 3986, appendix B: splits any text into the parts of a URL and never fails, unlike urlsplit,
# which raises on a broken IPv6 literal; an invalid URL must be redacted as well as a valid one.
_URL_PARTS = re.compile(
    r"^(?:(?P<scheme>[^:/?#]+):)?(?://(?P<authority>[^/?#]*))?(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?"
    r"(?:#(?P<fragment>.*))?",
    re.DOTALL,
)
# name=value in a query or a fragment (#access_token=…), separated by & or ;.
_PARAMETER = re.compile(r"(?P<name>[^&;=]*)=(?P<value>[^&;]*)")


def _is_secret_parameter(name: str) -> bool:
    lowered = unquote_plus(name).lower()
    return any(word in lowered for word in _SECRET_WORDS)


@dataclass(frozen=True)
class _Userinfo:
    user: str
    password: str | None

    @property
    def secret(self) -> str:
        # Some providers put the key in the user part, with no password: then the user is the secret.
        return self.password or self.user


def _userinfo(authority: str) -> _Userinfo | None:
    userinfo, at, _ = authority.rpartition("@")
    if not at:
        return None
    user, colon, password = userinfo.partition(":")
    return _Userinfo(user, password if colon else None)


def _holds_secret(parameter: re.Match[str]) -> bool:
    return bool(parameter["value"]) and _is_secret_parameter(parameter["name"])


def _redact_parameters(text: str) -> str:
    return _PARAMETER.sub(
        lambda parameter: f"{parameter['name']}={REDACTED}" if _holds_secret(parameter) else parameter[0], text
    )


def redact_url(url: str) -> str:
    """The URL with its user part (or password) and every secret-looking query value replaced by REDACTED;
    everything else as written."""
    parts = _URL_PARTS.match(url)
    assert parts is not None  # every group is optional: the pattern matches any text
    redacted = url[: parts.start("authority")] if parts["authority"] is not None else url[: parts.start("path")]
    if (authority := parts["authority"]) is not None:
        userinfo = _userinfo(authority)
        host = authority.rpartition("@")[2]
        if userinfo is None or not userinfo.secret:
            redacted += authority
        elif userinfo.password:
            redacted += f"{userinfo.user}:{REDACTED}@{host}"
        else:
            redacted += f"{REDACTED}@{host}"
    redacted += parts["path"]
    if parts["query"] is not None:
        redacted += "?" + _redact_parameters(parts["query"])
    if parts["fragment"] is not None:
        redacted += "#" + _redact_parameters(parts["fragment"])
    return redacted


def _spellings(secret: str) -> set[str]:
    """The forms a secret takes in text: as written, decoded, and percent-encoded either way."""
    decoded = unquote(secret)
    encoded = quote(decoded, safe="")
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda escape: escape[0].lower(), encoded)
    forms = {secret, decoded, unquote_plus(secret), encoded, lower_hex, encoded.replace("%20", "+")}
    return {form for form in forms if form}


def secrets_of_url(url: str) -> list[str]:
    """The secret values a URL carries (user part, password, secret-looking query values), in every
    spelling they may take in text: raw, decoded and percent-encoded."""
    parts = _URL_PARTS.match(url)
    assert parts is not None
    secrets: set[str] = set()
    if parts["authority"] is not None and (userinfo := _userinfo(parts["authority"])) is not None:
        secrets |= _spellings(userinfo.secret)
    for parameter in _PARAMETER.finditer(f"{parts['query'] or ''}&{parts['fragment'] or ''}"):
        if _holds_secret(parameter):
            secrets |= _spellings(parameter["value"])
    return sorted(secrets)


class Redactor:
    """Replaces known secret values in any text: the last line of defence for logs and pages."""

    def __init__(self, secrets: list[str]) -> None:
        # Longest first, so that a secret that contains another is replaced whole.
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text
