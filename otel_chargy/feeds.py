"""The feed's format, chosen in one place: how it is fetched and which parser reads it. Nothing after
the parse step knows the format: every parser yields the same Snapshot."""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import partial

from opentelemetry import trace

from otel_chargy.config import Config
from otel_chargy.fetch import ACCEPT, OCPI_ACCEPT, FeedSource, open_source
from otel_chargy.model import Snapshot
from otel_chargy.parse import ISSUE_KINDS, SizeBounds, parse_kml
from otel_chargy.parse_ocpi import OCPI_ISSUE_KINDS, OcpiOptions, parse_ocpi

Parser = Callable[[bytes], Snapshot]


def feed_parser(config: Config) -> Parser:
    bounds = SizeBounds(config.max_connectors)
    if config.feed_format == "ocpi":
        options = OcpiOptions(bounds, config.max_bytes, config.feed_bbox, config.feed_operators)
        return partial(parse_ocpi, options=options)
    return partial(parse_kml, bounds=bounds)


def parse_issue_kinds(config: Config) -> dict[str, str]:
    """The parse issues the feed's parser can meet, and what each means."""
    return OCPI_ISSUE_KINDS if config.feed_format == "ocpi" else ISSUE_KINDS


def open_feed(config: Config, url: str, tracer: trace.Tracer, *, propagate_trace_context: bool = False) -> FeedSource:
    """A source for the feed at `url`: an OCPI feed is asked for JSON and followed through its pages."""
    ocpi = config.feed_format == "ocpi"
    return open_source(
        url,
        timeout_s=config.fetch_timeout_s,
        max_bytes=config.max_bytes,
        tracer=tracer,
        propagate_trace_context=propagate_trace_context,
        paged=ocpi,
        accept=OCPI_ACCEPT if ocpi else ACCEPT,
        authorization=feed_authorization(config),
    )


def feed_authorization(config: Config) -> str | None:
    """`Token <token>`, the token Base64-encoded as OCPI 2.2.1 wants it, or as given (raw)."""
    if config.feed_token is None:
        return None
    if config.feed_token_encoding == "raw":
        return f"Token {config.feed_token}"
    return f"Token {base64.b64encode(config.feed_token.encode()).decode('ascii')}"
