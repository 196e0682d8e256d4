"""The feed's health in words: what the status page and /api/v1/status show, and what to do about it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from otel_chargy.history import RefreshHistory, RefreshRecord
from otel_chargy.holder import SnapshotHolder
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import Outcome, SignalHealth

_DEMO_HINT = "To try otel-chargy without the feed, run it with --demo."
_RETRIED = (
    "otel-chargy retries with backoff (1 s, 2 s, 4 s … up to the refresh interval) and serves the last good "
    "snapshot until it is older than --max-staleness."
)
_RETRIED_NOTHING_SERVED = (
    "otel-chargy retries with backoff (1 s, 2 s, 4 s … up to the refresh interval); no snapshot is served "
    f"until a refresh succeeds. {_DEMO_HINT}"
)
_CHECK = "`otel-chargy check URL` fetches and parses the feed once and says what it found."


@dataclass(frozen=True, slots=True)
class Advice:
    cause: str
    """The reason in words."""
    next_step: str
    """What the operator can do."""


@dataclass(frozen=True, slots=True)
class PushHealth:
    """How pushing one signal over OTLP goes; given by whoever pushes (see `Pages(push_health=...)`)."""

    signal: str
    """"metrics", "traces" or "logs"."""
    healthy: bool
    summary: str
    """One line, e.g. "last export succeeded 12 s ago to collector:4317"."""


def push_health_of(signals: Sequence[SignalHealth], now: float) -> tuple[PushHealth, ...]:
    """What the page says of each pushed signal, from the OTLP exporters' tally."""
    shown = []
    for signal in signals:
        failed_last = signal.last_failure_at is not None and (
            signal.last_success_at is None or signal.last_failure_at > signal.last_success_at
        )
        if signal.exports == 0:
            summary = "no export yet"
        elif failed_last and signal.last_failure_at is not None:
            summary = (
                f"the last export failed {now - signal.last_failure_at:.0f} s ago: {signal.last_failure_reason}; "
                f"{signal.failed_exports} of {signal.exports} exports failed"
            )
        else:
            ago = f", the last {now - signal.last_success_at:.0f} s ago" if signal.last_success_at else ""
            summary = f"{signal.exports - signal.failed_exports} of {signal.exports} exports succeeded{ago}"
        shown.append(PushHealth(signal.signal, not failed_last, summary))
    return tuple(shown)


@dataclass(frozen=True, slots=True)
class SnapshotSummary:
    fetched_at: float
    stations: int
    connectors: int
    connectors_by_state: Mapping[SimpleState, int]
    parse_issues: Mapping[str, int]
    """Parse issue kind -> count, in the document of this snapshot."""
    version: str
    """The format and version read ("KML", "OCPI 2.1.1")."""
    fresh: bool
    """False once it is older than --max-staleness: then the metrics and the page no longer serve it."""


@dataclass(frozen=True, slots=True)
class FeedHealth:
    feed: str
    """Where the feed comes from, secrets redacted."""
    up: bool | None
    """None until the first refresh has finished."""
    outcome: Outcome | None
    reason: str
    advice: Advice | None
    """None while the feed is up."""
    since: float | None
    """Up since, or failing since: the start of the current run of like outcomes."""
    last_refresh_at: float | None
    next_refresh_at: float | None
    last_success_at: float | None
    duration_s: float | None
    """Of the last refresh."""
    snapshot: SnapshotSummary | None
    """The last good snapshot, fresh or not."""
    refreshes: Sequence[RefreshRecord]
    """Newest first."""
    push: Sequence[PushHealth]
    """Empty when nothing is pushed over OTLP."""


def _http_advice(reason: str, retried: str) -> Advice:
    match = re.search(r"HTTP (\d{3})", reason)
    code = int(match.group(1)) if match else 0
    if code in (401, 403):
        return Advice(
            f"The feed refused the request (HTTP {code}): the API key is missing, wrong or revoked.",
            "Check the API-KEY in --feed.url (env FEED_URL). The public key is published in the open-data "
            "catalogue (data.public.lu, Chargy's charging stations); the provider may change it.",
        )
    if code in (404, 410):
        return Advice(
            f"The feed's URL no longer exists (HTTP {code}).",
            "The provider may have moved the feed: look up its current URL in the open-data catalogue "
            "and set --feed.url.",
        )
    if code == 429:
        return Advice(
            "The feed's server asks otel-chargy to slow down (HTTP 429).",
            "Raise --refresh-interval (the original exporter polled every 300 s).",
        )
    if code >= 500:
        return Advice(
            f"The feed's server has a problem of its own (HTTP {code}).", f"Nothing to change here: {retried}"
        )
    return Advice(
        f"The feed answered with an error (HTTP {code or 'status unknown'}).",
        f"Check --feed.url; {_CHECK}",
    )


