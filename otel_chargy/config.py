"""Every setting, read in one place: flags, with environment variables as fallbacks.

SETTINGS is the one table: each row holds a setting's flag, environment variable, default, conversion
(with its bounds) and help. A value is taken from the flag, else the variable, else the default, and
converted by the row's conversion; an error names the setting as the user wrote it, the flag or the
variable, in one line (ConfigError).
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import math
import os
import re
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import SplitResult, unquote, urlsplit

from otel_chargy import __version__
from otel_chargy.events import DEFAULT_MAX_EVENTS, EVENT_BYTES
from otel_chargy.hosts import BAD_HOST, host_is_usable
from otel_chargy.parse import DEFAULT_MAX_CONNECTORS
from otel_chargy.parse_ocpi import BoundingBox
from otel_chargy.redact import REDACTED, redact_url, secrets_of_url
from otel_chargy.webconfig import WebConfig, load_web_config

# The public URL from the open-data catalogue; the provider may change it, so it is configuration.
DEFAULT_KML_URL = (
    "https://my.chargy.lu/b2bev-external-services/resources/kml?API-KEY=486ac6e4-93b8-4369-9c6a-28f7c4e1a81f"
)
DEFAULT_MAX_BYTES = 50_000_000
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")
METRICS_EXPORTERS = ("prometheus", "otlp", "console", "none")
TRACES_EXPORTERS = ("otlp", "console", "none")
LOGS_EXPORTERS = ("otlp", "console", "none")
OTLP_PROTOCOLS = ("grpc", "http/protobuf")
OTLP_COMPRESSIONS = ("gzip", "deflate", "none")
# The SDK's span limits: a whole number, or empty for none; anything else is a traceback when the SDK is imported.
SPAN_LIMIT_VARIABLES = (
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)
OTLP_DETAILS = ("connector", "station", "network")
FEED_SCHEMES = ("http", "https", "file")
FEED_FORMATS = ("chargy-kml", "ocpi", "datex2", "oicp")
# Formats published in two parts: a static table (--feed.url) and live statuses (--feed.status-url).
PAIRED_FORMATS = ("datex2", "oicp")
# Paths the server answers itself (/healthz without authentication) and prefixes kept for it: metrics
# there would be served open, or shadow a page.
RESERVED_PATHS = ("/healthz", "/readyz", "/api", "/static", "/station")
_MINUTE_S = 60.0
_DAY_S = 86_400.0


class ConfigError(ValueError):
    """A setting that cannot be used; the message is one line that names it as the user wrote it."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Config:
    feed_url: str = field(repr=False)  # holds the API key
    feed_format: str
    feed_bbox: BoundingBox | None
    feed_operators: frozenset[str]
    """`CC*PARTY` of the OCPI parties kept; empty keeps all."""
    feed_status_url: str | None = field(repr=False)
    """datex2, oicp: the status publication; --feed.url is the static one."""
    feed_static_interval_s: float
    feed_headers: tuple[tuple[str, str], ...] = field(repr=False)
    """(name, value) sent with every feed request: the values are secrets."""
    feed_client_cert: tuple[str, str] | None
    """(certificate file, key file) for the feed's TLS client authentication."""
    feed_token: str | None = field(repr=False)
    """Sent as `Authorization: Token ...` to the feed's host: a secret."""
    feed_token_encoding: str
    """base64 (OCPI 2.2.1's form) or raw (OCPI 2.1.1's, and feeds that want it as given)."""
    refresh_interval_s: float
    listen_address: ListenAddress
    telemetry_path: str
    max_staleness_s: float
    fetch_timeout_s: float
    max_bytes: int
    max_connectors: int
    demo: bool
    log_level: str
    log_format: str
    metrics_exporters: tuple[str, ...]
    traces_exporters: tuple[str, ...]
    logs_exporters: tuple[str, ...]
    """Where the state-change events go as OpenTelemetry log records."""
    otlp_metrics_protocol: str
    otlp_traces_protocol: str
    otlp_logs_protocol: str
    metric_export_interval_s: float
    """The OTLP push interval: OTEL_METRIC_EXPORT_INTERVAL, at most the refresh interval."""
    metric_export_timeout_s: float
    """How long one collection and export may take: OTEL_METRIC_EXPORT_TIMEOUT, else at least the interval."""
    otlp_detail: str
    """What OTLP pushes: connector, station or network (metrics.Detail)."""
    otlp_max_request_bytes: int | None
    """Largest OTLP metrics request; None: the Collector's default limit for the protocol."""
    otlp_header_values: tuple[str, ...] = field(repr=False)
    """Values of the OTLP headers (vendor API keys): secrets to redact."""
    web_config: WebConfig
    """TLS and basic auth from --web.config.file."""
    web_max_connections: int
    max_shrink: float
    events_max: int
    """State-change events kept in memory for the page and the API."""
    grafana_url: str | None
    created_series: bool
    """The usage counters' `_created` lines in OpenMetrics: PROMETHEUS_DISABLE_CREATED_SERIES unset or false."""
    check_source: str | None = field(repr=False)
    """Set for `otel-chargy check SOURCE`: parse once, report, exit."""
    written_as: Mapping[str, str] = field(repr=False, compare=False)
    """Setting -> the name the user gave it (flag or variable), for errors found after loading."""

    @property
    def kml_url(self) -> str:
        """The feed's URL under its first name, --kml-url, which stays an alias of --feed.url."""
        return self.feed_url


# Conversions: text -> value, or ValueError with the reason (never the text: the caller shows it, redacted).


