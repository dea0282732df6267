"""GET and DELETE /v1/conversations/{id} through the real app: what a human agent reads when
the bot hands over, scoped to the key that owns the conversation; kept in process or in Redis."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for
from tests.support.redis_server import RedisServer
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model

ALICE = "alice-key-0123456789"
BOB = "bob-key-01234567890"
KEYS = f"alice:infer:{ALICE};bob:infer:{BOB}"


@pytest.fixture
def reply_store(store: ModelStore) -> ModelStore:
    publish_tiny_reply_model(store)
    publish_tiny_classifier(store, "sentiment")
    return store


@pytest.fixture(params=["in_process", "redis"])
def kept_in(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for where conversations are kept."""
    if request.param == "in_process":
        return {}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"redis_url": server.url}


async def reply(client: httpx.AsyncClient, key: str, message: str, cid: str) -> dict[str, Any]:
    r = await client.post(
        "/reply", json={"message": message, "conversation_id": cid}, headers={"X-API-Key": key}
    )
    assert r.status_code == 200, r.text
    assert "x-conversation-state" not in r.headers
    body: dict[str, Any] = r.json()
    return body


def test_the_owner_reads_every_turn_and_no_other_key_does(
    reply_store: ModelStore, kept_in: dict[str, Any]
) -> None:
    async def main() -> None:
        settings = settings_for(reply_store, api_keys=KEYS, **kept_in)
        async with running(settings) as (client, _):
            alice, bob = {"X-API-Key": ALICE}, {"X-API-Key": BOB}
            started = time.time()
            first = await reply(client, ALICE, "I want to return and send back my shoes", "c-1")
            second = await reply(client, ALICE, "and how long will that take?", "c-1")
            r = await client.get("/v1/conversations/c-1", headers=alice)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["id"] == "c-1"
            turns = body["turns"]
            assert [(t["role"], t["content"]) for t in turns] == [
                ("user", "I want to return and send back my shoes"),
                ("assistant", first["reply"]),
                ("user", "and how long will that take?"),
                ("assistant", second["reply"]),
            ]
            for turn, answer in zip(turns, (first, first, second, second), strict=True):
                assert turn["intent"] == answer["intent"]
                assert turn["confidence"] == pytest.approx(answer["confidence"])
                assert started <= turn["at"] <= time.time()
            # The handoff decision sits on the assistant's turns; the customer's carry none.
            assert [t["handoff"] for t in turns] == [
                None,
                first["handoff"],
                None,
                second["handoff"],
            ]
            assert turns[1]["handoff_reason"] == first["handoff_reason"]
            # Bob's same id is another conversation: he reads and deletes nothing of Alice's.
            r = await client.get("/v1/conversations/c-1", headers=bob)
            assert r.status_code == 404
            assert r.json()["error"]["type"] == "conversation_not_found"
            assert r.json()["error"]["param"] == "conversation_id"
            assert (await client.delete("/v1/conversations/c-1", headers=bob)).status_code == 404
            assert (
                len((await client.get("/v1/conversations/c-1", headers=alice)).json()["turns"]) == 4
            )
            # Without a key: 401, as on /reply.
            assert (await client.get("/v1/conversations/c-1")).status_code == 401
            # Alice forgets it: gone for reads, and the next /reply starts afresh.
            r = await client.delete("/v1/conversations/c-1", headers=alice)
            assert r.status_code == 200
            assert r.json() == {"id": "c-1", "object": "conversation", "deleted": True}
            assert (await client.get("/v1/conversations/c-1", headers=alice)).status_code == 404
            assert (await client.delete("/v1/conversations/c-1", headers=alice)).status_code == 404
            again = await reply(client, ALICE, "and how long will that take?", "c-1")
            assert again["context_used"] is False

    run(main)


def test_a_malformed_id_is_refused_naming_the_field(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            r = await client.get("/v1/conversations/not%20valid")
            assert r.status_code == 422
            assert r.json()["error"]["param"] == "conversation_id"
            too_long = "x" * 129
            assert (await client.delete(f"/v1/conversations/{too_long}")).status_code == 422
            # Open mode: one namespace; an unknown id is 404.
            assert (await client.get("/v1/conversations/unknown")).status_code == 404

    run(main)
