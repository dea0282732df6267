"""Two real `textserve serve` processes on one model store and one redis-server, as two
Kubernetes pods behind a Service without session affinity: whichever replica a request
lands on, the customer's conversation, the key's rate limit and the active version agree."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from app.store.versions import ModelStore
from tests.support.redis_server import RedisServer
from tests.support.server import Server, textserve_process
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model

AGENT = "agent-key-0123456789"  # holds the conversation
LIMITED = "limited-key-01234567"  # measures the shared rate limit
ADMIN = "admin-key-0123456789"
KEYS = f"agent:infer:{AGENT};limited:infer:{LIMITED};ops:admin:{ADMIN}"
# 20 requests per key at once, then one every 2 s: two replicas counting alone would let 40
# through a burst.
RATE, BURST_S = 0.5, 40.0


@pytest.fixture
def replicas(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Server, Server]]:
    store = ModelStore(tmp_path / "models")
    publish_tiny_reply_model(store)
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_classifier(store, "sentiment", seed=1, activate=False)  # version 2, idle
    env = {
        "TEXTSERVE_REDIS_URL": redis_server.url,
        "TEXTSERVE_API_KEYS": KEYS,
        "TEXTSERVE_RATE_LIMIT_REQUESTS": f'{{"infer": {RATE}, "admin": 50}}',
        "TEXTSERVE_RATE_LIMIT_BURST_S": str(BURST_S),
        "TEXTSERVE_DATA_DIR": str(tmp_path / "var"),
        "TEXTSERVE_JOB_WORKER": "false",
        # No file watcher: a promotion can only reach the other replica through Redis.
        "TEXTSERVE_WATCH_INTERVAL_S": "0",
        "TEXTSERVE_LOG_FORMAT": "text",
    }
    with ExitStack() as stack:
        a = stack.enter_context(textserve_process(store.root, tmp_path, env, ready_timeout_s=120))
        b = stack.enter_context(textserve_process(store.root, tmp_path, env, ready_timeout_s=120))
        yield a, b


def test_conversation_limit_and_promotion_are_shared(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    agent = {"X-API-Key": AGENT}
    with httpx.Client(timeout=30) as client:
        # A conversation started on A continues on B, with A's turn as its context.
        said = {"message": "I want to return and send back my shoes", "conversation_id": "c-1"}
        first = client.post(f"{a.url}/reply", json=said, headers=agent)
        assert first.status_code == 200 and first.json()["intent"] == "return_item"
        follow = {"message": "and how long will that take?", "conversation_id": "c-1"}
        second = client.post(f"{b.url}/reply", json=follow, headers=agent)
        assert second.status_code == 200
        assert (second.json()["intent"], second.json()["context_used"]) == ("return_item", True)
        # Either replica shows every turn.
        for server in (a, b):
            r = client.get(f"{server.url}/v1/conversations/c-1", headers=agent)
            assert r.status_code == 200
            assert [t["content"] for t in r.json()["turns"]] == [
                said["message"],
                first.json()["reply"],
                follow["message"],
                second.json()["reply"],
            ]
        assert client.get(f"{b.url}/readyz").json()["redis"] == "ok"

        # One key's limit holds across both replicas.
        limited = {"X-API-Key": LIMITED}
        body = {"text": "fine", "task": "sentiment"}

        def send(i: int) -> int:
            url = (a if i % 2 == 0 else b).url
            return client.post(f"{url}/classify", json=body, headers=limited).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, range(60)))
        elapsed = time.monotonic() - started
        assert set(statuses) <= {200, 429}
        allowed = RATE * BURST_S + RATE * elapsed  # the burst, plus what refilled meanwhile
        granted = statuses.count(200)
        assert abs(granted - allowed) <= 0.2 * allowed, (granted, allowed, elapsed)

        # A promotion on A reaches B through the Redis nudge (B's file watcher is off).
        admin = {"X-API-Key": ADMIN}
        r = client.post(f"{a.url}/v1/models/sentiment/promote", json={"version": 2}, headers=admin)
        assert r.status_code == 200, r.text
        promoted = time.monotonic()
        loaded = None
        while time.monotonic() - promoted < 15:
            # The version B serves (the admin key's budget is large enough to poll with).
            loaded = client.get(f"{b.url}/v1/models/sentiment", headers=admin).json()
            if loaded["loaded_version"] == 2:
                break
            time.sleep(0.05)
        assert loaded is not None and loaded["loaded_version"] == 2
        served = client.post(f"{b.url}/classify", json=body, headers=agent)
        assert served.headers["x-model-version"] == "2"
        print(
            f"B served the promoted version {time.monotonic() - promoted:.2f} s after A's promote"
        )
