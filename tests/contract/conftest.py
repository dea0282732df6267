"""Each shared-state interface, once per implementation: the same tests run against the
in-process default and against Redis (a real redis-server on a loopback port)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.cluster.redis_link import RedisLink
from tests.support.redis_server import RedisServer

# Builds an implementation inside the running event loop, closes what it opened after.
Backend = Callable[[], Any]


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for a module's tests (each test starts from an empty one)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["in_process", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Which implementation a contract test runs against; for Redis, an emptied server."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("shared_redis")
        server.flush()
        request.node.redis_url = server.url
    return str(request.param)


@asynccontextmanager
async def redis_link(url: str) -> AsyncIterator[RedisLink]:
    link = RedisLink(url, prefix="test:")
    try:
        yield link
    finally:
        await link.aclose()
