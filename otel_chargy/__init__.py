"""otel-chargy: the Chargy EV-charging network as OpenTelemetry metrics."""

# The one place the version is written: the package metadata reads it from here at build time.
__version__ = "0.1.0"
