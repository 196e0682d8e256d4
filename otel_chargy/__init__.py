"""otel-chargy: the Chargy EV-charging network as OpenTelemetry metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("otel-chargy")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
