"""POST /reply through the real app, a tiny real reply model and a tiny real sentiment model."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.service import Services
from app.serving.conversations import ConversationStore
from app.store.versions import ModelStore
from tests.integration.conftest import gate_engine, run, running, settings_for
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model


@pytest.fixture
def reply_store(store: ModelStore) -> ModelStore:
    """A tiny `reply` model and a tiny `sentiment` model, both active."""
    publish_tiny_reply_model(store)
    publish_tiny_classifier(store, "sentiment")
    return store


async def ask(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post("/reply", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def test_reply_with_intent_confidence_alternatives_and_timings(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            r = await client.post("/reply", json={"message": "how long does delivery take"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["reply"] == "Delivery usually takes 3 to 5 business days."
            assert body["template"] == body["reply"]
            assert (body["intent"], body["model"], body["version"]) == ("delivery_time", "reply", 1)
            assert body["confidence"] > 0.9
            assert body["handoff"] is False
            assert body["handoff_reason"] is None
            assert len(body["alternatives"]) == 3
            assert all(a["score"] <= body["confidence"] for a in body["alternatives"])
            assert body["missing_slots"] == []
            assert body["context_used"] is False
            assert body["sentiment"]["model"] == "sentiment@1"
            assert body["conversation_id"] is None
            for header in ("x-total-time", "x-queue-time", "x-inference-time"):
                assert float(r.headers[header]) >= 0.0

    run(main)


def test_slots_fill_templates_and_missing_ones_are_asked_for(reply_store: ModelStore) -> None:
    async def main() -> None:
        settings = settings_for(reply_store, reply_slots={"support_hours": "9 to 5"})
        async with running(settings) as (client, _):
            body = await ask(client, message="where is my order")
            assert body["intent"] == "track_order"
            assert body["missing_slots"] == ["order_number"]
            assert body["reply"] == (
                "To help you with that, could you please tell me your order number?"
            )
            assert body["template"] == "Your order {{order_number}} is on its way."
            body = await ask(client, message="where is my order", slots={"Order Number": 4711})
            assert (body["reply"], body["missing_slots"]) == ("Your order 4711 is on its way.", [])
            # A deployment-wide slot (settings) lets the other template answer on its own.
            body = await ask(client, message="track my parcel", slots={"website_url": "shop.test"})
            assert body["reply"] == "You can follow every order on shop.test."
            body = await ask(client, message="hello", slots={"customer_name": "Ada"})
            assert body["reply"] in ("Hi Ada, welcome back!", "Hello! How can I help you today?")
            assert "{{" not in body["reply"]

    run(main)


def test_a_blank_slot_is_missing_and_asked_for(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            for blank in ("", "  ", "\u200b"):
                body = await ask(client, message="where is my order", slots={"order_number": blank})
                assert body["missing_slots"] == ["order_number"], blank
                assert body["reply"] == (
                    "To help you with that, could you please tell me your order number?"
                )
        # A blank value does not hide the deployment's own.
        settings = settings_for(reply_store, reply_slots={"website_url": "shop.test"})
        async with running(settings) as (client, _):
            body = await ask(client, message="track my parcel", slots={"website_url": " "})
            assert body["reply"] == "You can follow every order on shop.test."

    run(main)


def test_handoffs_by_reason_are_counted(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            body = await ask(client, message="I want to talk to a human person")
            assert (body["handoff"], body["handoff_reason"]) == (True, "customer_asked_for_human")
            assert body["intent"] == "human_agent"
            assert body["reply"] == "Of course, I'm transferring you to a human agent now."
            body = await ask(client, message="blorp zzv quux")
            assert (body["handoff"], body["handoff_reason"]) == (True, "low_confidence")
            assert body["confidence"] < 0.5
            assert body["reply"] == "Of course, I'm transferring you to a human agent now."
            body = await ask(client, message="this is awful and terrible")
            assert body["intent"] == "complaint"
            assert body["sentiment"]["label"] == "negative"
            assert (body["handoff"], body["handoff_reason"]) == (True, "negative_sentiment")
            body = await ask(client, message="hello")
            assert body["handoff"] is False
            metrics = (await client.get("/metrics")).text
            for reason in ("customer_asked_for_human", "low_confidence", "negative_sentiment"):
                assert (
                    f'textserve_handoffs_total{{model="reply",reason="{reason}",version="1"}} 1.0'
                    in metrics
                )
            assert (
                'textserve_predictions_total{label="greeting",model="reply",version="1"} 1.0'
                in metrics
            )

    run(main)


def test_thresholds_come_from_settings(reply_store: ModelStore) -> None:
    async def main() -> None:
        settings = settings_for(
            reply_store,
            reply_negative_sentiment=1.0,
            reply_sentiment_model="",
            reply_alternatives=1,
        )
        async with running(settings) as (client, _):
            body = await ask(client, message="this is awful and terrible")
            assert (body["handoff"], body["sentiment"]) == (False, None)
            assert len(body["alternatives"]) == 1
        async with running(settings_for(reply_store, reply_low_confidence=0.999)) as (client, _):
            body = await ask(client, message="how long does delivery take")
            assert body["handoff_reason"] == "low_confidence"

    run(main)


def test_conversation_memory_resolves_short_follow_ups(reply_store: ModelStore) -> None:
    follow_up = "and how long will that take?"

    async def main() -> None:
        settings = settings_for(reply_store, conversation_max_turns=4)
        async with running(settings) as (client, app):
            services: Services = app.state.services
            kept_turns = services.responder.conversations
            assert isinstance(kept_turns, ConversationStore)  # the embedded default
            alone = await ask(client, message=follow_up)
            assert (alone["intent"], alone["context_used"]) == ("delivery_time", False)
            first = await ask(
                client, message="I want to return and send back my shoes", conversation_id="c-1"
            )
            assert first["intent"] == "return_item"
            assert first["conversation_id"] == "c-1"
            body = await ask(client, message=follow_up, conversation_id="c-1")
            assert (body["intent"], body["context_used"]) == ("return_item", True)
            # Another conversation does not see c-1's turns.
            body = await ask(client, message=follow_up, conversation_id="c-2")
            assert (body["intent"], body["context_used"]) == ("delivery_time", False)
            turns = kept_turns.turns("c-1")
            assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]
            await ask(client, message="hello", conversation_id="c-1")
            assert len(kept_turns.turns("c-1")) == 4  # bounded
            # Explicit history wins over the kept turns and is not stored.
            kept = kept_turns.bytes
            body = await ask(
                client,
                message=follow_up,
                conversation_id="c-3",
                history=[{"role": "user", "content": "I want to return and send back my shoes"}],
            )
            assert (body["intent"], body["context_used"]) == ("return_item", True)
            assert kept_turns.turns("c-3") == []
            assert kept_turns.bytes == kept
            assert "textserve_conversations 2.0" in (await client.get("/metrics")).text

    run(main)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"message": "   "}, "message"),
        ({"message": "x" * 300}, "message"),
        ({}, "message"),
        ({"message": "hi", "conversation_id": "no spaces allowed"}, "conversation_id"),
        (
            {"message": "hi", "history": [{"role": "user", "content": "y" * 300}]},
            "history.0.content",
        ),
        ({"message": "hi", "history": [{"role": "robot", "content": "x"}]}, "history.0.role"),
        ({"message": "\u0000"}, "message"),
        ({"message": "\u200b\u200b\ufeff"}, "message"),
        ({"message": "hi", "slots": {"a": True}}, "slots.a"),
        ({"message": "hi", "slots": {"order_number": "{{website_url}}"}}, "slots.order_number"),
        ({"message": "hi", "slots": {"Order Number": "A}"}}, "slots.Order Number"),
        ({"message": "hi", "slots": {f"s{i}": "v" for i in range(65)}}, "slots"),
        ({"message": "hi", "timeout_ms": 10**9}, "timeout_ms"),
        ({"message": "hi", "model": "../x"}, "model"),
        ({"message": "hi", "model": ""}, "model"),  # refused as sent, not read as the default
        ({"message": "hi", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    reply_store: ModelStore, payload: dict[str, object], param: str
) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store, max_text_chars=200)) as (client, _):
            r = await client.post("/reply", json=payload)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["param"] == param

    run(main)


def test_invisible_text_is_empty_and_braces_in_slots_are_refused(
    reply_store: ModelStore,
) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            for text in ("   ", "\u0000", "\u200b\u200b\ufeff"):
                r = await client.post("/reply", json={"message": text})
                assert r.status_code == 422, r.text
                assert r.json()["error"]["message"] == "message: text is empty"
            r = await client.post(
                "/reply", json={"message": "hi", "slots": {"order_number": "{{website_url}}"}}
            )
            assert r.status_code == 422, r.text
            assert "{" in r.json()["error"]["message"]
            assert r.json()["error"]["message"].startswith("slots.order_number: ")
            # Visible text after an invisible character is text.
            body = await ask(client, message="\u200bwhere is my order")
            assert body["intent"] == "track_order"

    run(main)


def test_unknown_or_non_reply_models_are_404(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            for model in ("nope", "sentiment", "reply@7"):
                r = await client.post("/reply", json={"message": "hi", "model": model})
                assert r.status_code == 404, (model, r.text)
                assert r.json()["error"]["param"] == "model"
            r = await client.post("/reply", json={"message": "hi", "model": "reply@1"})
            assert r.status_code == 200
            r = await client.get("/v1/models/reply")
            assert (r.json()["task"], r.json()["labels"][0]) == ("reply", "track_order")

    run(main)


def test_full_queue_is_429_and_a_passed_deadline_504(reply_store: ModelStore) -> None:
    async def main() -> None:
        settings = settings_for(reply_store, max_queue_texts=1, max_batch_size=1, max_wait_ms=0)
        async with running(settings) as (client, app):
            gate = gate_engine(app, "reply")
            gate.gate.clear()
            busy = asyncio.create_task(client.post("/reply", json={"message": "hello"}))
            await asyncio.sleep(0.1)
            queued = asyncio.create_task(
                client.post("/reply", json={"message": "hi", "timeout_ms": 100})
            )
            await asyncio.sleep(0.05)
            r = await client.post("/reply", json={"message": "hello"})
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1"
            assert (await queued).status_code == 504
            gate.gate.set()
            assert (await busy).status_code == 200

    run(main)


def test_a_burst_on_a_new_version_reads_its_bank_once(
    reply_store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.serving import responder

    reads: list[str] = []
    read_bank = responder._read_bank

    def counted(engine: Any) -> Any:
        reads.append(engine.ref)
        return read_bank(engine)

    monkeypatch.setattr(responder, "_read_bank", counted)

    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            burst = [
                client.post("/reply", json={"message": f"where is order {i}"}) for i in range(24)
            ]
            answers = await asyncio.gather(*burst)
            assert [r.status_code for r in answers] == [200] * 24
            assert reads == ["reply@1"]

    run(main)


def test_a_conversation_belongs_to_the_key_that_keeps_it(reply_store: ModelStore) -> None:
    one, two = "key-one-0123456789", "key-two-0123456789"
    settings = settings_for(reply_store, api_keys=f"one:infer:{one};two:infer:{two}")
    follow_up = "and how long will that take?"

    async def main() -> None:
        async with running(settings) as (client, _):

            async def say(key: str, message: str) -> dict[str, Any]:
                body = {"message": message, "conversation_id": "shared-id"}
                r = await client.post("/reply", json=body, headers={"X-API-Key": key})
                assert r.status_code == 200, r.text
                answer: dict[str, Any] = r.json()
                return answer

            await say(one, "I want to return and send back my shoes")
            # The same id from another key is another conversation: nothing of key one's.
            other = await say(two, follow_up)
            assert (other["intent"], other["context_used"]) == ("delivery_time", False)
            assert other["conversation_id"] == "shared-id"
            # And key one's conversation goes on as if key two had never written to it.
            mine = await say(one, follow_up)
            assert (mine["intent"], mine["context_used"]) == ("return_item", True)

    run(main)