def _network_advice(reason: str, retried: str) -> Advice:
    """Advice for each failure fetch.describe_failure and the body reader name, by their exact words."""
    lowered = reason.lower()
    check_host = (
        "Check that the host in --feed.url (env FEED_URL) is right and reachable from this machine: "
        f"DNS, proxy (HTTPS_PROXY), firewall. {_DEMO_HINT}"
    )
    if lowered.startswith("name ") and " not resolved" in lowered:
        return Advice(
            f"The feed's host name does not resolve (DNS): {reason}.",
            "Check the host name in --feed.url (env FEED_URL) for a typo, and that this machine resolves names "
            f"(its DNS server, /etc/resolv.conf; in a container, the container's network). {_DEMO_HINT}",
        )
    if lowered.startswith("connection refused by "):
        return Advice(
            f"The feed's server refused the connection ({reason}): nothing listens at that address and port.",
            "Check the port in --feed.url, and that the server (or the proxy in HTTPS_PROXY) is running. " + _DEMO_HINT,
        )
    if lowered.startswith(("tls handshake with ", "tls connection to ")):
        certificate = "certificate" in lowered or "self-signed" in lowered or "issuer" in lowered
        return Advice(
            f"The secure connection to the feed failed ({reason}).",
            (
                "The server's certificate is not trusted here: check this machine's clock and CA certificates "
                "(SSL_CERT_FILE), or a proxy that intercepts TLS. "
                if certificate
                else "Check that the scheme and port in --feed.url match the server (https on a TLS port). "
            )
            + retried,
        )
    if lowered.startswith("connection reset by ") or " broke off the http exchange" in lowered:
        return Advice(
            f"The feed's server hung up mid-answer ({reason}).",
            f"Usually passing: {retried} If it lasts, fetch the URL by hand (curl) to see what the server sends.",
        )
    if lowered.startswith("network error with "):
        return Advice(f"The network between otel-chargy and the feed failed ({reason}).", check_host)
    if lowered.startswith("could not read the feed from "):
        return Advice(f"otel-chargy could not read the feed ({reason}).", check_host)
    if lowered.startswith("could not read "):  # a file: "could not read PATH: strerror"
        return Advice(f"The feed file cannot be read ({reason}).", f"Check the path given to --feed.url. {_DEMO_HINT}")
    if "content encoding" in lowered or "gzip body" in lowered:
        return Advice(
            f"The feed's answer was malformed ({reason}).",
            f"{retried} If it lasts, fetch the URL by hand (curl --compressed) to see what the server sends.",
        )
    return Advice(f"The connection to the feed failed ({reason}).", f"{check_host} {retried}")


