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

# Whatever imports the OpenTelemetry SDK or API (the check, the service, the feeds) is imported once the
# configuration is checked: the SDK reads some of its variables when imported (OTEL_PROPAGATORS, the span
# limits), with a traceback for a typo where the check gives one line.


def token_secrets(config: Config) -> list[str]:
    """The feed's token as given and as sent: both are secrets."""
    from otel_chargy.feeds import feed_authorization

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
        from otel_chargy.check import check

        return check(config, config.check_source, redactor)
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
