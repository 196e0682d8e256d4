"""Every setting, read in one place: flags, with environment variables as fallbacks."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote

from otel_chargy import __version__
from otel_chargy.parse import DEFAULT_MAX_CONNECTORS
from otel_chargy.redact import redact_url
from otel_chargy.webconfig import WebConfig, WebConfigError, load_web_config

# The public URL from the open-data catalogue; the provider may change it, so it is configuration.
DEFAULT_KML_URL = (
    "https://my.chargy.lu/b2bev-external-services/resources/kml?API-KEY=486ac6e4-93b8-4369-9c6a-28f7c4e1a81f"
)
DEFAULT_REFRESH_INTERVAL_S = 300.0
DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9000"
DEFAULT_FETCH_TIMEOUT_S = 30.0
DEFAULT_MAX_BYTES = 50_000_000
LOG_LEVELS = ("debug", "info", "warn", "error")
METRICS_EXPORTERS = ("prometheus", "otlp", "console", "none")
TRACES_EXPORTERS = ("otlp", "console", "none")
OTLP_PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_METRIC_EXPORT_INTERVAL_MS = 60_000  # the SDK's
LOG_FORMATS = ("logfmt", "json")


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Config:
    kml_url: str = field(repr=False)  # holds the API key
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
    metrics_exporters: tuple[str, ...] = ("prometheus",)
    traces_exporters: tuple[str, ...] = ()
    otlp_metrics_protocol: str = "grpc"
    otlp_traces_protocol: str = "grpc"
    metric_export_interval_s: float = 60.0
    otlp_detail: str = "connector"
    """What OTLP pushes: connector, station or network (metrics.Detail)."""
    otlp_max_request_bytes: int | None = None
    """Largest OTLP metrics request; None: the Collector's default limit for the protocol."""
    """The OTLP push interval: OTEL_METRIC_EXPORT_INTERVAL, at most the refresh interval."""
    otlp_header_values: tuple[str, ...] = field(default=(), repr=False)
    """Values of the OTLP headers (vendor API keys): secrets to redact."""
    web_config: WebConfig = field(default_factory=WebConfig)
    """TLS and basic auth from --web.config.file."""
    check_source: str | None = None
    """Set for `otel-chargy check SOURCE`: parse once, report, exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line that names the setting and the reason: no usage dump, no traceback.
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(minimum: float, cast: Callable[[str], float] = float) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value >= minimum:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"{text!r} is below the minimum of {minimum:g}")
        return value

    return convert


def _count(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        return int(_number(minimum, int)(text.replace("_", "")))

    return convert


def parse_listen_address(text: str) -> ListenAddress:
    host, separator, port_text = text.rpartition(":")
    if not separator:
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port")
    host = host.removeprefix("[").removesuffix("]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} has no valid port")
    return ListenAddress(host or "0.0.0.0", int(port_text))


def _telemetry_path(text: str) -> str:
    if not text.startswith("/") or text == "/":
        raise argparse.ArgumentTypeError(f"{text!r} must start with / and not be the landing page /")
    return text


def _exporter_list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def convert(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}, comma-separated")
        return tuple(name for name in names if name != "none")

    return convert


def _otlp_protocol(environ: Mapping[str, str], signal: str) -> str:
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if value := environ.get(variable, "").strip().lower():
            if value not in OTLP_PROTOCOLS:
                raise argparse.ArgumentTypeError(f"{variable}: {value!r} is not one of {', '.join(OTLP_PROTOCOLS)}")
            return value
    return "grpc"


def _environment_number(environ: Mapping[str, str], variable: str, default: float) -> float:
    try:
        return _number(1)(environ.get(variable, str(default)))
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{variable}: {error}") from None


def _header_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    values: set[str] = set()
    for variable in (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ):
        for pair in environ.get(variable, "").split(","):
            _, _, value = pair.partition("=")
            if value := value.strip():
                values |= {value, unquote(value)}
    return tuple(values)


def _add_fetch_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument(
        "--fetch-timeout",
        type=_number(0.1),
        default=environ.get("CHARGY_FETCH_TIMEOUT", str(DEFAULT_FETCH_TIMEOUT_S)),
        metavar="SECONDS",
        help="bound on one whole fetch of the feed (env CHARGY_FETCH_TIMEOUT; default %(default)s)",
    )
    parser.add_argument(
        "--max-bytes",
        type=_count(1),
        default=environ.get("CHARGY_MAX_BYTES", str(DEFAULT_MAX_BYTES)),
        metavar="BYTES",
        help="largest feed accepted, after decompression (env CHARGY_MAX_BYTES; default %(default)s)",
    )
    parser.add_argument(
        "--max-connectors",
        type=_count(1_000),
        default=environ.get("CHARGY_MAX_CONNECTORS", str(DEFAULT_MAX_CONNECTORS)),
        metavar="COUNT",
        help="largest network accepted; placemarks (half as many), XML elements (6 times as many) and "
        "attributes are bounded in proportion (env CHARGY_MAX_CONNECTORS; default %(default)s)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=LOG_LEVELS,
        default=environ.get("CHARGY_LOG_LEVEL", "info").lower(),
        help="least severe level logged (env CHARGY_LOG_LEVEL; default %(default)s)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        default=environ.get("CHARGY_LOG_FORMAT", "logfmt").lower(),
        help="log line format (env CHARGY_LOG_FORMAT; default %(default)s)",
    )


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="otel-chargy",
        description="Serves the live state of the Chargy EV-charging network as OpenTelemetry metrics.",
    )
    parser.add_argument("--version", action="version", version=f"otel-chargy {__version__}")
    parser.add_argument(
        "--kml-url",
        default=environ.get("KML_URL", DEFAULT_KML_URL),
        metavar="URL",
        help="the feed: http(s)://, file:// or a path (env KML_URL; default: the public Chargy feed, "
        f"{redact_url(DEFAULT_KML_URL)})",
    )
    parser.add_argument(
        "--refresh-interval",
        type=_number(0.5),
        default=environ.get("CHARGY_REFRESH_INTERVAL", str(DEFAULT_REFRESH_INTERVAL_S)),
        metavar="SECONDS",
        help="time between refreshes of the feed (env CHARGY_REFRESH_INTERVAL; default %(default)s)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        type=parse_listen_address,
        default=environ.get("CHARGY_LISTEN", DEFAULT_LISTEN_ADDRESS),
        metavar="HOST:PORT",
        help="address of the HTTP server, [::1]:9000 for IPv6 (env CHARGY_LISTEN; default %(default)s)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        type=_telemetry_path,
        default="/metrics",
        metavar="PATH",
        help="path of the metrics (default %(default)s)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="FILE",
        help="TLS and basic auth for the HTTP endpoints, in the Prometheus exporter-toolkit format "
        "(/healthz stays open)",
    )
    parser.add_argument(
        "--max-staleness",
        type=_number(0.5),
        default=environ.get("CHARGY_MAX_STALENESS"),
        metavar="SECONDS",
        help="age after which the connector series are withdrawn (env CHARGY_MAX_STALENESS; "
        "default 3 x the refresh interval)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        default=environ.get("CHARGY_DEMO", "") in ("1", "true", "yes"),
        help="serve a generated sample network whose states move, no network needed (env CHARGY_DEMO=1)",
    )
    has_otlp_endpoint = any(
        environ.get(variable) for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    parser.add_argument(
        "--metrics-exporter",
        dest="metrics_exporters",
        type=_exporter_list(METRICS_EXPORTERS),
        default=environ.get("OTEL_METRICS_EXPORTER", "prometheus"),
        metavar="NAMES",
        help=f"where metrics go, comma-separated: {', '.join(METRICS_EXPORTERS)} "
        "(env OTEL_METRICS_EXPORTER; default %(default)s)",
    )
    parser.add_argument(
        "--otlp.detail",
        dest="otlp_detail",
        choices=("connector", "station", "network"),
        default=environ.get("CHARGY_OTLP_DETAIL", "connector").lower(),
        help="what OTLP pushes: connector (every series), station (stations and network totals), network "
        "(network totals and feed health); /metrics keeps every series (env CHARGY_OTLP_DETAIL; default %(default)s)",
    )
    parser.add_argument(
        "--otlp.max-request-bytes",
        dest="otlp_max_request_bytes",
        type=_count(65_536),
        default=environ.get("CHARGY_OTLP_MAX_REQUEST_BYTES"),
        metavar="BYTES",
        help="largest OTLP metrics request, before compression; an export is split to stay under it "
        "(env CHARGY_OTLP_MAX_REQUEST_BYTES; default the Collector's limit: 4194304 on gRPC, 20971520 on HTTP)",
    )
    parser.add_argument(
        "--traces-exporter",
        dest="traces_exporters",
        type=_exporter_list(TRACES_EXPORTERS),
        default=environ.get("OTEL_TRACES_EXPORTER", "otlp" if has_otlp_endpoint else "none"),
        metavar="NAMES",
        help=f"where refresh traces go: {', '.join(TRACES_EXPORTERS)} (env OTEL_TRACES_EXPORTER; "
        "default otlp when an OTLP endpoint is set, else none)",
    )
    _add_fetch_options(parser, environ)
    commands = parser.add_subparsers(dest="command", metavar="{check}")
    check = commands.add_parser(
        "check",
        help="parse a feed once and report what it holds",
        description="Parse a feed once and report "
        "stations, devices, connectors by state and parse issues. Exit 0 if the feed is usable, 1 if not.",
    )
    check.add_argument("source", help="URL or file of the feed")
    _add_fetch_options(check, environ)
    return parser


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Reads the settings; an invalid one ends the process with exit code 2 and one line saying why."""
    environ = os.environ if environ is None else environ
    parser = build_parser(environ)
    args = parser.parse_args(argv)
    refresh_interval_s: float = args.refresh_interval
    try:
        otlp_metrics_protocol = _otlp_protocol(environ, "METRICS")
        otlp_traces_protocol = _otlp_protocol(environ, "TRACES")
        export_interval_ms = _environment_number(
            environ, "OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_METRIC_EXPORT_INTERVAL_MS
        )
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    web_config = WebConfig()
    if args.web_config_file is not None:
        try:
            web_config = load_web_config(args.web_config_file)
        except WebConfigError as error:
            parser.error(f"--web.config.file {args.web_config_file}: {error}")
    max_staleness_s: float = args.max_staleness if args.max_staleness is not None else 3 * refresh_interval_s
    return Config(
        kml_url=args.kml_url,
        refresh_interval_s=refresh_interval_s,
        listen_address=args.listen_address,
        telemetry_path=args.telemetry_path,
        max_staleness_s=max_staleness_s,
        fetch_timeout_s=args.fetch_timeout,
        max_bytes=args.max_bytes,
        max_connectors=args.max_connectors,
        demo=args.demo,
        log_level=args.log_level,
        log_format=args.log_format,
        metrics_exporters=args.metrics_exporters,
        traces_exporters=args.traces_exporters,
        otlp_metrics_protocol=otlp_metrics_protocol,
        otlp_traces_protocol=otlp_traces_protocol,
        otlp_detail=args.otlp_detail,
        otlp_max_request_bytes=args.otlp_max_request_bytes,
        # A push interval longer than the refresh interval would skip snapshots; the SDK's default otherwise.
        metric_export_interval_s=min(export_interval_ms / 1000, refresh_interval_s),
        otlp_header_values=_header_values(environ),
        web_config=web_config,
        check_source=args.source if args.command == "check" else None,
    )
