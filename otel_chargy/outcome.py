"""How a refresh ended: the `outcome` label of `chargy_feed_refreshes_total`."""

from __future__ import annotations

from enum import StrEnum


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
    EMPTY = "empty"
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

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