def _number(
    minimum: float, maximum: float, unit: str = "s", cast: Callable[[str], float] = float
) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise ValueError("not a number" if cast is float else "not a whole number") from None
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        if value < minimum:
            raise ValueError(f"below the minimum of {_figure(minimum)} {unit}")
        if value > maximum:
            raise ValueError(f"above the maximum of {_figure(maximum)} {unit}")
        return value

    return convert


def _figure(number: float) -> str:
    return f"{int(number):,}" if number == int(number) else f"{number:g}"


def _count(minimum: int, maximum: int, unit: str) -> Callable[[str], float]:
    return _number(minimum, maximum, unit, int)


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if (value := text.strip().lower()) not in choices:
            raise ValueError(f"not one of {', '.join(choices)}")
        return value

    return convert


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError("not one of 1, true, yes, 0, false, no")
    return value in ("1", "true", "yes")


def _created_series(text: str) -> bool:
    """PROMETHEUS_DISABLE_CREATED_SERIES as prometheus_client reads it (true, 1 or t leave the `_created`
    series out), except that text it would silently read as false is refused."""
    value = text.strip().lower()
    if value not in ("true", "1", "t", "false", "0", "f", ""):
        raise ValueError("not one of true, 1, t (leave _created out) or false, 0, f (keep it)")
    return value not in ("true", "1", "t")


def _exporter_list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def convert(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))
        if not names or any(name not in choices for name in names):
            raise ValueError(f"choose from {', '.join(choices)}, comma-separated")
        return tuple(name for name in names if name != "none")

    return convert


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise ValueError("the port is not a number from 0 to 65535")
    return int(text)


