"""A client that leaves before its answer: its queued texts never reach the model.

Through a real uvicorn server, since the disconnect is the server's to notice: a request's
task is not cancelled when its connection closes, only told so by its next ``receive()``.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.registry.store import ModelStore
from tests.integration.conftest import gate_engine, settings_for
from tests.support.inprocess_server import serve_in_thread


def _metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


@pytest.mark.parametrize("lean", [True, False])
def test_queued_request_of_a_client_that_left_is_dropped(
    tiny_store: ModelStore, lean: bool
) -> None:
    with serve_in_thread(settings_for(tiny_store, lean_http=lean, max_batch_size=1)) as (url, app):
        gate = gate_engine(app, "sentiment")

        async def main() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                before = (await client.get("/metrics")).text
                gate.gate.clear()  # the model holds the first run until told to go on
                first = asyncio.create_task(
                    client.post("/classify", json={"task": "sentiment", "text": "first"})
                )
                await asyncio.sleep(0.3)
                # Queued behind the held run; then its client gives up and closes the socket.
                async with httpx.AsyncClient(base_url=url, timeout=30) as leaver:
                    gone = asyncio.create_task(
                        leaver.post("/classify", json={"task": "sentiment", "texts": ["a", "b"]})
                    )
                    await asyncio.sleep(0.3)
                    gone.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await gone
                await asyncio.sleep(0.3)  # the server notices the closed connection
                gate.gate.set()
                assert (await first).status_code == 200
                # Answered, and nothing else ran: the leaver's two texts were dropped unrun.
                r = await client.post("/classify", json={"task": "sentiment", "text": "after"})
                assert r.status_code == 200
                after = (await client.get("/metrics")).text
            texts = "textserve_texts_total{"
            assert _metric(after, texts) - _metric(before, texts) == 2
            gone_499 = 'textserve_http_requests_total{method="POST",route="/classify",status="499"}'
            assert _metric(after, gone_499) == 1

        asyncio.run(main())
