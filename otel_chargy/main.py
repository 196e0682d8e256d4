"""The `otel-chargy` command."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

from opentelemetry import trace

from otel_chargy.config import Config, ConfigError, load_config
from otel_chargy.feeds import feed_authorization, feed_parser, open_feed, parse_issue_kinds
from otel_chargy.fetch import Validators
from otel_chargy.logs import configure_logging
from otel_chargy.model import SimpleState
from otel_chargy.outcome import FeedError
from otel_chargy.redact import Redactor, secrets_of_url
from otel_chargy.service import Service


def _check(config: Config, source_url: str, redactor: Redactor) -> int:
    source = open_feed(config, source_url, trace.NoOpTracer())
    try:
        body = source.fetch(Validators()).body
        snapshot = feed_parser(config)(body or b"")
    except FeedError as error:
        print(redactor(f"{source.description}: not usable: {error.outcome.value}: {error.reason}"))
        _print_issues(error.issues, parse_issue_kinds(config), redactor)
        return 1
    finally:
        source.close()
    counts = snapshot.count_by_state()
    print(redactor(f"source: {source.description}"))
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
    given = (*argv, os.environ.get("FEED_URL", ""), os.environ.get("KML_URL", ""))
    tokens = [argv[index + 1] for index, arg in enumerate(argv[:-1]) if arg == "--feed.token"]
    tokens += [arg.partition("=")[2] for arg in argv if arg.startswith("--feed.token=")]
    tokens += [os.environ.get("CHARGY_FEED_TOKEN", "")]
    redactor = Redactor(
        [secret for text in given for secret in secrets_of_url(text)]
        + [token.strip() for token in tokens if token.strip()]
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
            *config.otlp_header_values,
            *token_secrets(config),
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