def _ipv6(text: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError("the IPv6 address in [ ] is malformed") from None


def parse_listen_address(text: str) -> ListenAddress:
    host, separator, port_text = text.strip().rpartition(":")
    if not separator:
        raise ValueError("not host:port ([::1]:9000 for IPv6)")
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")):
            raise ValueError("the IPv6 address needs both brackets, as in [::1]:9000")
        host = _ipv6(host[1:-1])
    elif ":" in host:
        raise ValueError("an IPv6 address goes in brackets, as in [::1]:9000")
    else:
        try:
            host.encode("idna")  # as the resolver encodes the name it binds to
        except UnicodeError:
            raise ValueError(f"the host is {BAD_HOST}") from None
    return ListenAddress(host or "0.0.0.0", _port(port_text))


def _telemetry_path(text: str) -> str:
    if not re.fullmatch(r"/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*", text):
        raise ValueError("a path starts with / and holds no space, ? or #")
    if any(segment in (".", "..") for segment in text.split("/")):
        raise ValueError("a path holds no . or .. segment (clients resolve them before asking)")
    # http.server reads a request for //metrics as /metrics: the path is served as it will be asked.
    text = "/" + text.lstrip("/")
    if text == "/" or any(text == reserved or text.startswith(f"{reserved}/") for reserved in RESERVED_PATHS):
        raise ValueError(f"taken by the server: not /, nor {', '.join(RESERVED_PATHS)} or a path under them")
    return text


def _url_parts(text: str) -> SplitResult:
    if not text.strip():
        raise ValueError("empty")
    if text != text.strip() or any(ord(character) < 0x20 or ord(character) == 0x7F for character in text):
        raise ValueError("holds spaces or control characters at its ends or inside")
    try:
        return urlsplit(text)
    except ValueError:
        raise ValueError("the host is malformed (an IPv6 address goes whole in [ ])") from None


def _check_http_url(parts: SplitResult) -> None:
    if " " in parts.geturl():
        raise ValueError("a URL holds no spaces (write %20)")
    if "@" in parts.path + parts.query + parts.fragment:
        # A key there would otherwise be taken for a host or a path, and shown as one.
        raise ValueError("an @ after the host: in a user or password, write / ? # as %2F %3F %23")
    if not parts.hostname:
        raise ValueError(f"no host after {parts.scheme}://")
    if parts.netloc.rpartition("@")[2].startswith("["):
        _ipv6(unquote(parts.hostname).partition("%")[0])
    elif not host_is_usable(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"):
        raise ValueError(f"the host is {BAD_HOST}")
    try:
        parts.port  # noqa: B018  # raises on a port out of range or not a number
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None


def _feed_url(text: str) -> str:
    """An http(s) URL with a host, a file:// URL, or a plain path: anything else is a typo that would
    otherwise be read as a file name (and shown, key included, in every failed refresh)."""
    parts = _url_parts(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        _check_http_url(parts)
    elif scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError("a file URL holds an absolute path: file:///path/to/feed.kml")
    elif scheme:
        raise ValueError(
            f"unknown scheme {parts.scheme}://: use {', '.join(f'{s}://' for s in FEED_SCHEMES)} "
            "or a plain path (./ before a relative path with a colon)"
        )
    elif text.startswith("//") or "?" in text or secrets_of_url(text):
        raise ValueError("not a path, and no scheme: is http:// or https:// missing?")
    return text


def _bbox(text: str) -> BoundingBox:
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError("four numbers: west,south,east,north (degrees, WGS 84)")
    try:
        west, south, east, north = (float(part) for part in parts)
    except ValueError:
        raise ValueError("four numbers: west,south,east,north (degrees, WGS 84)") from None
    if not all(-180 <= longitude <= 180 for longitude in (west, east)):
        raise ValueError("a longitude (west, east) is outside -180 to 180")
    if not -90 <= south <= north <= 90:
        raise ValueError("south and north are latitudes from -90 to 90, south first")
    return BoundingBox(west, south, east, north)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers httpx or the fetch set from what it does: a configured value would break the exchange.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding"})


def _feed_header(text: str) -> tuple[str, str]:
    """'Name: value', as curl takes it. Errors never repeat the value: it is a key."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.fullmatch(name):
        raise ValueError("not 'Name: value' with a header name of letters, digits and -")
    if name.lower() in _RESERVED_HEADERS:
        raise ValueError(f"{name} is set by the HTTP client itself")
    if not value or any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        raise ValueError(f"the value of {name} is empty or holds control characters")
    return name, value


def _shown_header(text: str) -> str:
    name, colon, _ = text.partition(":")
    return f"{name.strip()[:60]}: {REDACTED}" if colon else REDACTED


def _readable_file(text: str) -> str:
    path = Path(text)
    if not path.is_file():
        raise ValueError("no such file")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ValueError(f"cannot be read: {error.strerror}") from None
    return text


def _operators(text: str) -> frozenset[str]:
    operators = frozenset(part.strip().upper() for part in text.split(",") if part.strip())
    if not operators or not all(re.fullmatch(r"[A-Z]{2}\*[A-Z0-9]{3}", operator) for operator in operators):
        raise ValueError("a comma list of OCPI parties, country code * party id, as in NL*ABC,BE*BEC")
    return operators


def _otlp_endpoint(text: str) -> str:
    """Checked here so that a typo is one line, not a traceback from the exporter; the SDK reads the
    variable itself. Without ://, it is host:port, which the gRPC exporter accepts."""
    parts = _url_parts(text)
    if "://" in text:
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"unknown scheme {parts.scheme}://: use http:// or https://")
        _check_http_url(parts)
    return text


def _grafana_url(text: str) -> str:
    parts = _url_parts(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("an http:// or https:// URL")
    _check_http_url(parts)
    return text


def _sdk_timeout(text: str) -> float:
    """An OTLP exporter's timeout: the SDK reads it with float(), in seconds, and fails on anything else."""
    return _number(0, _DAY_S)(text)


def _span_limit(text: str) -> int | None:
    """A span limit as the SDK reads it: a whole number from 0, or empty for no limit."""
    if not text.strip():
        return None
    return int(_count(0, 2**31 - 1, "")(text))


def _exact_choice(choices: Sequence[str]) -> Callable[[str], str]:
    """For a variable the SDK compares as written: neither case nor spaces are forgiven."""

    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"not one of {', '.join(choices)} (as written: lower case, no spaces)")
        return text

    return convert


def _propagators(text: str) -> str:
    """OTEL_PROPAGATORS as the API reads it, when first imported: each name an installed propagator, or none."""
    installed = {entry.name for entry in entry_points(group="opentelemetry_propagator")}
    for name in (part.strip() for part in text.split(",")):
        if name.lower() != "none" and name not in installed:
            raise ValueError(f"{name!r} is not an installed propagator: {', '.join(sorted(installed))} or none")
    return text


def _token(text: str) -> str:
    """A token as an HTTP header can carry it (the reason never holds the text: it is a secret)."""
    token = text.strip()
    if not token:
        raise ValueError("an empty token")
    if len(token) > 4096:
        raise ValueError("a token of over 4,096 characters")
    if not all(" " < character < "\x7f" for character in token):
        raise ValueError("a token of printable ASCII characters without spaces")
    return token


def _web_config(text: str) -> WebConfig:
    return load_web_config(Path(text))  # WebConfigError is a ValueError


@dataclass(frozen=True)
class Setting:
    """One setting. The default is text, converted like a value the user gave, so it meets the same
    bounds; None means unset (Config derives the value, as help_default says)."""

    dest: str
    flag: str | None
    variable: str | None
    default: str | Callable[[Mapping[str, str]], str] | None
    convert: Callable[[str], Any]
    help: str
    metavar: str | None = None
    help_default: str | None = None
    """What --help says of a default that is not plain text."""
    flag_value: str | None = None
    """For a flag that takes no value (--demo): the value it stands for."""
    secret: bool = False
    """The value may hold a secret: shown redacted in help and errors."""
    empty_is_a_value: bool = False
    """An OTEL_* variable that the SDK reads even when empty (and fails on): checked then too."""
    repeatable: bool = False
    """The flag may be given several times, the variable hold one value a line: the value is a tuple."""
    show: Callable[[str], str] | None = None
    """How a value is shown in errors, where redact_url does not fit."""
    hidden: bool = False
    """The whole value is a secret (a token): never shown."""

    def shown(self, text: str) -> str:
        if self.hidden:
            return REDACTED
        if self.show is not None:
            return self.show(text)
        return redact_url(_without_userinfo(text)) if self.secret else text


def _without_userinfo(text: str) -> str:
    """Everything from :// to the last @ replaced: a user or password holding a raw /, ? or # is not
    parsed as userinfo, and a refused URL must not show it all the same."""
    scheme, separator, rest = text.partition("://")
    userinfo, at, after = rest.rpartition("@")
    return f"{scheme}{separator}{REDACTED}@{after}" if separator and at and userinfo else text


def _otlp_when_an_endpoint_is_set(signal: str) -> Callable[[Mapping[str, str]], str]:
    def default(environ: Mapping[str, str]) -> str:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        return "otlp" if any(environ.get(variable, "").strip() for variable in endpoints) else "none"

    return default


SETTINGS = (
    Setting(
        "feed_url",
        "--feed.url",
        "FEED_URL",
        None,
        _feed_url,
        "the feed: http:// or https:// URL with a host, file:// URL or a plain path",
        metavar="URL",
        help_default=f"the public Chargy feed, {redact_url(DEFAULT_KML_URL)}",
        secret=True,
    ),
    Setting(
        "kml_url",
        "--kml-url",
        "KML_URL",
        None,
        _feed_url,
        "the feed's URL: an alias of --feed.url",
        metavar="URL",
        help_default="none",
        secret=True,
    ),
    Setting(
        "feed_format",
        "--feed.format",
        "CHARGY_FEED_FORMAT",
        "chargy-kml",
        _choice(FEED_FORMATS),
        f"the feed's format: {', '.join(FEED_FORMATS)} (OCPI Locations, 2.1.1 to 2.3, any network)",
        metavar="FORMAT",
    ),
    Setting(
        "feed_bbox",
        "--feed.bbox",
        "CHARGY_FEED_BBOX",
        None,
        _bbox,
        "ocpi, datex2, oicp: keep only the Locations (sites, EVSEs) inside this box, west,south,east,north in degrees",
        metavar="W,S,E,N",
        help_default="none: the whole network",
    ),
    Setting(
        "feed_token",
        "--feed.token",
        "CHARGY_FEED_TOKEN",
        None,
        _token,
        "sent as `Authorization: Token ...` on every page of the feed, to the feed's host only (never across a"
        " redirect or a next link to another host); a secret, never shown",
        metavar="TOKEN",
        help_default="none",
        hidden=True,
    ),
    Setting(
        "feed_token_encoding",
        "--feed.token-encoding",
        "CHARGY_FEED_TOKEN_ENCODING",
        "base64",
        _choice(("base64", "raw")),
        "how --feed.token is sent: base64 (OCPI 2.2.1's form) or raw (OCPI 2.1.1's, and feeds that want it as given)",
        metavar="ENCODING",
    ),
    Setting(
        "feed_operators",
        "--feed.operator",
        "CHARGY_FEED_OPERATOR",
        None,
        _operators,
        "ocpi: keep only the Locations of these parties, a comma list of CC*PARTY (NL*ABC)",
        metavar="PARTIES",
        help_default="none: every party",
    ),
    Setting(
        "feed_status_url",
        "--feed.status-url",
        "CHARGY_FEED_STATUS_URL",
        None,
        _feed_url,
        "datex2, oicp: the status publication (live states); --feed.url is then the static one",
        metavar="URL",
        help_default="none",
        secret=True,
    ),
    Setting(
        "feed_static_interval_s",
        "--feed.static-interval",
        "CHARGY_FEED_STATIC_INTERVAL",
        "86400",
        _number(1, 7 * _DAY_S),
        "datex2, oicp: time between fetches of the static part, 1 s to 7 days; asked conditionally when the "
        "server sent validators",
        metavar="SECONDS",
    ),
    Setting(
        "feed_headers",
        "--feed.header",
        "CHARGY_FEED_HEADER",
        None,
        _feed_header,
        "a header sent with every feed request, 'Name: value' (an API key), repeatable; the variable holds one a "
        "line. Values are secrets",
        metavar="'NAME: VALUE'",
        help_default="none",
        repeatable=True,
        show=_shown_header,
    ),
    Setting(
        "feed_client_cert",
        "--feed.client-cert",
        "CHARGY_FEED_CLIENT_CERT",
        None,
        _readable_file,
        "PEM certificate the feed's server authenticates this client by (Mobilithek machine access); needs "
        "--feed.client-key",
        metavar="FILE",
        help_default="none",
    ),
    Setting(
        "feed_client_key",
        "--feed.client-key",
        "CHARGY_FEED_CLIENT_KEY",
        None,
        _readable_file,
        "PEM private key of --feed.client-cert (unencrypted); its contents are never shown",
        metavar="FILE",
        help_default="none",
    ),
    Setting(
        "refresh_interval_s",
        "--refresh-interval",
        "CHARGY_REFRESH_INTERVAL",
        "300",
        _number(0.5, _DAY_S),
        "time between refreshes of the feed, 0.5 s to 1 day",
        metavar="SECONDS",
    ),
    Setting(
        "listen_address",
        "--web.listen-address",
        "CHARGY_LISTEN",
        "0.0.0.0:9000",
        parse_listen_address,
        "address of the HTTP server, [::1]:9000 for IPv6",
        metavar="HOST:PORT",
    ),
    Setting(
        "telemetry_path",
        "--web.telemetry-path",
        None,
        "/metrics",
        _telemetry_path,
        "path of the metrics; not /, /healthz, /readyz, /api, /static or a path under them",
        metavar="PATH",
    ),
    Setting(
        "web_config",
        "--web.config.file",
        None,
        None,
        _web_config,
        "TLS and basic auth for the HTTP endpoints, in the Prometheus exporter-toolkit format (/healthz stays open)",
        metavar="FILE",
        help_default="none",
    ),
    Setting(
        "web_max_connections",
        "--web.max-connections",
        "CHARGY_WEB_MAX_CONNECTIONS",
        "512",
        _count(1, 100_000, "connections"),
        "connections served at once, 1 to 100,000; one more is answered 503 (closed on TLS)",
        metavar="COUNT",
    ),
    Setting(
        "grafana_url",
        "--web.external-grafana-url",
        "CHARGY_GRAFANA_URL",
        None,
        _grafana_url,
        "Grafana's address, linked from the status page",
        metavar="URL",
        help_default="none: no link",
    ),
    Setting(
        "max_staleness_s",
        "--max-staleness",
        "CHARGY_MAX_STALENESS",
        None,
        _number(0.5, 7 * _DAY_S),
        "age after which the connector series are withdrawn, 0.5 s to 7 days",
        metavar="SECONDS",
        help_default="3 x the refresh interval",
    ),
    Setting(
        "fetch_timeout_s",
        "--fetch-timeout",
        "CHARGY_FETCH_TIMEOUT",
        "30",
        _number(0.1, 10 * _MINUTE_S),
        "bound on one whole fetch of the feed, 0.1 s to 10 minutes",
        metavar="SECONDS",
    ),
    Setting(
        "max_bytes",
        "--max-bytes",
        "CHARGY_MAX_BYTES",
        str(DEFAULT_MAX_BYTES),
        _count(1, 1_000_000_000, "bytes"),
        "largest feed accepted, after decompression, 1 to 1,000,000,000",
        metavar="BYTES",
    ),
    Setting(
        "max_connectors",
        "--max-connectors",
        "CHARGY_MAX_CONNECTORS",
        str(DEFAULT_MAX_CONNECTORS),
        _count(1_000, 10_000_000, "connectors"),
        "largest network accepted, 1,000 to 10,000,000; placemarks (half as many), XML elements "
        "(6 times as many), attributes and label characters (100 times as many) are bounded in proportion",
        metavar="COUNT",
    ),
    Setting(
        "max_shrink",
        "--max-shrink",
        "CHARGY_MAX_SHRINK",
        "0.5",
        _number(0.01, 1, ""),
        "fraction of the last good snapshot's connectors a refresh may lose before it is refused as `shrunk` "
        "(accepted the 3rd time in a row), 0.01 to 1; 1 turns the guard off",
        metavar="FRACTION",
    ),
    Setting(
        "created_series",
        None,
        "PROMETHEUS_DISABLE_CREATED_SERIES",
        "false",
        _created_series,
        "true leaves the usage counters' _created lines out of OpenMetrics answers",
    ),
    Setting(
        "demo",
        "--demo",
        "CHARGY_DEMO",
        "false",
        _boolean,
        "serve a generated sample network whose states move, no network needed; excludes --feed.url (--kml-url) "
        "and --feed.format ocpi",
        help_default="off; CHARGY_DEMO=1 turns it on",
        flag_value="true",
    ),
    Setting(
        "log_level",
        "--log.level",
        "CHARGY_LOG_LEVEL",
        "info",
        _choice(LOG_LEVELS),
        f"least severe level logged: {', '.join(LOG_LEVELS)}",
        metavar="LEVEL",
    ),
    Setting(
        "log_format",
        "--log.format",
        "CHARGY_LOG_FORMAT",
        "logfmt",
        _choice(LOG_FORMATS),
        f"log line format: {', '.join(LOG_FORMATS)}",
        metavar="FORMAT",
    ),
    Setting(
        "metrics_exporters",
        "--metrics-exporter",
        "OTEL_METRICS_EXPORTER",
        "prometheus",
        _exporter_list(METRICS_EXPORTERS),
        f"where metrics go, comma-separated: {', '.join(METRICS_EXPORTERS)}",
        metavar="NAMES",
    ),
    Setting(
        "otlp_detail",
        "--otlp.detail",
        "CHARGY_OTLP_DETAIL",
        "connector",
        _choice(OTLP_DETAILS),
        "what OTLP pushes: connector (every series), station (stations and network totals), network "
        "(network totals and feed health); /metrics keeps every series",
        metavar="LEVEL",
    ),
    Setting(
        "otlp_max_request_bytes",
        "--otlp.max-request-bytes",
        "CHARGY_OTLP_MAX_REQUEST_BYTES",
        None,
        _count(65_536, 1_000_000_000, "bytes"),
        "largest OTLP metrics request before compression, 65,536 to 1,000,000,000; an export is split to stay under it",
        metavar="BYTES",
        help_default="the Collector's limit: 4194304 on gRPC, 20971520 on HTTP",
    ),
    Setting(
        "traces_exporters",
        "--traces-exporter",
        "OTEL_TRACES_EXPORTER",
        _otlp_when_an_endpoint_is_set("TRACES"),
        _exporter_list(TRACES_EXPORTERS),
        f"where refresh traces go: {', '.join(TRACES_EXPORTERS)}",
        metavar="NAMES",
        help_default="otlp when an OTLP endpoint is set, else none",
    ),
    Setting(
        "logs_exporters",
        "--logs-exporter",
        "OTEL_LOGS_EXPORTER",
        _otlp_when_an_endpoint_is_set("LOGS"),
        _exporter_list(LOGS_EXPORTERS),
        f"where the state-change events go as OpenTelemetry log records: {', '.join(LOGS_EXPORTERS)}",
        metavar="NAMES",
        help_default="otlp when an OTLP endpoint is set, else none",
    ),
    Setting(
        "events_max",
        "--events.max",
        "CHARGY_EVENTS_MAX",
        str(DEFAULT_MAX_EVENTS),
        _count(100, 10_000_000, "events"),
        f"state-change events kept in memory for the page and /api/v1/events, 100 to 10,000,000; "
        f"about {EVENT_BYTES} bytes each ({DEFAULT_MAX_EVENTS * EVENT_BYTES / 2**20:.0f} MiB at the default)",
        metavar="COUNT",
    ),
    Setting("otlp_protocol", None, "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", _choice(OTLP_PROTOCOLS), "OTLP protocol"),
    Setting(
        "otlp_metrics_protocol",
        None,
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        None,
        _choice(OTLP_PROTOCOLS),
        "OTLP protocol of metrics",
    ),
    Setting(
        "otlp_traces_protocol",
        None,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        None,
        _choice(OTLP_PROTOCOLS),
        "OTLP protocol of traces",
    ),
    Setting(
        "otlp_logs_protocol",
        None,
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        None,
        _choice(OTLP_PROTOCOLS),
        "OTLP protocol of logs",
    ),
    Setting("otlp_endpoint", None, "OTEL_EXPORTER_OTLP_ENDPOINT", None, _otlp_endpoint, "OTLP endpoint", secret=True),
    Setting(
        "otlp_metrics_endpoint",
        None,
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        None,
        _otlp_endpoint,
        "OTLP endpoint",
        secret=True,
    ),
    Setting(
        "otlp_traces_endpoint",
        None,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        None,
        _otlp_endpoint,
        "OTLP endpoint",
        secret=True,
    ),
    Setting(
        "otlp_logs_endpoint",
        None,
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        None,
        _otlp_endpoint,
        "OTLP endpoint",
        secret=True,
    ),
    Setting(
        "metric_export_interval_ms",
        None,
        "OTEL_METRIC_EXPORT_INTERVAL",
        "60000",  # the SDK's
        _number(1, _DAY_S * 1000, "ms"),
        "OTLP push interval",
    ),
    Setting(
        "metric_export_timeout_ms",
        None,
        "OTEL_METRIC_EXPORT_TIMEOUT",
        None,
        _number(1, _DAY_S * 1000, "ms"),
        "OTLP collection and export timeout",
    ),
    # Variables only the SDK reads: checked here, so that a typo is one line and exit code 2 rather than a
    # traceback from an exporter or the tracer provider; the SDK still reads each itself.
    Setting(
        "otlp_timeout_s",
        None,
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        None,
        _sdk_timeout,
        "OTLP export timeout, seconds",
        empty_is_a_value=True,
    ),
    Setting(
        "otlp_metrics_timeout_s",
        None,
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        None,
        _sdk_timeout,
        "OTLP export timeout, seconds",
        empty_is_a_value=True,
    ),
    Setting(
        "otlp_traces_timeout_s",
        None,
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        None,
        _sdk_timeout,
        "OTLP export timeout, seconds",
        empty_is_a_value=True,
    ),
    Setting(
        "otlp_logs_timeout_s",
        None,
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
        None,
        _sdk_timeout,
        "OTLP export timeout, seconds",
        empty_is_a_value=True,
    ),
    Setting(
        "otlp_compression",
        None,
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        None,
        _choice(OTLP_COMPRESSIONS),
        "OTLP compression",
        empty_is_a_value=True,
    ),
    Setting(
        "otlp_metrics_compression",
        None,
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        None,
        _choice(OTLP_COMPRESSIONS),
        "OTLP compression",
        empty_is_a_value=True,
    ),
    Setting(
        "otlp_traces_compression",
        None,
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        None,
        _choice(OTLP_COMPRESSIONS),
        "OTLP compression",
        empty_is_a_value=True,
    ),
    Setting(
        "otlp_logs_compression",
        None,
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        None,
        _choice(OTLP_COMPRESSIONS),
        "OTLP compression",
        empty_is_a_value=True,
    ),
    *(
        Setting(variable.lower(), None, variable, None, _span_limit, "span limit", empty_is_a_value=True)
        for variable in SPAN_LIMIT_VARIABLES
    ),
    Setting("bsp_max_queue_size", None, "OTEL_BSP_MAX_QUEUE_SIZE", "2048", _count(1, 2**31 - 1, "spans"), "span queue"),
    Setting(
        "bsp_max_export_batch_size",
        None,
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "512",
        _count(1, 2**31 - 1, "spans"),
        "span export batch",
    ),
    Setting("bsp_schedule_delay_ms", None, "OTEL_BSP_SCHEDULE_DELAY", None, _count(1, 2**31 - 1, "ms"), "span delay"),
    Setting("bsp_export_timeout_ms", None, "OTEL_BSP_EXPORT_TIMEOUT", None, _count(0, 2**31 - 1, "ms"), "span export"),
    Setting(
        "blrp_max_queue_size", None, "OTEL_BLRP_MAX_QUEUE_SIZE", "2048", _count(1, 2**31 - 1, "records"), "event queue"
    ),
    Setting(
        "blrp_max_export_batch_size",
        None,
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "512",
        _count(1, 2**31 - 1, "records"),
        "event export batch",
    ),
    Setting(
        "blrp_schedule_delay_ms", None, "OTEL_BLRP_SCHEDULE_DELAY", None, _count(1, 2**31 - 1, "ms"), "event delay"
    ),
    Setting(
        "blrp_export_timeout_ms", None, "OTEL_BLRP_EXPORT_TIMEOUT", None, _count(0, 2**31 - 1, "ms"), "event export"
    ),
    Setting("propagators", None, "OTEL_PROPAGATORS", None, _propagators, "propagators", empty_is_a_value=True),
    Setting(
        "metrics_exemplar_filter",
        None,
        "OTEL_METRICS_EXEMPLAR_FILTER",
        None,
        _exact_choice(("trace_based", "always_on", "always_off")),
        "exemplar filter",
        empty_is_a_value=True,
    ),
)
_FLAGS = ("-h", "--help", "--version", *(setting.flag for setting in SETTINGS if setting.flag))
_VARIABLES = tuple(setting.variable for setting in SETTINGS if setting.variable)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"otel-chargy {__version__}")
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        default = setting.help_default or setting.shown(str(setting.default))
        environment = f"env {setting.variable}; " if setting.variable else ""
        # SUPPRESS: an option not given sets nothing, so `check`'s options cannot overwrite those given before it.
        options: dict[str, Any] = {"dest": setting.dest, "default": argparse.SUPPRESS}
        if setting.flag_value is not None:
            options |= {"action": "store_const", "const": setting.flag_value}
        elif setting.repeatable:
            options |= {"action": "append", "metavar": setting.metavar}
        else:
            options |= {"metavar": setting.metavar}
        help_text = f"{setting.help} ({environment}default {default})"
        parser.add_argument(setting.flag, help=help_text.replace("%", "%%"), **options)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="otel-chargy",
        description="Serves the live state of the Chargy EV-charging network as OpenTelemetry metrics.",
        allow_abbrev=False,
    )
    _add_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="{check}")
    check = commands.add_parser(
        "check",
        help="parse a feed once and report what it holds",
        description="Parse a feed once and report stations, devices, connectors by state and parse issues. "
        "Exit 0 if the feed is usable, 1 if not. Every option applies, before or after `check`.",
        allow_abbrev=False,
    )
    check.add_argument("source", help="URL or file of the feed")
    _add_options(check)
    return parser


