"""`--web.config.file`: TLS and basic auth in the Prometheus exporter-toolkit's format.

The same file a node_exporter reads works here, for the fields listed in SUPPORTED; any other
field is refused rather than silently ignored (a TLS or auth setting that does nothing is a hole).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
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


def _section(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = document.get(name) or {}
    if not isinstance(section, Mapping):
        raise WebConfigError(f"{name} must be a mapping")
    allowed = SUPPORTED[name]
    if allowed is not None and (unknown := sorted(set(section) - allowed)):
        raise WebConfigError(f"{name}: unsupported field(s) {', '.join(unknown)}")
    return section


def _tls_version(tls: Mapping[str, Any], key: str, default: str) -> ssl.TLSVersion:
    name = str(tls.get(key, default))
    if name not in _TLS_VERSIONS:
        raise WebConfigError(f"tls_server_config.{key}: {name!r} is not one of {', '.join(_TLS_VERSIONS)}")
    return _TLS_VERSIONS[name]


def _tls_context(tls: Mapping[str, Any], base: Path) -> ssl.SSLContext | None:
    if not tls:
        return None
    if not tls.get("cert_file") or not tls.get("key_file"):
        raise WebConfigError("tls_server_config needs both cert_file and key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _tls_version(tls, "min_version", "TLS12")
    context.maximum_version = _tls_version(tls, "max_version", "TLS13")
    try:
        # Relative paths are relative to the web config file, as in exporter-toolkit.
        context.load_cert_chain(base / tls["cert_file"], base / tls["key_file"])
        auth_type = tls.get("client_auth_type", "NoClientCert")
        if auth_type not in _CLIENT_AUTH:
            raise WebConfigError(f"tls_server_config.client_auth_type: {auth_type!r} is not supported")
        context.verify_mode = _CLIENT_AUTH[auth_type]
        if tls.get("client_ca_file"):
            context.load_verify_locations(base / tls["client_ca_file"])
        elif context.verify_mode != ssl.CERT_NONE:
            raise WebConfigError(f"tls_server_config.client_auth_type {auth_type} needs client_ca_file")
    except (OSError, ssl.SSLError) as error:
        raise WebConfigError(f"tls_server_config: {error}") from None
    return context


def load_web_config(path: Path) -> WebConfig:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise WebConfigError(str(error).splitlines()[0]) from None
    if not isinstance(document, Mapping):
        raise WebConfigError("the file must hold a mapping")
    if unknown := sorted(set(document) - set(SUPPORTED)):
        raise WebConfigError(f"unsupported field(s) {', '.join(unknown)}")
    users: dict[str, bytes] = {}
    for user, hashed in _section(document, "basic_auth_users").items():
        if not isinstance(hashed, str) or not hashed.startswith("$2"):
            raise WebConfigError(f"basic_auth_users.{user}: not a bcrypt hash")
        users[str(user)] = hashed.encode()
    headers = _section(document, "http_server_config").get("headers") or {}
    return WebConfig(
        tls=_tls_context(_section(document, "tls_server_config"), path.parent),
        basic_auth_users=users,
        headers={str(name): str(value) for name, value in headers.items()},
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
