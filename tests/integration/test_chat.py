"""POST /v1/chat/completions on the wire: plain, streamed, with usage, and its errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.api.routes import chat
from app.errors import InferenceFailed
from app.store.versions import ModelStore
from tests.integration.conftest import gate_engine, run, running, settings_for
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model

RETURN = "I want to return and send back my shoes"


@pytest.fixture
def reply_store(store: ModelStore) -> ModelStore:
    publish_tiny_reply_model(store)
    publish_tiny_classifier(store, "sentiment")
    return store


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def events(body: str) -> list[Any]:
    """The data of each server-sent event; ``[DONE]`` stays a string."""
    out: list[Any] = []
    for block in body.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def stream(client: httpx.AsyncClient, **body: Any) -> tuple[httpx.Response, list[Any]]:
    r = await client.post("/v1/chat/completions", json={"stream": True, **body})
    return r, events(r.text) if r.status_code == 200 else []


def test_plain_completion_matches_reply(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            r = await client.post(
                "/v1/chat/completions",
                json={
                    "model": "reply",
                    "messages": [{"role": "system", "content": "be nice"}, user("track my order")],
                    "temperature": 0.2,  # OpenAI knobs are accepted and do not apply
                    "max_tokens": 5,
                    "user": "customer-42",
                    "textserve": {"slots": {"order_number": "A-7"}},
                },
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["object"] == "chat.completion"
            assert body["id"].startswith("chatcmpl-")
            assert (body["model"], body["system_fingerprint"]) == ("reply", "reply@1")
            (choice,) = body["choices"]
            assert choice["message"] == {
                "role": "assistant",
                "content": "Your order A-7 is on its way.",
            }
            assert choice["finish_reason"] == "stop"
            usage = body["usage"]
            assert usage["prompt_tokens"] > 0
            assert usage["completion_tokens"] > 0
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
            ext = body["textserve"]
            assert (ext["intent"], ext["handoff"], ext["missing_slots"]) == (
                "track_order",
                False,
                [],
            )
            assert ext["version"] == 1
            assert ext["sentiment"]["label"]
            assert float(r.headers["x-inference-time"]) >= 0

    run(main)


def test_the_messages_are_the_conversation(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, app):
            messages = [
                user(RETURN),
                {"role": "assistant", "content": "You can return any item within 30 days."},
                {"role": "tool", "content": "ignored"},
                user("and how long will that take?"),
            ]
            r = await client.post(
                "/v1/chat/completions", json={"model": "reply", "messages": messages}
            )
            ext = r.json()["textserve"]
            assert (ext["intent"], ext["context_used"]) == ("return_item", True)
            assert app.state.services.responder.conversations.size == 0  # stateless

    run(main)


def test_streamed_chunks_rebuild_the_reply_and_end_with_done(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            messages = [user("I want to talk to a human person please")]
            plain = await client.post(
                "/v1/chat/completions", json={"model": "reply", "messages": messages}
            )
            r, chunks = await stream(client, model="reply", messages=messages)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert chunks[-1] == "[DONE]"
            data = chunks[:-1]
            assert {c["object"] for c in data} == {"chat.completion.chunk"}
            assert len({c["id"] for c in data}) == 1
            first, *content, last = data
            assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
            assert first["textserve"]["handoff_reason"] == "customer_asked_for_human"
            assert len(content) >= 2  # a few words per chunk
            text = "".join(c["choices"][0]["delta"]["content"] for c in content)
            assert text == plain.json()["choices"][0]["message"]["content"]
            assert last["choices"][0] == {
                "index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None
            }  # fmt: skip
            assert all("usage" not in c for c in data)

    run(main)


def test_include_usage_adds_a_final_usage_chunk(reply_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            _, chunks = await stream(
                client,
                model="reply",
                messages=[user("hello")],
                stream_options={"include_usage": True},
            )
            *data, usage_chunk, done = chunks
            assert done == "[DONE]"
            assert all(c["usage"] is None for c in data)
            assert usage_chunk["choices"] == []
            usage = usage_chunk["usage"]
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    run(main)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"messages": [user("hi")], "n": 2}, "n"),
        ({"messages": [user("hi"), {"role": "assistant", "content": "x"}]}, "messages.1.role"),
        ({"messages": [user("  ")]}, "messages.0.content"),
        ({"messages": []}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages.0.content",
        ),
        ({"messages": [user("hi")], "textserve": {"slots": {"a": [1]}}}, "textserve.slots"),
    ],
)
def test_bad_requests_are_422(reply_store: ModelStore, payload: dict[str, Any], param: str) -> None:
    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            r = await client.post("/v1/chat/completions", json={"model": "reply", **payload})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["param"].startswith(param)

    run(main)


def test_content_and_slots_are_checked_as_on_reply(reply_store: ModelStore) -> None:
    async def post(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
        return await client.post("/v1/chat/completions", json={"model": "reply", **body})

    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            image = {"type": "image_url", "image_url": {"url": "http://x"}}
            r = await post(client, messages=[{"role": "user", "content": [image]}])
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["param"] == "messages.0.content"
            assert "only text content parts are supported" in error["message"]
            # Text parts are read as the message they spell.
            parts = [{"type": "text", "text": "track my order"}]
            r = await post(client, messages=[{"role": "user", "content": parts}])
            assert r.status_code == 200, r.text
            assert r.json()["textserve"]["intent"] == "track_order"

            for text in ("\u0000", "\u200b\u200b\ufeff"):
                r = await post(client, messages=[user(text)])
                assert r.status_code == 422, r.text
                assert r.json()["error"]["message"] == "messages.0.content: text is empty"

            slots = {"order_number": "{{website_url}}"}
            r = await post(client, messages=[user("track my order")], textserve={"slots": slots})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["param"] == "textserve.slots.order_number"
            slots = {"order_number": " "}
            r = await post(client, messages=[user("where is my order")], textserve={"slots": slots})
            assert r.status_code == 200, r.text
            assert r.json()["textserve"]["missing_slots"] == ["order_number"]
            assert "{" not in r.json()["choices"][0]["message"]["content"]

    run(main)


def test_refusals_before_the_stream_are_http_statuses(reply_store: ModelStore) -> None:
    async def main() -> None:
        settings = settings_for(reply_store, max_queue_texts=1, max_batch_size=1, max_wait_ms=0)
        async with running(settings) as (client, app):
            r, _ = await stream(client, model="nope", messages=[user("hi")])
            assert r.status_code == 404
            gate = gate_engine(app, "reply")
            gate.gate.clear()
            busy = asyncio.create_task(stream(client, model="reply", messages=[user("hi")]))
            await asyncio.sleep(0.1)
            queued = asyncio.create_task(stream(client, model="reply", messages=[user("hello")]))
            await asyncio.sleep(0.1)
            r, _ = await stream(client, model="reply", messages=[user("hey")])
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1"
            gate.gate.set()
            assert (await busy)[1][-1] == "[DONE]"
            assert (await queued)[1][-1] == "[DONE]"

    run(main)


def test_an_error_mid_stream_is_an_error_event_not_done(
    reply_store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_pieces(text: str) -> Iterator[str]:
        yield text[:6]
        raise InferenceFailed("injected failure after the first chunk")

    monkeypatch.setattr(chat, "reply_pieces", failing_pieces)

    async def main() -> None:
        async with running(settings_for(reply_store)) as (client, _):
            r, chunks = await stream(
                client,
                model="reply",
                messages=[user("hello")],
                stream_options={"include_usage": True},
            )
            assert r.status_code == 200  # the status line went out before the failure
            assert "[DONE]" not in chunks
            role, content, error = chunks
            assert role["choices"][0]["delta"]["role"] == "assistant"
            assert content["choices"][0]["delta"]["content"] == "Hello!"
            assert error["error"]["type"] == "inference_failed"
            assert error["error"]["status"] == 500
            assert "injected failure" in error["error"]["message"]
            assert error["error"]["request_id"] == r.headers["x-request-id"]

    run(main)


def test_a_deadline_set_through_the_extension_is_kept(reply_store: ModelStore) -> None:
    async def main() -> None:
        settings = settings_for(reply_store, max_batch_size=1, max_wait_ms=0)
        async with running(settings) as (client, app):
            gate = gate_engine(app, "reply")
            gate.gate.clear()  # the model holds the first run
            body = {"model": "reply", "messages": [user("hello")]}
            busy = asyncio.create_task(client.post("/v1/chat/completions", json=body))
            await asyncio.sleep(0.1)
            late = {**body, "textserve": {"timeout_ms": 100}}
            r = await client.post("/v1/chat/completions", json=late)
            assert r.status_code == 504, r.text
            gate.gate.set()
            assert (await busy).status_code == 200
            too_long = {**body, "textserve": {"timeout_ms": settings.max_timeout_ms + 1}}
            r = await client.post("/v1/chat/completions", json=too_long)
            assert r.status_code == 422
            assert r.json()["error"]["param"] == "textserve.timeout_ms"

    run(main)