def _refuse_unknown_options(argv: Sequence[str]) -> None:
    """argparse reads `--misspelt VALUE` as an unknown option followed by a bad subcommand, and says
    only the latter: every option is checked first, so that the error names it."""
    for token in argv:
        if token == "--":
            return
        name = token.partition("=")[0]
        if not token.startswith("-") or name in _FLAGS or _is_number(token):
            continue
        close = difflib.get_close_matches(name, _FLAGS, n=1)
        raise ConfigError(f"unrecognized argument {name}" + (f" (did you mean {close[0]}?)" if close else ""))


def _refuse_unknown_variables(environ: Mapping[str, str]) -> None:
    for variable in sorted(environ):
        if variable.startswith("CHARGY_") and variable not in _VARIABLES:
            close = difflib.get_close_matches(variable, _VARIABLES, n=1)
            raise ConfigError(f"unknown variable {variable}" + (f" (did you mean {close[0]}?)" if close else ""))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _environment_value(environ: Mapping[str, str], setting: Setting) -> str | None:
    assert setting.variable is not None
    value = environ.get(setting.variable)
    # The OpenTelemetry specification reads an empty OTEL_* variable as unset; ours are errors when empty.
    if (
        value is not None
        and setting.variable.startswith("OTEL_")
        and not value.strip()
        and not setting.empty_is_a_value
    ):
        return None
    return value