def advise(outcome: Outcome | None, reason: str, serving: bool = True) -> Advice | None:
    """What a failed refresh means and what to do; None for a refresh that did not fail. `serving`:
    whether a last good snapshot is in service, so that the advice does not promise one that is not."""
    if outcome is None or outcome.succeeded:
        return None
    retried = _RETRIED if serving else _RETRIED_NOTHING_SERVED
    if outcome is Outcome.HTTP_ERROR:
        return _http_advice(reason, retried)
    if outcome is Outcome.NETWORK_ERROR:
        return _network_advice(reason, retried)
    if outcome is Outcome.TIMEOUT:
        return Advice(
            f"The feed did not answer, or not completely, in time ({reason}).",
            f"If the feed is slow rather than down, raise --fetch-timeout (env CHARGY_FETCH_TIMEOUT). {retried}",
        )
    if outcome is Outcome.TOO_LARGE:
        if "placemarks" in reason or "--max-connectors" in reason:
            flag = "--max-connectors (env CHARGY_MAX_CONNECTORS)"
        else:
            flag = "--max-bytes (env CHARGY_MAX_BYTES)"
        return Advice(
            f"The feed is larger than otel-chargy accepts ({reason}).",
            f"If the network has really grown, raise {flag}; otherwise check that --feed.url serves the feed.",
        )
    if outcome is Outcome.FORBIDDEN_XML:
        return Advice(
            f"The feed holds XML that otel-chargy refuses for safety ({reason}).",
            f"Check that --feed.url serves the Chargy feed; {_CHECK}",
        )
    if outcome is Outcome.BROKEN_PAGING:
        return Advice(
            f"The feed's pages do not chain up ({reason}).",
            "The provider's paging is broken: a next link to another host, a loop, or too many pages. "
            "Report it to the provider; " + _CHECK,
        )
    if outcome is Outcome.OCPI_ERROR:
        return Advice(
            f"The OCPI feed answered with an error ({reason}).",
            "The provider reports the error itself: check --feed.url (a token may be needed or expired); " + _CHECK,
        )
    if outcome in (Outcome.INVALID_JSON, Outcome.FORBIDDEN_JSON, Outcome.NOT_OCPI):
        return Advice(
            f"The feed's answer is not usable OCPI Locations ({reason}).",
            "Check that --feed.url serves OCPI Locations and that --feed.format is ocpi; " + _CHECK,
        )
    if outcome in (Outcome.INVALID_XML, Outcome.NOT_KML, Outcome.EMPTY):
        return Advice(
            f"The feed's answer is not a usable Chargy KML document ({reason}).",
            "Check that --feed.url points at the KML feed (an HTML page is often a login or error page); " + _CHECK,
        )
    return Advice(
        f"A bug in otel-chargy, not a fault of the feed ({reason}).",
        "Please report it with the log line 'refresh failed unexpectedly'; "
        + (
            "the last good snapshot stays in service." if serving else "no snapshot is served until a refresh succeeds."
        ),
    )


def read_health(
    holder: SnapshotHolder,
    history: RefreshHistory | None,
    feed: str,
    push_health: Callable[[], Sequence[PushHealth]] | None = None,
    count_by_state: Callable[[Snapshot], Mapping[SimpleState, int]] = Snapshot.count_by_state,
) -> FeedHealth:
    """`count_by_state` is given a cached version by callers that answer requests: counting is per snapshot."""
    status = holder.status
    published = holder.latest
    snapshot = None
    if published is not None:
        counts = count_by_state(published.snapshot)
        snapshot = SnapshotSummary(
            fetched_at=published.fetched_at,
            stations=len(published.snapshot.stations),
            connectors=sum(counts.values()),
            connectors_by_state=counts,
            parse_issues=dict(published.snapshot.issues),
            version=published.snapshot.version,
            fresh=holder.current is not None,
        )
    records = history.records if history is not None else []
    up = None if status.outcome is None else status.outcome.succeeded
    since = None
    if history is not None:
        since = history.up_since if up else history.failing_since
    return FeedHealth(
        feed=feed,
        up=up,
        outcome=status.outcome,
        reason=status.reason,
        advice=advise(status.outcome, status.reason, serving=holder.current is not None),
        since=since,
        last_refresh_at=status.finished_at,
        next_refresh_at=history.next_refresh_at if history is not None else None,
        last_success_at=status.last_success_at,
        duration_s=records[0].duration_s if records else None,
        snapshot=snapshot,
        refreshes=records,
        push=tuple(push_health()) if push_health is not None else (),
    )


def age_text(timestamp: float | None, now: float | None = None) -> str:
    """ "12 s ago", "in 4 min": how far a time is from now, for people."""
    if timestamp is None:
        return ""
    delta = (time.time() if now is None else now) - timestamp
    seconds = abs(delta)
    if seconds < 90:
        amount = f"{seconds:.0f} s"
    elif seconds < 90 * 60:
        amount = f"{seconds / 60:.0f} min"
    elif seconds < 36 * 3600:
        amount = f"{seconds / 3600:.1f} h"
    else:
        amount = f"{seconds / 86400:.1f} days"
    return f"{amount} ago" if delta >= 0 else f"in {amount}"
