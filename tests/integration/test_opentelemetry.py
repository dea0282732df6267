"""FastAPI's own OpenTelemetry instrumentation: off unless ``opentelemetry`` is set."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for


class RecordingTracer(trace.NoOpTracer):
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.names.append(name)
        return super().start_span(name, *args, **kwargs)


class RecordingProvider(trace.TracerProvider):
    """A configured provider, as an OpenTelemetry SDK set up by the process would be."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return RecordingTracer(self.names)


@pytest.mark.parametrize("enabled", [False, True])
def test_spans_reach_the_configured_provider_only_when_enabled(
    tiny_store: ModelStore, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    provider = RecordingProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)

    async def main() -> None:
        async with running(settings_for(tiny_store, opentelemetry=enabled)) as (client, _):
            r = await client.post("/classify", json={"task": "sentiment", "text": "great"})
            assert r.status_code == 200
            assert (await client.get("/v1/models")).status_code == 200

    run(main)
    if enabled:
        # One server span per request, named by method: the lean /classify path included,
        # as it runs inside FastAPI's instrumentation.
        assert [n for n in provider.names if n in ("GET", "POST")] == ["POST", "GET"]
    else:
        assert provider.names == []
