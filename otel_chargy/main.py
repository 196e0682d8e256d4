"""The `otel-chargy` command."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from otel_chargy.config import Config, ConfigError, load_config
from otel_chargy.logs import configure_logging
from otel_chargy.redact import Redactor, secrets_of_url

# Whatever imports the OpenTelemetry SDK or API is imported once the configuration is checked: they read
# some of their variables when imported (OTEL_PROPAGATORS, the span limits), with a traceback for a typo.


def _check(config: Config, source_url: str, redactor: Redactor) -> int:
    from opentelemetry import trace

    from otel_chargy.feeds import feed_parser, open_feed
    from otel_chargy.fetch import Validators
    from otel_chargy.model import SimpleState
    from otel_chargy.outcome import FeedError

    source = open_feed(config, source_url, trace.NoOpTracer())
    try:
        body = source.fetch(Validators()).body
        snapshot = feed_parser(config)(body or b"")
    except FeedError as error:
        print(redactor(f"{source.description}: not usable: {error.outcome.value}: {error.reason}"))
        return 1
    finally:
        source.close()
    counts = snapshot.count_by_state()
    print(redactor(f"source: {source.description}"))
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
    given = (*argv, os.environ.get("FEED_URL", ""), os.environ.get("KML_URL", ""))
    redactor = Redactor([secret for text in given for secret in secrets_of_url(text)])
    print(redactor(f"otel-chargy: error: {error}").replace("\n", " "), file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_config(argv)
    except ConfigError as error:
        return _configuration_error(error, argv)
    redactor = Redactor(
        [*secrets_of_url(config.kml_url), *secrets_of_url(config.check_source or ""), *config.otlp_header_values]
    )
    configure_logging(config.log_level, config.log_format, redactor)
    if config.check_source is not None:
        return _check(config, config.check_source, redactor)
    from otel_chargy.service import Service

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
