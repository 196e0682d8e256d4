from __future__ import annotations

from collections.abc import Iterator

import pytest

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
