"""A client that leaves before its answer: its queued texts never reach the model.

Through a real uvicorn server, since the disconnect is the server's to notice: a request's
task is not cancelled when its connection closes, only told so by its next ``receive()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import gate_engine, settings_for
from tests.support.inprocess_server import serve_in_thread
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model


def _metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


@pytest.fixture
def both_store(store: ModelStore) -> ModelStore:
    """The tiny classifiers and a tiny reply model, all active."""
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_reply_model(store)
    return store


def _chat(text: str) -> dict[str, Any]:
    return {"model": "reply", "messages": [{"role": "user", "content": text}]}


# (route, model to hold, body of a request, lean_http)
CASES = [
    ("/classify", "sentiment", lambda t: {"task": "sentiment", "text": t}, True),
    ("/classify", "sentiment", lambda t: {"task": "sentiment", "text": t}, False),
    ("/reply", "reply", lambda t: {"message": t}, True),
    ("/v1/chat/completions", "reply", _chat, True),
]


@pytest.mark.parametrize(("path", "model", "body", "lean"), CASES)
def test_queued_request_of_a_client_that_left_is_dropped(
    both_store: ModelStore,
    path: str,
    model: str,
    body: Callable[[str], dict[str, Any]],
    lean: bool,
) -> None:
    with serve_in_thread(settings_for(both_store, lean_http=lean, max_batch_size=1)) as (url, app):
        gate = gate_engine(app, model)

        async def main() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                before = (await client.get("/metrics")).text
                gate.gate.clear()  # the model holds the first run until told to go on
                first = asyncio.create_task(client.post(path, json=body("hello there")))
                await asyncio.sleep(0.3)
                # Queued behind the held run; then its client gives up and closes the socket.
                async with httpx.AsyncClient(base_url=url, timeout=30) as leaver:
                    gone = asyncio.create_task(leaver.post(path, json=body("where is my parcel")))
                    await asyncio.sleep(0.3)
                    gone.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await gone
                await asyncio.sleep(0.3)  # the server notices the closed connection
                gate.gate.set()
                assert (await first).status_code == 200
                # Answered, and nothing else ran: the leaver's text was dropped unrun.
                assert (await client.post(path, json=body("thanks"))).status_code == 200
                after = (await client.get("/metrics")).text
            texts = f'textserve_texts_total{{model="{model}"'
            assert _metric(after, texts) - _metric(before, texts) == 2
            gone_499 = f'textserve_http_requests_total{{method="POST",route="{path}",status="499"}}'
            assert _metric(after, gone_499) == 1

        asyncio.run(main())
