"""Run the real app in process (lifespan included) against a store of tiny real models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.knowledge.service import EmbedderResolver
from app.main import create_app
from app.service import Services
from app.store.versions import ModelStore


def settings_for(store: ModelStore, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "model_store": store.root,
        "max_wait_ms": 2.0,
        # Jobs database and uploads beside the store, never in the working directory.
        "data_dir": store.root.parent / "var",
        "ray_address": None,
        # One run in flight, whatever the cores: tests that hold a run at a gate count on it.
        # test_classify covers several streams.
        "batch_streams": 1,
    }
    base.update(overrides)
    return Settings(**base)


@asynccontextmanager
async def running(
    settings: Settings, embedders: EmbedderResolver | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """Start the app's lifespan, wait for models to load, yield a client bound to it;
    ``embedders``: the knowledge bases' embedder resolver (default: served models)."""
    app = create_app(settings, embedders)
    services: Services = app.state.services
    async with app.router.lifespan_context(app):
        await asyncio.get_running_loop().run_in_executor(None, services.wait_loaded, 30.0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://textserve") as client:
            yield client, app


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro_fn())


class GatedSession:
    """Wraps a real ORT session: runs wait on a gate, and can be told to raise."""

    def __init__(self, inner: Any) -> None:
        import threading

        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next = False

    def run(self, names: Any, feeds: Any) -> Any:
        assert self.gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("injected ORT failure")
        return self.inner.run(names, feeds)


def gate_engine(app: FastAPI, name: str) -> GatedSession:
    engine = app.state.services.registry.get(name)
    assert engine._session is not None
    gated = GatedSession(engine._session.session)
    engine._session.session = gated
    if engine._solo is not None:  # lone requests run there: gate it with the same gate
        solo = GatedSession(engine._solo.session)
        solo.gate = gated.gate
        engine._solo.session = solo
    return gated
