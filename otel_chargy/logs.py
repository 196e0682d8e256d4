"""Log lines in logfmt or JSON, with every known secret redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any

from otel_chargy.redact import Redactor

# Attributes every LogRecord has; anything else was passed in `extra` and becomes a field.
_STANDARD_ATTRIBUTES = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_LEVEL_NAMES = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower().replace("warning", "warn"),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES})
    if record.exc_info and record.exc_info[0] is not None:
        fields["error_type"] = record.exc_info[0].__name__
        fields["error"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _logfmt_value(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if text and not any(character in text for character in ' ="\\\n\t'):
        return text
    return json.dumps(text, ensure_ascii=False)


class _Formatter(logging.Formatter):
    def __init__(self, log_format: str, redactor: Redactor) -> None:
        super().__init__()
        self._json = log_format == "json"
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if self._json:
            line = json.dumps(fields, ensure_ascii=False, default=str)
        else:
            line = " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())
        return self._redactor(line)


# Loggers whose repeated lines are limited: the OTel SDK's, and otel-chargy's report of failed exports.
_LIMITED_LOGGERS = ("opentelemetry", "otel_chargy.telemetry")
_NUMBER = re.compile(r"\d+")


class _RepeatLimiter(logging.Filter):
    """A collector down for an hour must not flood the log: each message of the limited loggers is let
    through once per window, with the count of those held back. Messages are told apart by their text
    with numbers left out: "metrics export failed" and "traces export failed" are reported separately,
    while sizes, ports and retry delays in the SDK's messages make no new message."""

    def __init__(self, window_s: float) -> None:
        super().__init__()
        self._window_s = window_s
        self._last_passed: dict[tuple[str, str], float] = {}
        self._held_back: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(_LIMITED_LOGGERS):
            return True
        key = (record.name, _NUMBER.sub("#", record.getMessage()))
        now = time.monotonic()
        with self._lock:
            last = self._last_passed.get(key)
            if last is not None and now - last < self._window_s:
                self._held_back[key] = self._held_back.get(key, 0) + 1
                return False
            self._last_passed[key] = now
            held_back = self._held_back.pop(key, 0)
        if held_back:
            record.repeats_held_back = held_back
        return True


def configure_logging(level: str, log_format: str, redactor: Redactor, repeat_window_s: float = 60.0) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(log_format, redactor))
    handler.addFilter(_RepeatLimiter(repeat_window_s))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVEL_NAMES[level])
    # httpx logs every request with its full URL, API key included, at INFO.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, _LEVEL_NAMES[level]))
