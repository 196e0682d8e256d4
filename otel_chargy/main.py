"""The `otel-chargy` command."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from types import FrameType

from opentelemetry import trace

from otel_chargy.config import PAIRED_FORMATS, Config, ConfigError, load_config
from otel_chargy.feeds import (
    feed_authorization,
    feed_parser,
    open_feed,
    open_paired_feed,
    parse_issue_kinds,
    part_parsers,
)
from otel_chargy.fetch import Validators
from otel_chargy.logs import configure_logging
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import FeedError
from otel_chargy.redact import Redactor, secrets_of_url
from otel_chargy.service import Service


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


def _check(config: Config, source_url: str, redactor: Redactor) -> int:
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


def token_secrets(config: Config) -> list[str]:
    """The feed's token as given and as sent: both are secrets."""
    authorization = feed_authorization(config)
    if config.feed_token is None or authorization is None:
        return []
    return [config.feed_token, authorization.removeprefix("Token ")]


def _configuration_error(error: ConfigError, argv: Sequence[str]) -> int:
    # The message shows URLs redacted already; redacting every secret the command line, FEED_URL and
    # KML_URL carry makes sure of it, whatever argparse echoes back.
    given = (
        *argv,
        os.environ.get("FEED_URL", ""),
        os.environ.get("KML_URL", ""),
        os.environ.get("CHARGY_FEED_STATUS_URL", ""),
    )
    tokens = [argv[index + 1] for index, arg in enumerate(argv[:-1]) if arg == "--feed.token"]
    tokens += [arg.partition("=")[2] for arg in argv if arg.startswith("--feed.token=")]
    tokens += [os.environ.get("CHARGY_FEED_TOKEN", "")]
    headers = (*argv, *os.environ.get("CHARGY_FEED_HEADER", "").splitlines())
    redactor = Redactor(
        [secret for text in given for secret in secrets_of_url(text)]
        + [token.strip() for token in tokens if token.strip()]
        + [value for text in headers if (value := text.partition(":")[2].strip())]
    )
    print(redactor(f"otel-chargy: error: {error}").replace("\n", " "), file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_config(argv)
    except ConfigError as error:
        return _configuration_error(error, argv)
    redactor = Redactor(
        [
            *secrets_of_url(config.kml_url),
            *secrets_of_url(config.check_source or ""),
            *secrets_of_url(config.feed_status_url or ""),
            *config.otlp_header_values,
            *token_secrets(config),
            *(value for _, value in config.feed_headers),
        ]
    )
    configure_logging(config.log_level, config.log_format, redactor)
    if config.check_source is not None:
        return _check(config, config.check_source, redactor)
    try:
        service = Service(config, redactor)
    except OSError as error:
        setting = config.written_as["listen_address"]
        print(f"otel-chargy: error: {setting} {config.listen_address}: {error.strerror}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    service.start()
    stopping.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
