"""Fixtures shared by every suite."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store.versions import ModelStore
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.tiny_model import publish_tiny_classifier


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


@pytest.fixture
def tiny_store(store: ModelStore) -> ModelStore:
    """A store with a tiny real `sentiment` model and a tiny real `topic` model, both active."""
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_classifier(
        store,
        "topic",
        ("billing", "delivery", "account", "technical_problem", "product_question", "other"),
        {
            "invoice": "billing",
            "charge": "billing",
            "refund": "billing",
            "parcel": "delivery",
            "delivery": "delivery",
            "password": "account",
            "login": "account",
            "crash": "technical_problem",
            "error": "technical_problem",
            "size": "product_question",
            "colour": "product_question",
            "thanks": "other",
        },
    )
    return store


@pytest.fixture(scope="session")
def trained_reply_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """The default reply model, really fine-tuned from the packaged encoder on the project's
    knowledge base (2 epochs, 32 tokens: about a minute on 2 cores), once per session; plus
    the tiny `sentiment` model. Read-only for tests: copy it to publish more versions."""
    from tests.support.reply_model import build_default_reply_model

    store = ModelStore(tmp_path_factory.mktemp("trained") / "models")
    build_default_reply_model(store)
    publish_tiny_classifier(store, "sentiment")
    return store


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of its own for the test, on a free loopback port; stopped after."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (initdb costs seconds); stopped at the end. Its
    folder is its own, not under pytest's base temp: pytest prunes old base temps, and a
    concurrent run pruning this one would pull the data from under the running server."""
    with tempfile.TemporaryDirectory(prefix="textserve-pg-", dir="/tmp") as folder:
        server = PostgresServer(Path(folder) / "pg").start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def postgres_url(postgres_session: PostgresServer) -> str:
    """The URL of an empty database on the session's real PostgreSQL."""
    postgres_session.reset()
    return postgres_session.url