def _header_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The OTLP headers' values, secrets to redact. An entry that is not key=value is refused: the SDK
    would log it whole, and it is most likely a bare API key."""
    values: set[str] = set()
    for variable in (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    ):
        for pair in environ.get(variable, "").split(","):
            if pair.strip() and "=" not in pair:
                raise ConfigError(f"{variable}: an entry is not key=value (not shown: header values are secrets)")
            _, _, value = pair.partition("=")
            if value := value.strip():
                values |= {value, unquote(value)}
    return tuple(values)


def _read(
    settings: Sequence[Setting], given: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each setting's value and the name it was given by: flag, else variable, else default."""
    values: dict[str, Any] = {}
    written_as: dict[str, str] = {}
    for setting in settings:
        name = setting.flag or setting.variable or setting.dest
        text: Any
        if setting.dest in given:
            text = given[setting.dest]
        elif setting.variable and (text := _environment_value(environ, setting)) is not None:
            name = setting.variable
        else:
            text = setting.default(environ) if callable(setting.default) else setting.default
        written_as[setting.dest] = name
        if text is None:
            values[setting.dest] = None
            continue
        texts: list[str] = (
            (list(text) if isinstance(text, list) else [line for line in text.splitlines() if line.strip()])
            if setting.repeatable
            else [text]
        )
        try:
            converted = [setting.convert(entry) for entry in texts]
        except ValueError as error:
            shown = next(setting.shown(entry) for entry in texts if _fails(setting, entry))
            raise ConfigError(f"{name} {shown!r}: {error}") from None
        values[setting.dest] = tuple(converted) if setting.repeatable else converted[0]
    return values, written_as


