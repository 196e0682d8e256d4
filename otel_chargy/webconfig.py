"""`--web.config.file`: TLS and basic auth in the Prometheus exporter-toolkit's format.

The same file a node_exporter reads works here, for the fields listed in SUPPORTED; any other
field is refused rather than silently ignored (a TLS or auth setting that does nothing is a hole).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
SUPPORTED = {
    "tls_server_config": {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"},
    "http_server_config": {"headers"},
    "basic_auth_users": None,
}
# bcrypt ignores bytes past 72, and the library refuses longer passwords: they are simply wrong.
_MAX_PASSWORD_BYTES = 72
# Each wrong password costs a bcrypt check (~0.2 s of a core at cost 12): at most this many run at once.
_PARALLEL_PASSWORD_CHECKS = 2


class WebConfigError(ValueError):
    pass


@dataclass(frozen=True)
class WebConfig:
    tls: ssl.SSLContext | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict)
    """user -> bcrypt hash"""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Added to every response (http_server_config.headers)."""


def _section(document: Mapping[Any, Any], name: str) -> Mapping[Any, Any]:
    section = document.get(name) or {}
    if not isinstance(section, Mapping):
        raise WebConfigError(f"{name} must be a mapping")
    allowed = SUPPORTED[name]
    if allowed is not None and (unknown := sorted(str(key) for key in section if key not in allowed)):
        raise WebConfigError(f"{name}: unsupported field(s) {', '.join(unknown)}")
    return section


def _text(section: Mapping[Any, Any], key: str, path: str, default: str = "") -> str:
    value = section.get(key, default)
    if not isinstance(value, str):
        raise WebConfigError(f"{path}.{key} must be a string")
    return value


def _tls_version(tls: Mapping[Any, Any], key: str, default: str) -> ssl.TLSVersion:
    name = _text(tls, key, "tls_server_config", default)
    if name not in _TLS_VERSIONS:
        raise WebConfigError(f"tls_server_config.{key}: {name!r} is not one of {', '.join(_TLS_VERSIONS)}")
    return _TLS_VERSIONS[name]


def _tls_context(tls: Mapping[Any, Any], base: Path) -> ssl.SSLContext | None:
    if not tls:
        return None
    cert_file, key_file = (_text(tls, key, "tls_server_config") for key in ("cert_file", "key_file"))
    if not cert_file or not key_file:
        raise WebConfigError("tls_server_config needs both cert_file and key_file")
    minimum, maximum = _tls_version(tls, "min_version", "TLS12"), _tls_version(tls, "max_version", "TLS13")
    # A context whose minimum is above its maximum loads, then fails every handshake.
    if minimum > maximum:
        raise WebConfigError("tls_server_config.min_version is above max_version")
    auth_type = _text(tls, "client_auth_type", "tls_server_config", "NoClientCert")
    if auth_type not in _CLIENT_AUTH:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: {auth_type!r} is not one of {', '.join(_CLIENT_AUTH)}"
        )
    client_ca_file = _text(tls, "client_ca_file", "tls_server_config")
    if _CLIENT_AUTH[auth_type] != ssl.CERT_NONE and not client_ca_file:
        raise WebConfigError(f"tls_server_config.client_auth_type {auth_type} needs client_ca_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version, context.maximum_version = minimum, maximum
        # Relative paths are relative to the web config file, as in exporter-toolkit.
        context.load_cert_chain(base / cert_file, base / key_file)
        context.verify_mode = _CLIENT_AUTH[auth_type]
        if client_ca_file:
            context.load_verify_locations(base / client_ca_file)
    except (OSError, ssl.SSLError, ValueError) as error:
        raise WebConfigError(f"tls_server_config: {error}") from None
    return context


# A whole bcrypt hash: version, cost (4 to 31), 22 characters of salt and 31 of hash. A truncated or
# mistyped hash would otherwise be accepted and then refuse every request.
_BCRYPT_HASH = re.compile(r"\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def _basic_auth_users(section: Mapping[Any, Any]) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for user, hashed in section.items():
        if not isinstance(user, str) or not user or ":" in user:
            # Basic auth splits user from password at the first colon: such a user could never log in.
            raise WebConfigError(f"basic_auth_users: {str(user)!r} is not a user name (a string, no colon)")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            raise WebConfigError(f"basic_auth_users.{user}: not a whole bcrypt hash ($2y$10$ and 53 characters)")
        users[user] = hashed.encode()
    return users


# Headers that say how an answer is delimited or encoded: a second copy from the file would break it.
_FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer", "te",
     "content-encoding", "content-type"}
)  # fmt: skip


def _headers(section: Mapping[Any, Any]) -> dict[str, str]:
    headers = section.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise WebConfigError("http_server_config.headers must be a mapping")
    for name, value in headers.items():
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise WebConfigError(f"http_server_config.headers: {str(name)!r} is not a header name")
        if str(name).lower() in _FRAMING_HEADERS:
            raise WebConfigError(f"http_server_config.headers: {name} is the server's own (it frames the answer)")
        # A line break in a value would end the header and let the file write the response.
        if not isinstance(value, str) or any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
            raise WebConfigError(f"http_server_config.headers.{name}: not a one-line string")
    return dict(headers)


def load_web_config(path: Path) -> WebConfig:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise WebConfigError(str(error).splitlines()[0]) from None
    if not isinstance(document, Mapping):
        raise WebConfigError("the file must hold a mapping")
    if unknown := sorted(str(key) for key in document if key not in SUPPORTED):
        raise WebConfigError(f"unsupported field(s) {', '.join(unknown)}")
    return WebConfig(
        tls=_tls_context(_section(document, "tls_server_config"), path.parent),
        basic_auth_users=_basic_auth_users(_section(document, "basic_auth_users")),
        headers=_headers(_section(document, "http_server_config")),
    )


class BasicAuth:
    """Checks `Authorization: Basic` headers. bcrypt is slow by design, so a password once accepted
    is remembered (as a digest): one entry per user at most, which no wrong guess can evict."""

    def __init__(self, users: Mapping[str, bytes], parallel_checks: int = _PARALLEL_PASSWORD_CHECKS) -> None:
        self._users = users
        # An unknown user's password is checked against some user's hash, then refused whatever the
        # result: a wrong user costs as much as a wrong password.
        self._any_hash = next(iter(users.values()), b"")
        self._accepted: set[bytes] = set()
        self._checks = threading.BoundedSemaphore(parallel_checks)

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def allows(self, authorization: str | None) -> bool:
        if not self._users:
            return True
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        secret = password.encode()
        if len(secret) > _MAX_PASSWORD_BYTES:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if key in self._accepted:
            return True
        with self._checks:
            try:
                matches = bcrypt.checkpw(secret, self._users.get(user, self._any_hash))
            except ValueError:  # a hash bcrypt cannot read
                return False
        if matches and user in self._users:
            self._accepted.add(key)
            return True
        return False
