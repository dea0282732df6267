"""Deeply nested JSON bodies: refused with 422 and the limit named, on every JSON route."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for

JSON = {"content-type": "application/json"}
DEEP_ARRAY = b'{"text": ' + b"[" * 10_000 + b"]" * 10_000 + b', "task": "sentiment"}'
DEEP_OBJECT = b'{"text": "x", "task": "sentiment", "meta": ' + b'{"a":' * 10_000 + b"1"
DEEP_OBJECT += b"}" * 10_000 + b"}"
ROUTES = ("/classify", "/reply", "/v1/chat/completions", "/v1/fine-tunes")


def assert_depth_refusal(r: httpx.Response, limit: int) -> None:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error == {
        "type": "invalid_request",
        "message": f"body: JSON nesting depth exceeds the limit of {limit}",
        "param": "body",
        "code": "invalid_request",
        "request_id": r.headers["x-request-id"],
    }


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_deep_bodies_get_422_naming_the_limit_on_every_route(
    tiny_store: ModelStore, body: bytes
) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, app):
            for route in ROUTES:
                assert_depth_refusal(await client.post(route, content=body, headers=JSON), 32)
            # The refusals are counted with the other refused inputs.
            rejections = app.state.services.metrics.rejections
            assert rejections.labels("-", "invalid_input")._value.get() == len(ROUTES)

    run(main)


def test_the_limit_is_a_setting_and_inclusive(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, max_json_depth=3)) as (client, _):
            # Depth 2: served as usual.
            ok = {"texts": ["great"], "task": "sentiment"}
            assert (await client.post("/classify", json=ok)).status_code == 200
            # Depth 3, at the limit: parsed, then refused by validation as usual.
            at_limit = {"texts": [["great"]], "task": "sentiment"}
            r = await client.post("/classify", json=at_limit)
            assert r.status_code == 422 and r.json()["error"]["param"] != "body"
            # Depth 4: refused before parsing.
            beyond = {"texts": [[["great"]]], "task": "sentiment"}
            assert_depth_refusal(await client.post("/classify", json=beyond), 3)
            # Brackets in text are not nesting.
            text = {"text": '[[[[[{{{{{ \\" ]]]]', "task": "sentiment"}
            assert (await client.post("/classify", json=text)).status_code == 200

    run(main)


def test_a_streamed_deep_body_is_refused_too(tiny_store: ModelStore) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        # Split mid-run: the check is on the whole body, not chunk by chunk.
        yield b'{"task": "sentiment", "text": ' + b"[" * 50
        yield b"[" * 50 + b"]" * 100 + b"}"

    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            r = await client.post("/classify", content=chunks(), headers=JSON)
            assert_depth_refusal(r, 32)

    run(main)


def test_deep_bodies_of_other_content_types_get_no_500(tiny_store: ModelStore) -> None:
    """Not JSON by its type, the body is not checked; nothing parses it as JSON either."""
    settings = settings_for(tiny_store, api_keys="app:infer:infer-key-0123456789")

    async def main() -> None:
        async with running(settings) as (client, _):
            headers = {"content-type": "text/plain", "X-API-Key": "infer-key-0123456789"}
            r = await client.post("/classify", content=DEEP_ARRAY, headers=headers)
            assert r.status_code == 422
            assert r.json()["error"]["type"] == "invalid_request"

    run(main)
