"""The official `openai` package against a real server (real socket) and the real reply model."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from app.api.routes import chat
from app.errors import InferenceFailed
from app.store.versions import ModelStore
from tests.integration.conftest import settings_for
from tests.support.inprocess_server import serve_in_thread


@pytest.fixture(scope="module")
def client(trained_reply_store: ModelStore) -> Iterator[openai.OpenAI]:
    with serve_in_thread(settings_for(trained_reply_store)) as (url, _):
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="not-checked", max_retries=0)


def test_models_are_listed_the_openai_way(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"reply", "sentiment"} <= ids
    model = client.models.retrieve("reply")
    assert (model.id, model.object, model.owned_by) == ("reply", "model", "textserve")


def test_plain_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="reply",
        messages=[
            {"role": "system", "content": "You are the shop's assistant."},
            {"role": "user", "content": "where is my order"},
        ],
        user="customer-1",
        extra_body={"textserve": {"slots": {"order_number": "48213"}}},
    )
    assert completion.object == "chat.completion"
    (choice,) = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert "48213" in (choice.message.content or "")
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    extension = (completion.model_extra or {})["textserve"]
    assert (extension["intent"], extension["handoff"]) == ("track_order", False)


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "I want to talk to a human"}
    ]
    plain = client.chat.completions.create(model="reply", messages=messages)
    chunks = list(
        client.chat.completions.create(
            model="reply", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (chunks[0].model_extra or {})["textserve"]["handoff_reason"] == (
        "customer_asked_for_human"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_errors_reach_the_client(client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"  # where OpenAI clients read it
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(
            model="reply", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert (invalid.value.code, invalid.value.param) == ("invalid_request", "n")

    def failing_pieces(text: str) -> Iterator[str]:
        yield text[:5]
        raise InferenceFailed("injected failure after the first chunk")

    # The server runs in this process: the next stream fails after its first content chunk.
    monkeypatch.setattr(chat, "reply_pieces", failing_pieces)
    stream = client.chat.completions.create(
        model="reply", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    received: list[str] = []

    def read_all() -> None:
        received.extend(c.choices[0].delta.content or "" for c in stream)

    with pytest.raises(openai.APIError, match="injected failure"):
        read_all()
    assert "".join(received)  # content arrived before the error event
