"""The feed's format, chosen in one place: how it is fetched and which parser reads it. Nothing after
the parse step knows the format: every parser yields the same Snapshot."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from functools import partial

from opentelemetry import trace

from otel_chargy.config import PAIRED_FORMATS, Config
from otel_chargy.fetch import ACCEPT, OCPI_ACCEPT, FeedAccess, FeedSource, open_source
from otel_chargy.livetable import LiveTable, Relevance, StaticTable, StatusUpdate, TableOptions
from otel_chargy.model import Snapshot
from otel_chargy.paired import PairedFeed
from otel_chargy.parse import ISSUE_KINDS, SizeBounds, parse_kml
from otel_chargy.parse_datex2 import (
    DATEX2_ISSUE_KINDS,
    DATEX2_STATUSES,
    parse_datex2_status,
    parse_datex2_table,
)
from otel_chargy.parse_ocpi import OCPI_ISSUE_KINDS, OcpiOptions, parse_ocpi
from otel_chargy.parse_oicp import (
    OICP_ISSUE_KINDS,
    OICP_STATUSES,
    parse_oicp_data,
    parse_oicp_status,
)

Parser = Callable[[bytes], Snapshot]
# DATEX II comes as JSON or XML; OICP as JSON.
DATEX2_ACCEPT = "application/json, application/xml;q=0.9, */*;q=0.1"


def feed_parser(config: Config) -> Parser:
    bounds = SizeBounds(config.max_connectors)
    if config.feed_format == "ocpi":
        options = OcpiOptions(bounds, config.max_bytes, config.feed_bbox, config.feed_operators)
        return partial(parse_ocpi, options=options)
    return partial(parse_kml, bounds=bounds)


def feed_access(config: Config) -> FeedAccess | None:
    if not config.feed_headers and config.feed_client_cert is None:
        return None
    return FeedAccess(dict(config.feed_headers), config.feed_client_cert)


def parse_issue_kinds(config: Config) -> dict[str, str]:
    """The parse issues the feed's parser can meet, and what each means."""
    return {
        "ocpi": OCPI_ISSUE_KINDS,
        "datex2": DATEX2_ISSUE_KINDS,
        "oicp": OICP_ISSUE_KINDS,
    }.get(config.feed_format, ISSUE_KINDS)


def open_feed(config: Config, url: str, tracer: trace.Tracer, *, propagate_trace_context: bool = False) -> FeedSource:
    """A source for the feed at `url`: an OCPI feed is asked for JSON and followed through its pages."""
    ocpi = config.feed_format == "ocpi"
    accept = OCPI_ACCEPT if ocpi else DATEX2_ACCEPT if config.feed_format in PAIRED_FORMATS else ACCEPT
    return open_source(
        url,
        timeout_s=config.fetch_timeout_s,
        max_bytes=config.max_bytes,
        tracer=tracer,
        propagate_trace_context=propagate_trace_context,
        paged=ocpi,
        accept=accept,
        authorization=feed_authorization(config),
        access=feed_access(config),
    )


def part_parsers(
    config: Config,
) -> tuple[Callable[[bytes], StaticTable], Callable[[bytes, Relevance], StatusUpdate], Callable[[], LiveTable]]:
    """The parsers of a two-part feed's static and status parts, and a LiveTable that joins them."""
    bounds = SizeBounds(config.max_connectors)
    if config.feed_format == "datex2":
        datex2 = TableOptions(bounds, config.max_bytes, config.feed_bbox)
        return (
            partial(parse_datex2_table, options=datex2),
            lambda body, relevance: parse_datex2_status(body, datex2, relevance),
            partial(LiveTable, DATEX2_STATUSES),
        )
    oicp = TableOptions(bounds, config.max_bytes, config.feed_bbox)
    return (
        partial(parse_oicp_data, options=oicp),
        lambda body, relevance: parse_oicp_status(body, oicp, relevance),
        partial(LiveTable, OICP_STATUSES),
    )


def open_paired_feed(
    config: Config,
    tracer: trace.Tracer,
    *,
    static_url: str | None = None,
    propagate_trace_context: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> PairedFeed:
    """A datex2 or oicp feed: the static part at `static_url` (--feed.url), the statuses at --feed.status-url."""
    assert config.feed_status_url is not None
    parse_static, parse_status, live = part_parsers(config)
    return PairedFeed(
        open_feed(config, static_url or config.feed_url, tracer, propagate_trace_context=propagate_trace_context),
        open_feed(config, config.feed_status_url, tracer, propagate_trace_context=propagate_trace_context),
        parse_static,
        parse_status,
        live(),
        config.feed_static_interval_s,
        tracer,
        clock,
    )


def feed_authorization(config: Config) -> str | None:
    """`Token <token>`, the token Base64-encoded as OCPI 2.2.1 wants it, or as given (raw)."""
    if config.feed_token is None:
        return None
    if config.feed_token_encoding == "raw":
        return f"Token {config.feed_token}"
    return f"Token {base64.b64encode(config.feed_token.encode()).decode('ascii')}"
