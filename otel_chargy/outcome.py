"""How a refresh ended (the `outcome` label of `chargy_feed_refreshes_total`), and how the OTLP exports of a
pushed signal went."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from opentelemetry import trace


class Outcome(StrEnum):
    SUCCESS = "success"
    NOT_MODIFIED = "not_modified"
    """The feed answered 304 to a conditional GET: the snapshot in service is current."""
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    NETWORK_ERROR = "network_error"
    TOO_LARGE = "too_large"
    INVALID_XML = "invalid_xml"
    FORBIDDEN_XML = "forbidden_xml"
    NOT_KML = "not_kml"
    INVALID_JSON = "invalid_json"
    FORBIDDEN_JSON = "forbidden_json"
    """JSON past the parser's bounds: nesting, token size, values in one Location."""
    NOT_OCPI = "not_ocpi"
    OCPI_ERROR = "ocpi_error"
    """An OCPI response whose status_code is not 1000: the provider reports an error."""
    NOT_DATEX2 = "not_datex2"
    """A document that holds no DATEX II energy-infrastructure sites or refill point statuses."""
    NOT_OICP = "not_oicp"
    """A document that holds no OICP EVSEDataRecord or EVSEStatusRecord."""
    BROKEN_PAGING = "broken_paging"
    """A paged feed whose next link leaves its host, loops, or leads past the page limit."""
    EMPTY = "empty"
    """Valid KML without a single usable connector: a feed that changed shape, not an empty network."""
    SHRUNK = "shrunk"
    """The feed lost more of the last good snapshot's connectors than the shrink guard allows."""
    INTERNAL_ERROR = "internal_error"
    """A bug in otel-chargy, not a fault of the feed: the loop goes on."""

    @property
    def succeeded(self) -> bool:
        return self in (Outcome.SUCCESS, Outcome.NOT_MODIFIED)


class FeedError(Exception):
    """A refresh that failed for a reason the feed or the network gave.

    The message is shown to operators: it must never hold a secret, so it is
    built from redacted parts only.
    """

    def __init__(self, outcome: Outcome, reason: str, issues: Mapping[str, int] | None = None) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.issues: Mapping[str, int] = issues or {}
        """The parse issues met before the document was refused: counted all the same."""


def mark_failed(span: trace.Span, outcome: Outcome, reason: str) -> None:
    """The span of a step that failed: `error.type` is the outcome, the status says why."""
    span.set_attribute("error.type", outcome.value)
    span.set_status(trace.Status(trace.StatusCode.ERROR, reason))


@dataclass(frozen=True, slots=True)
class SignalHealth:
    """How the OTLP exports of one signal went, for the log, /metrics and the landing page."""

    signal: str
    """`metrics`, `traces` or `logs`."""
    exports: int = 0
    failed_exports: int = 0
    last_success_at: float | None = None
    last_failure_at: float | None = None
    last_failure_reason: str | None = None
    """What the exporter said about the last failure, e.g. `Received message larger than max (...)`."""
