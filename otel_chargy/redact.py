"""Keeps the feed's API key (and anything like it) out of every output."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, is_dataclass, replace
from enum import Enum
from functools import cache
from typing import Any, TypeVar
from urllib.parse import quote, unquote, unquote_plus

from otel_chargy.model import Connector, Device, Snapshot, Station

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


# A text cut at a length bound (a label, an echoed JSON key) may end inside a secret: a prefix of a secret at
# least this long is taken for the secret. Shorter prefixes say too little to be worth the false alarms.
_SHORTEST_CUT_SECRET = 8


def _whole_or_cut(secret: str) -> str:
    """A pattern for the secret, whole or cut short after at least _SHORTEST_CUT_SECRET characters. A
    secret shorter than that (a tenant header's `1`) is matched only where no letter or digit touches it:
    inside words it would garble every line (`2026-REDACTED2-03`) and hide nothing."""
    if len(secret) < _SHORTEST_CUT_SECRET:
        return rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])"
    if len(secret) == _SHORTEST_CUT_SECRET:
        return re.escape(secret)
    rest = ""
    for character in reversed(secret[_SHORTEST_CUT_SECRET:]):
        rest = f"(?:{re.escape(character)}{rest})?"
    return re.escape(secret[:_SHORTEST_CUT_SECRET]) + rest


class Redactor:
    """Replaces known secret values in any text, whole or cut short: the last line of defence for every
    output (logs, spans, pages, the snapshot's labels). `secrets` is every secret the service holds: the
    feed URL's, header values, tokens."""

    def __init__(self, secrets: list[str]) -> None:
        # Longest first, so that a secret that contains another is replaced whole.
        ordered = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
        # In any case: a feed's text may be upper-cased on its way out (a raw state is), and a secret's
        # letters in another case still give it away.
        pattern = "|".join(_whole_or_cut(secret) for secret in ordered)
        self._pattern = re.compile(pattern, re.IGNORECASE) if ordered else None

    @property
    def holds_secrets(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)


def _redacted(value: Any, redactor: Redactor) -> Any:
    """`value` with every text in it redacted: a str, or the fields of a dataclass and the items of a tuple,
    as deep as they go; the same object when nothing changed."""
    if isinstance(value, Enum):
        return value
    if isinstance(value, str):
        redacted = redactor(value)
        return value if redacted == value else redacted
    if isinstance(value, tuple):
        items = tuple(_redacted(item, redactor) for item in value)
        return items if any(new is not old for new, old in zip(items, value, strict=True)) else value
    if is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for name in _field_names(type(value)):
            old = getattr(value, name)
            if (new := _redacted(old, redactor)) is not old:
                changes[name] = new
        return replace(value, **changes) if changes else value
    return value


@cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(kind) if field.init)


T = TypeVar("T", Station, Device, Connector)


def _named_apart(items: tuple[T, ...]) -> tuple[T, ...]:
    """`items` with names unique again: a name that redaction made equal to another's (`S <key>` beside
    `S REDACTED`) gets the first free ` (2)`, ` (3)`, … suffix, so that no two series share their labels."""
    names = [item.name for item in items]
    if len(set(names)) == len(names):
        return items
    taken = set(names)
    seen: set[str] = set()
    renamed = []
    for item in items:
        if item.name in seen:
            number = 2
            while f"{item.name} ({number})" in taken:
                number += 1
            item = replace(item, name=f"{item.name} ({number})")
            taken.add(item.name)
        seen.add(item.name)
        renamed.append(item)
    return tuple(renamed)


def redact_snapshot(snapshot: Snapshot, redactor: Redactor) -> Snapshot:
    """The snapshot with every text a feed wrote (names, addresses, ids, raw states) redacted, once as it is
    made: every output of it, /metrics and OTLP included, then shows no secret the feed echoed."""
    if not redactor.holds_secrets:
        return snapshot
    redacted: Snapshot = _redacted(snapshot, redactor)
    if redacted is snapshot:
        return snapshot
    stations = tuple(
        replace(
            station,
            devices=_named_apart(
                tuple(replace(device, connectors=_named_apart(device.connectors)) for device in station.devices)
            ),
        )
        for station in redacted.stations
    )
    return replace(redacted, stations=_named_apart(stations))