def _fails(setting: Setting, text: str) -> bool:
    try:
        setting.convert(text)
    except ValueError:
        return True
    return False


def _one_feed_url(values: Mapping[str, Any], written_as: Mapping[str, str]) -> tuple[str, str] | None:
    """The feed's URL and the setting that gave it, from --feed.url or its alias --kml-url; None when
    neither is given."""
    given = [(dest, values[dest]) for dest in ("feed_url", "kml_url") if values[dest] is not None]
    if len(given) == 2 and given[0][1] != given[1][1]:
        raise ConfigError(
            f"{written_as['feed_url']} and {written_as['kml_url']} name two different feeds: --kml-url is an alias"
            " of --feed.url, give one"
        )
    return given[0] if given else None


def _check_sdk_combinations(values: Mapping[str, Any], written_as: Mapping[str, str]) -> None:
    """What the SDK refuses of variables that are valid alone: its gRPC exporters take gzip or nothing, and
    a span export batch must fit the span queue."""
    for signal in ("metrics", "traces", "logs"):
        exporters = values[f"{signal}_exporters"]
        protocol = values[f"otlp_{signal}_protocol"] or values["otlp_protocol"]
        if "otlp" not in exporters or protocol != "grpc":
            continue
        dest = f"otlp_{signal}_compression" if values[f"otlp_{signal}_compression"] else "otlp_compression"
        if values[dest] not in (None, "gzip"):
            raise ConfigError(
                f"{written_as[dest]} {values[dest]!r}: the gRPC exporter takes gzip, or the variable unset for none"
            )
    for processor, queued in (("bsp", "span"), ("blrp", "event")):
        batch, queue = f"{processor}_max_export_batch_size", f"{processor}_max_queue_size"
        if values[batch] > values[queue]:
            raise ConfigError(
                f"{written_as[batch]} {values[batch]}: above {written_as[queue]} {values[queue]}, the {queued} queue "
                "it is taken from"
            )


