"""A shared Redis stopped under a running app: serving goes on, each piece falls back as
documented (docs/scale-out.md), /readyz and the metrics say so, and it all comes back."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for
from tests.support.redis_server import RedisServer
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model

KEY = "app-key-0123456789ab"
HEADERS = {"X-API-Key": KEY}
ONE = {"text": "fine", "task": "sentiment"}
RETRY_S = 0.3


@pytest.fixture
def reply_store(store: ModelStore) -> ModelStore:
    publish_tiny_reply_model(store)
    publish_tiny_classifier(store, "sentiment")
    return store


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the exposition's samples of ``name`` that carry ``labels``; 0 when none."""
    total = 0.0
    for found in re.finditer(rf"^{name}(?:{{(.*)}})? (\S+)$", text, re.MULTILINE):
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(found.group(2))
    return total


async def ask(client: httpx.AsyncClient, message: str) -> httpx.Response:
    body = {"message": message, "conversation_id": "c-1"}
    r = await client.post("/reply", json=body, headers=HEADERS)
    assert r.status_code == 200, r.text
    return r


def test_serving_rides_out_a_redis_outage(
    reply_store: ModelStore, redis_server: RedisServer
) -> None:
    settings = settings_for(
        reply_store,
        api_keys=f"app:infer:{KEY}",
        redis_url=redis_server.url,
        redis_retry_s=RETRY_S,
        rate_limit_requests={"infer": 0.01},  # 100 requests, refilling too slowly to matter
        rate_limit_burst_s=10_000.0,
    )

    async def main() -> None:
        async with running(settings) as (client, _):
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["redis"] == "ok"
            await ask(client, "I want to return and send back my shoes")
            r = await client.post("/classify", json=ONE, headers=HEADERS)
            assert r.headers["x-ratelimit-remaining"] == "98"  # charged in Redis

            redis_server.stop()
            # Replies go on without the kept turns, and say so.
            follow_up = await ask(client, "and how long will that take?")
            assert follow_up.headers["x-conversation-state"] == "stateless"
            assert follow_up.json()["context_used"] is False
            # Rate limits fall back to this replica's own buckets (fail mode `local`), which
            # start full: the /reply above took the first request, this one the second.
            r = await client.post("/classify", json=ONE, headers=HEADERS)
            assert r.status_code == 200
            assert r.headers["x-ratelimit-remaining"] == "98"
            # The conversation cannot be read back meanwhile: 503, retry later.
            gone = await client.get("/v1/conversations/c-1", headers=HEADERS)
            assert gone.status_code == 503 and "retry-after" in gone.headers
            assert gone.json()["error"]["type"] == "shared_state_unavailable"
            # Still ready (serving goes on); the body and the metrics tell.
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {**ready.json(), "status": "ready", "redis": "unavailable"}
            text = (await client.get("/metrics")).text
            assert metric(text, "textserve_redis_up") == 0
            # The first call to find it gone counts the error; the rest fall back at once.
            assert metric(text, "textserve_redis_errors_total") >= 1
            fallbacks = "textserve_redis_fallbacks_total"
            assert metric(text, fallbacks, use="conversations", mode="stateless") >= 1
            assert metric(text, fallbacks, use="rate_limits", mode="local") >= 1

            # Back (empty: no persistence): once the retry period is over, all is shared again.
            redis_server.start()
            await asyncio.sleep(RETRY_S + 0.1)
            first = await ask(client, "I want to return and send back my shoes")
            assert "x-conversation-state" not in first.headers
            second = await ask(client, "and how long will that take?")
            assert second.json()["context_used"] is True
            kept = await client.get("/v1/conversations/c-1", headers=HEADERS)
            assert len(kept.json()["turns"]) == 4
            assert (await client.get("/readyz")).json()["redis"] == "ok"
            assert metric((await client.get("/metrics")).text, "textserve_redis_up") == 1

    run(main)


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_rate_limits_fail_open_or_closed_as_set(
    tiny_store: ModelStore, redis_server: RedisServer, mode: str
) -> None:
    settings = settings_for(
        tiny_store,
        api_keys=f"app:infer:{KEY}",
        redis_url=redis_server.url,
        redis_rate_limit_fail=mode,
    )

    async def main() -> None:
        async with running(settings) as (client, _):
            r = await client.post("/classify", json=ONE, headers=HEADERS)
            assert r.status_code == 200 and "x-ratelimit-limit" in r.headers
            redis_server.stop()
            r = await client.post("/classify", json=ONE, headers=HEADERS)
            if mode == "open":
                # Let through, unlimited: no budget to report.
                assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
            else:
                assert r.status_code == 503 and "retry-after" in r.headers
                assert r.json()["error"]["type"] == "shared_state_unavailable"
                assert "TEXTSERVE_REDIS_RATE_LIMIT_FAIL" in r.json()["error"]["message"]
            # Probes never need Redis.
            assert (await client.get("/readyz")).status_code == 200

    run(main)
