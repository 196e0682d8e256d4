from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import pytest

from otel_chargy.generator import generate_network
from otel_chargy.holder import Served, SnapshotHolder
from tests.browser import Browser
from tests.feedserver import FeedServer
from tests.prometheus import PrometheusServer

# A key shaped like the real one, so that any leak of it is found by searching all output.
TEST_API_KEY = "test-key-7f3e9a1c-5b2d-4e8f-9a6b-0c1d2e3f4a5b"


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def feed_url(feed: FeedServer) -> str:
    return feed.url(query=f"API-KEY={TEST_API_KEY}")


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    """One real Prometheus for the whole session: each test points it at its own service."""
    with PrometheusServer() as server:
        yield server


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the whole session (per worker): a start costs seconds on a busy machine."""
    with Browser() as started:
        yield started


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """main() configures the root logger for the process: put pytest's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def refresh_after_every_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh lands right after every read of the holder: networks of 20, 27 and 33 placemarks in turn."""
    networks = itertools.cycle([generate_network(size, seed=size) for size in (20, 27, 33)])
    read = SnapshotHolder.served

    def read_then_refresh(holder: SnapshotHolder) -> Served:
        served = read(holder)
        holder.publish(next(networks), fetched_at=0)
        return served

    monkeypatch.setattr(SnapshotHolder, "served", read_then_refresh)
