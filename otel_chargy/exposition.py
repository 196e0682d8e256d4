"""The Prometheus endpoint's bytes: the snapshot-sized metrics rendered once per snapshot, the
feed-health metrics from the SDK's Prometheus reader, both served from memory.

At 27,000 connectors the SDK's reader takes seconds and hundreds of MB per collection for the
~135,000 connector series, and their values only change when a refresh ends. So at refresh time
`render_snapshot` writes those series as text, once; `tests/test_exposition.py` checks that the
bytes are exactly what the SDK's reader renders for the same snapshot. A scrape then only joins
that text (and its gzip, spliced) with the few feed-health series the SDK renders, cached per change.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.utils import floatToGoString

from otel_chargy.metrics import (
    CONNECTOR_DETAILED_STATE,
    CONNECTOR_MAX_POWER,
    CONNECTOR_STATE,
    STATION_INFO,
    MetricSpec,
    OverflowCounting,
    OverflowTally,
)
from otel_chargy.model import SimpleState, Snapshot

# prometheus_client's own number format (Go's), typed for mypy.
_number_text: Callable[[float], str] = floatToGoString
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_GZIP_LEVEL = 4  # a fifth larger than level 6, at under half its cost per refresh
# The OpenMetrics unit of a snapshot metric, as the SDK's reader derives it from the OTel unit.
_OPENMETRICS_UNIT = {CONNECTOR_MAX_POWER: "watts"}


class CountingPrometheusReader(OverflowCounting, PrometheusMetricReader):
    """The SDK's Prometheus reader on a registry of its own, counting overflow points as they pass."""

    def __init__(self, overflow: OverflowTally) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # No otel_scope_* labels: the series keep the original exporter's label sets.
        super().__init__(disable_target_info=False, scope_info_enabled=False, registry=self.registry)
        self.overflow = overflow


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _sync_deflate(part: bytes) -> bytes:
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH)


@dataclass(frozen=True, slots=True)
class _Deflated:
    """A section compressed as the start of a gzip member: raw deflate ending in a sync flush
    (byte-aligned, not final), so that the feed-health part can be appended to it per change."""

    data: bytes
    crc: int
    size: int

    @classmethod
    def of(cls, parts: Sequence[tuple[bytes, bytes]]) -> _Deflated:
        """From (plain, sync-deflated) parts: deflate sections one after another are one deflate stream."""
        crc = 0
        for plain, _ in parts:
            crc = zlib.crc32(plain, crc)
        return cls(b"".join(deflated for _, deflated in parts), crc, sum(len(plain) for plain, _ in parts))

    def gzip_with(self, tail: bytes) -> list[bytes]:
        """A whole gzip member: this section, then `tail`."""
        compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        tail_data = compressor.compress(tail) + compressor.flush()
        trailer = struct.pack("<II", zlib.crc32(tail, self.crc), (self.size + len(tail)) & 0xFFFFFFFF)
        return [_GZIP_HEADER, self.data, tail_data + trailer]


@dataclass(frozen=True)
class SnapshotExposition:
    """The snapshot-sized metrics of one snapshot, as text and OpenMetrics, plain and deflated."""

    text: tuple[bytes, ...]
    openmetrics: tuple[bytes, ...]
    text_deflated: _Deflated
    openmetrics_deflated: _Deflated


def _family(spec: MetricSpec, samples: Iterator[str]) -> tuple[bytes, bytes, bytes]:
    """(text format header, OpenMetrics header, samples) of one gauge family."""
    name = spec.prometheus_name
    # The text format escapes backslash and newline in HELP; OpenMetrics escapes double quotes too.
    text_help = spec.description.replace("\\", r"\\").replace("\n", r"\n")
    text_header = f"# HELP {name} {text_help}\n"
    openmetrics_header = f"# HELP {name} {_escape(spec.description)}\n"
    type_line = f"# TYPE {name} gauge\n"
    unit = _OPENMETRICS_UNIT.get(spec)
    unit_line = f"# UNIT {name} {unit}\n" if unit else ""
    return (
        (text_header + type_line).encode(),
        (openmetrics_header + type_line + unit_line).encode(),
        "".join(samples).encode(),
    )


