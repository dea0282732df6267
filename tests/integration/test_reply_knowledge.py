"""/reply and /v1/chat/completions answering from a knowledge base, with citations."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for
from tests.integration.test_knowledge_bases import KB, hashing_resolver, make_kb, ok
from tests.support.hashing_embedder import HashingEmbedder
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model

WARRANTY_QUESTION = "Which warranty covers batteries?"


@pytest.fixture
def reply_store(store: ModelStore) -> ModelStore:
    publish_tiny_reply_model(store)
    publish_tiny_classifier(store, "sentiment")
    return store


def app_for(store: ModelStore, **overrides: Any) -> Any:
    # The hashing embedder's cosines are lower than a sentence encoder's: its own threshold.
    settings = settings_for(store, **{"reply_kb_min_score": 0.15, **overrides})
    return running(settings, embedders=hashing_resolver(HashingEmbedder()))


async def reply(client: httpx.AsyncClient, message: str, kb_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if kb_id is not None:
        body["knowledge_base"] = kb_id
    return await ok(await client.post("/reply", json=body))


def test_a_question_the_intents_miss_is_answered_from_the_documents(
    reply_store: ModelStore,
) -> None:
    async def main() -> None:
        async with app_for(reply_store) as (client, _):
            kb_id = await make_kb(client)
            # Without the knowledge base: the intents do not cover it, a human takes over.
            alone = await reply(client, WARRANTY_QUESTION, None)
            assert (alone["handoff"], alone["handoff_reason"]) == (True, "low_confidence")
            assert (alone["answer_source"], alone["citations"]) == ("template", [])

            body = await reply(client, WARRANTY_QUESTION, kb_id)
            assert body["answer_source"] == "knowledge_base"
            assert (body["handoff"], body["handoff_reason"]) == (False, None)
            # Quoted from the passage, never written: a sentence of the warranty document.
            assert body["reply"] == "Batteries are covered by the warranty for one year."
            assert body["template"] == ""
            cited = body["citations"][0]
            assert (cited["document_id"], cited["chunk_id"]) == ("warranty", "warranty#0")
            assert cited["metadata"] == {"topic": "policy"}
            assert cited["score"] >= 0.15
            assert all(c["score"] >= 0.15 for c in body["citations"])
            # Intent and confidence still report the intent model's (unsure) guess.
            assert (body["intent"], body["confidence"]) == (alone["intent"], alone["confidence"])

    run(main)


def test_unrelated_questions_and_requests_for_a_human_still_hand_off(
    reply_store: ModelStore,
) -> None:
    async def main() -> None:
        async with app_for(reply_store) as (client, _):
            kb_id = await make_kb(client)
            body = await reply(client, "blorp zzv quux", kb_id)
            assert (body["handoff"], body["handoff_reason"]) == (True, "low_confidence")
            assert (body["answer_source"], body["citations"]) == ("template", [])
            assert body["reply"] == "Of course, I'm transferring you to a human agent now."
            body = await reply(client, "I want to talk to a human person about the warranty", kb_id)
            assert (body["handoff_reason"], body["answer_source"]) == (
                "customer_asked_for_human", "template",
            )  # fmt: skip
            # A confident intent with a vetted reply keeps its template.
            body = await reply(client, "how long does delivery take", kb_id)
            assert (body["intent"], body["answer_source"]) == ("delivery_time", "template")
            assert body["reply"] == "Delivery usually takes 3 to 5 business days."
            metrics = (await client.get("/metrics")).text
            # The knowledge-base answer was no handoff; the gibberish one was.
            low = 'textserve_handoffs_total{model="reply",reason="low_confidence",version="1"} 1.0'
            assert low in metrics

    run(main)


def test_the_threshold_is_a_setting_and_unknown_knowledge_bases_are_404(
    reply_store: ModelStore,
) -> None:
    async def main() -> None:
        async with app_for(reply_store, reply_kb_min_score=0.99) as (client, _):
            kb_id = await make_kb(client)
            body = await reply(client, WARRANTY_QUESTION, kb_id)
            assert (body["handoff_reason"], body["answer_source"]) == ("low_confidence", "template")
            r = await client.post(
                "/reply", json={"message": WARRANTY_QUESTION, "knowledge_base": "kb_nope"}
            )
            assert r.status_code == 404, r.text
            assert r.json()["error"]["param"] == "knowledge_base"
            r = await client.post("/reply", json={"message": "hi", "knowledge_base": ""})
            assert (r.status_code, r.json()["error"]["param"]) == (422, "knowledge_base")

    run(main)


def test_chat_completions_carry_the_answer_and_citations(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with app_for(reply_store) as (client, _):
            kb_id = await make_kb(client)
            request = {
                "model": "reply",
                "messages": [{"role": "user", "content": WARRANTY_QUESTION}],
                "textserve": {"knowledge_base": kb_id},
            }
            body = await ok(await client.post("/v1/chat/completions", json=request))
            content = body["choices"][0]["message"]["content"]
            assert content == "Batteries are covered by the warranty for one year."
            extension = body["textserve"]
            assert extension["answer_source"] == "knowledge_base"
            assert extension["citations"][0]["document_id"] == "warranty"
            assert extension["handoff"] is False
            r = await client.get(f"{KB}/{kb_id}")
            assert r.status_code == 200

    run(main)
