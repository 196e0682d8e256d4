"""`otel-chargy check SOURCE`: read a feed once and report what it holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from opentelemetry import trace

from otel_chargy.config import PAIRED_FORMATS, Config
from otel_chargy.feeds import feed_parser, open_feed, open_paired_feed, parse_issue_kinds, part_parsers
from otel_chargy.fetch import Validators
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import FeedError
from otel_chargy.redact import Redactor


class _Unusable(Exception):
    """`check`'s source could not be read: its description (secrets redacted) and why."""

    def __init__(self, description: str, error: FeedError) -> None:
        super().__init__(error.reason)
        self.description = description
        self.error = error


def _read_once(config: Config, source_url: str) -> tuple[str, Snapshot]:
    """The source's description and what it holds; a datex2 or oicp source is the static part, joined
    with --feed.status-url when it is given (else every refill point is unknown). Raises _Unusable."""
    if config.feed_format in PAIRED_FORMATS and config.feed_status_url is not None:
        paired = open_paired_feed(config, trace.NoOpTracer(), static_url=source_url)
        try:
            snapshot = paired.read(in_service=False).snapshot
        except FeedError as error:
            raise _Unusable(paired.description, error) from None
        finally:
            paired.close()
        assert snapshot is not None  # nothing is in service: both parts are read whole
        return paired.description, snapshot
    source = open_feed(config, source_url, trace.NoOpTracer())
    try:
        body = source.fetch(Validators()).body or b""
        if config.feed_format in PAIRED_FORMATS:
            parse_static, _, live_table = part_parsers(config)
            live = live_table()
            live.replace_table(parse_static(body))
            return source.description, live.snapshot(Counter())
        return source.description, feed_parser(config)(body)
    except FeedError as error:
        raise _Unusable(source.description, error) from None
    finally:
        source.close()


def check(config: Config, source_url: str, redactor: Redactor) -> int:
    try:
        description, snapshot = _read_once(config, source_url)
    except _Unusable as unusable:
        error = unusable.error
        print(redactor(f"{unusable.description}: not usable: {error.outcome.value}: {error.reason}"))
        _print_issues(error.issues, parse_issue_kinds(config), redactor)
        return 1
    counts = snapshot.count_by_state()
    print(redactor(f"source: {description}"))
    if snapshot.version:
        print(f"format: {snapshot.version}")
    print(f"stations: {len(snapshot.stations)}")
    print(f"devices: {snapshot.device_count}")
    print(f"connectors: {snapshot.connector_count}")
    for state in SimpleState:
        print(f"  {state.value}: {counts[state]}")
    if unknown := snapshot.unknown_raw_states():
        # The feed's text: the ten most frequent, each shortened.
        shown = ", ".join(f"{raw[:40] or '(empty)'} \u00d7{count}" for raw, count in list(unknown.items())[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        print(redactor(f"unknown states, by connectors: {shown}{more}"))
    if snapshot.power_rules:
        print("power read by:")
        for rule, count in sorted(snapshot.power_rules.items(), key=lambda item: -item[1]):
            print(f"  {rule}: {count} connectors")
    _print_issues(snapshot.issues, parse_issue_kinds(config), redactor)
    return 0


def _print_issues(issues: Mapping[str, int], meanings: Mapping[str, str], redactor: Redactor) -> None:
    """The parse issues by kind, most frequent first, each with what it means."""
    if not issues:
        print("parse issues: none")
        return
    print("parse issues:")
    for kind, count in sorted(issues.items(), key=lambda item: (-item[1], item[0])):
        print(redactor(f"  {kind} \u00d7{count}: {meanings.get(kind, '')}".rstrip(": ")))
