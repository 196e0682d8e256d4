"""The `otel-chargy` command."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from types import FrameType

from opentelemetry import trace

from otel_chargy.config import PAIRED_FORMATS, Config, ConfigError, load_config
from otel_chargy.feeds import feed_parser, open_feed, open_paired_feed, part_parsers
from otel_chargy.fetch import Validators
from otel_chargy.logs import configure_logging
from otel_chargy.model import SimpleState, Snapshot
from otel_chargy.outcome import FeedError
from otel_chargy.redact import Redactor, secrets_of_url
from otel_chargy.service import Service


def _read_once(config: Config, source_url: str) -> tuple[str, Snapshot]:
    """The source's description and what it holds; a datex2 or oicp source is the static part, joined
    with --feed.status-url when it is given (else every refill point is unknown). Raises FeedError."""
    if config.feed_format in PAIRED_FORMATS and config.feed_status_url is not None:
        paired = open_paired_feed(config, trace.NoOpTracer(), static_url=source_url)
        try:
            snapshot = paired.read(in_service=False).snapshot
        except FeedError as error:
            raise FeedError(error.outcome, f"{paired.description}: {error.reason}") from None
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
        raise FeedError(error.outcome, f"{source.description}: {error.reason}") from None
    finally:
        source.close()


def _check(config: Config, source_url: str, redactor: Redactor) -> int:
    try:
        description, snapshot = _read_once(config, source_url)
    except FeedError as error:
        where, _, reason = error.reason.partition(": ")
        print(redactor(f"{where}: not usable: {error.outcome.value}: {reason}"))
        return 1
    counts = snapshot.count_by_state()
    print(redactor(f"source: {description}"))
    print(f"stations: {len(snapshot.stations)}")
    print(f"devices: {snapshot.device_count}")
    print(f"connectors: {snapshot.connector_count}")
    for state in SimpleState:
        print(f"  {state.value}: {counts[state]}")
    issues = ", ".join(f"{kind}={count}" for kind, count in sorted(snapshot.issues.items())) or "none"
    print(f"parse issues: {issues}")
    return 0


def _configuration_error(error: ConfigError, argv: Sequence[str]) -> int:
    # The message shows URLs redacted already; redacting every secret the command line, FEED_URL and
    # KML_URL carry makes sure of it, whatever argparse echoes back.
    given = (
        *argv,
        os.environ.get("FEED_URL", ""),
        os.environ.get("KML_URL", ""),
        os.environ.get("CHARGY_FEED_STATUS_URL", ""),
    )
    headers = (*argv, *os.environ.get("CHARGY_FEED_HEADER", "").splitlines())
    redactor = Redactor(
        [secret for text in given for secret in secrets_of_url(text)]
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