def _client_cert(values: Mapping[str, Any], written_as: Mapping[str, str]) -> tuple[str, str] | None:
    """Both files or neither; a pair that TLS cannot load is refused now, not at the first refresh."""
    cert, key = values["feed_client_cert"], values["feed_client_key"]
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = (
            ("feed_client_cert", "feed_client_key") if key is None else ("feed_client_key", "feed_client_cert")
        )
        raise ConfigError(f"{written_as[given]} needs {written_as[missing]} (or its variable) too")
    context = ssl.create_default_context()
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or type(error).__name__
        # Not the library's message: it may quote the file's contents.
        raise ConfigError(
            f"{written_as['feed_client_cert']} and {written_as['feed_client_key']}: not a PEM certificate and its"
            f" unencrypted private key ({str(reason).replace('_', ' ').lower()})"
        ) from None
    return cert, key


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Reads the settings; an invalid one raises ConfigError, whose message is one line naming it."""
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else list(argv)
    _refuse_unknown_options(argv)
    _refuse_unknown_variables(environ)
    args = vars(build_parser().parse_args(argv))
    values, written_as = _read(SETTINGS, args, environ)
    _check_sdk_combinations(values, written_as)
    feed_url = _one_feed_url(values, written_as)
    if values["demo"] and feed_url is not None:
        raise ConfigError(
            f"{written_as['demo']} and {written_as[feed_url[0]]} exclude each other: the demo serves a generated "
            "network, not a feed"
        )
    feed_format = values["feed_format"]
    if feed_format != "chargy-kml":
        if values["demo"]:
            raise ConfigError(
                f"{written_as['demo']} serves a generated Chargy KML network: not with {written_as['feed_format']}"
                f" {feed_format}"
            )
        if feed_url is None and args.get("source") is None:
            raise ConfigError(
                f"{written_as['feed_format']} {feed_format} needs the feed's URL: --feed.url (env FEED_URL); the"
                " default is the Chargy KML feed"
            )
    if values["feed_bbox"] is not None and feed_format == "chargy-kml":
        raise ConfigError(f"{written_as['feed_bbox']} filters an OCPI, DATEX II or OICP feed: not {feed_format}")
    if values["feed_operators"] is not None and feed_format != "ocpi":
        raise ConfigError(f"{written_as['feed_operators']} filters an OCPI feed: it needs --feed.format ocpi")
    if feed_format in PAIRED_FORMATS:
        if values["feed_status_url"] is None and args.get("source") is None:
            raise ConfigError(
                f"{written_as['feed_format']} {feed_format} is published in two parts: --feed.url names the static"
                " one, --feed.status-url (env CHARGY_FEED_STATUS_URL) the live statuses"
            )
    elif values["feed_status_url"] is not None:
        raise ConfigError(
            f"{written_as['feed_status_url']} names the status part of a datex2 or oicp feed: not {feed_format}"
        )
    client_cert = _client_cert(values, written_as)
    check_source: str | None = args.get("source")
    if check_source is not None:
        try:
            _feed_url(check_source)
        except ValueError as error:
            raise ConfigError(f"check source {redact_url(check_source)!r}: {error}") from None
    refresh_interval_s: float = values["refresh_interval_s"]
    max_staleness_s: float | None = values["max_staleness_s"]
    return Config(
        feed_url=feed_url[1] if feed_url is not None else DEFAULT_KML_URL,
        feed_format=values["feed_format"],
        feed_bbox=values["feed_bbox"],
        feed_operators=values["feed_operators"] or frozenset(),
        feed_status_url=values["feed_status_url"],
        feed_static_interval_s=values["feed_static_interval_s"],
        feed_headers=values["feed_headers"] or (),
        feed_client_cert=client_cert,
        feed_token=values["feed_token"],
        feed_token_encoding=values["feed_token_encoding"],
        refresh_interval_s=refresh_interval_s,
        listen_address=values["listen_address"],
        telemetry_path=values["telemetry_path"],
        max_staleness_s=max_staleness_s if max_staleness_s is not None else 3 * refresh_interval_s,
        fetch_timeout_s=values["fetch_timeout_s"],
        max_bytes=values["max_bytes"],
        max_connectors=values["max_connectors"],
        demo=values["demo"],
        log_level=values["log_level"],
        log_format=values["log_format"],
        metrics_exporters=values["metrics_exporters"],
        traces_exporters=values["traces_exporters"],
        logs_exporters=values["logs_exporters"],
        otlp_metrics_protocol=values["otlp_metrics_protocol"] or values["otlp_protocol"],
        otlp_traces_protocol=values["otlp_traces_protocol"] or values["otlp_protocol"],
        otlp_logs_protocol=values["otlp_logs_protocol"] or values["otlp_protocol"],
        # A push interval longer than the refresh interval would skip snapshots; the SDK's default otherwise.
        metric_export_interval_s=min(values["metric_export_interval_ms"] / 1000, refresh_interval_s),
        # The SDK's 30 s bound on a collection was passed at 10 times today's network on a busy 2-core host,
        # and a collection cut short exports nothing; it may take up to the interval: the next one waits anyway.
        metric_export_timeout_s=(
            values["metric_export_timeout_ms"] / 1000
            if values["metric_export_timeout_ms"] is not None
            else max(30.0, min(values["metric_export_interval_ms"] / 1000, refresh_interval_s))
        ),
        otlp_detail=values["otlp_detail"],
        otlp_max_request_bytes=values["otlp_max_request_bytes"],
        otlp_header_values=_header_values(environ),
        web_config=values["web_config"] or WebConfig(),
        web_max_connections=values["web_max_connections"],
        max_shrink=values["max_shrink"],
        events_max=values["events_max"],
        grafana_url=values["grafana_url"],
        created_series=values["created_series"],
        check_source=check_source,
        written_as=written_as,
    )