def render_snapshot(snapshot: Snapshot) -> SnapshotExposition:
    # Label names in sorted order, as prometheus_client writes them; each value escaped once.
    connectors = [
        (_escape(connector.name), _escape(device.name), connector.speed, _escape(station.name), connector)
        for station, device, connector in snapshot.connectors()
    ]

    def states() -> Iterator[str]:
        name = CONNECTOR_STATE.prometheus_name
        for connector_name, device, speed, station, connector in connectors:
            rest = f'connector="{connector_name}",device="{device}",speed="{speed}",station="{station}"}}'
            for state in SimpleState:
                value = "1.0" if state is connector.state else "0.0"
                yield f'{name}{{chargy_connector_state="{state.value}",{rest} {value}\n'

    def detailed_states() -> Iterator[str]:
        name = CONNECTOR_DETAILED_STATE.prometheus_name
        for connector_name, device, speed, station, connector in connectors:
            state = _escape(connector.raw_state)
            yield (
                f'{name}{{connector="{connector_name}",device="{device}",speed="{speed}",'
                f'state="{state}",station="{station}"}} 1.0\n'
            )

    def max_powers() -> Iterator[str]:
        name = CONNECTOR_MAX_POWER.prometheus_name
        for connector_name, device, _, station, connector in connectors:
            value = _number_text(connector.max_power_kw * 1000.0)
            yield f'{name}{{connector="{connector_name}",device="{device}",station="{station}"}} {value}\n'

    def stations() -> Iterator[str]:
        name = STATION_INFO.prometheus_name
        for station in snapshot.stations:
            latitude = "" if station.latitude is None else f"{station.latitude}"
            longitude = "" if station.longitude is None else f"{station.longitude}"
            yield (
                f'{name}{{address="{_escape(station.address)}",latitude="{latitude}",'
                f'longitude="{longitude}",station="{_escape(station.name)}"}} 1.0\n'
            )

    families = [
        _family(CONNECTOR_STATE, states()),
        _family(CONNECTOR_DETAILED_STATE, detailed_states()),
        _family(CONNECTOR_MAX_POWER, max_powers()),
        _family(STATION_INFO, stations()),
    ]
    # Each part is deflated on its own, so the samples are compressed once for both formats.
    deflated = [tuple((part, _sync_deflate(part)) for part in family) for family in families]
    text = [part for text_header, _, samples in deflated for part in (text_header, samples)]
    openmetrics = [part for _, openmetrics_header, samples in deflated for part in (openmetrics_header, samples)]
    return SnapshotExposition(
        tuple(plain for plain, _ in text),
        tuple(plain for plain, _ in openmetrics),
        _Deflated.of(text),
        _Deflated.of(openmetrics),
    )


# Served while no snapshot is (none yet, or older than the maximum staleness): feed health only.
_NO_SNAPSHOT = SnapshotExposition((), (), _Deflated(b"", 0, 0), _Deflated(b"", 0, 0))


@dataclass(frozen=True)
class Response:
    chunks: Sequence[bytes]
    content_type: str
    gzipped: bool


class Exposition:
    """What /metrics answers: the cached snapshot section, then the feed-health part from the SDK's reader.

    Every metric changes only when a refresh ends or the snapshot goes stale (`version`), so the
    feed-health part too is rendered once per change."""

    def __init__(
        self,
        reader: CountingPrometheusReader,
        snapshot: Callable[[], SnapshotExposition | None],
        version: Callable[[], object],
    ) -> None:
        self._reader = reader
        self._snapshot = snapshot
        self._version = version
        # The reader's collector is not safe for concurrent collections: one render at a time.
        self._lock = threading.Lock()
        self._rendered_version: object = None
        self._responses: dict[tuple[str, bool], Response] = {}

    def render(self, accept: str | None, accept_encoding: str | None) -> Response:
        encoder, content_type = choose_encoder(accept or "")
        gzipped = "gzip" in (accept_encoding or "")
        key = (content_type, gzipped)
        with self._lock:
            version = self._version()
            if version != self._rendered_version:
                self._rendered_version = version
                self._responses.clear()
            response = self._responses.get(key)
            if response is None:
                live = encoder(self._reader.registry)
                response = self._responses[key] = self._compose(live, content_type, gzipped)
        return response

    def _compose(self, live: bytes, content_type: str, gzipped: bool) -> Response:
        snapshot = self._snapshot() or _NO_SNAPSHOT
        # prometheus_client may add parameters (`; escaping=underscores`) to its OpenMetrics content type.
        openmetrics = content_type.startswith(OPENMETRICS_CONTENT_TYPE.split(";")[0])
        if gzipped:
            deflated = snapshot.openmetrics_deflated if openmetrics else snapshot.text_deflated
            return Response(deflated.gzip_with(live), content_type, True)
        return Response([*(snapshot.openmetrics if openmetrics else snapshot.text), live], content_type, False)
