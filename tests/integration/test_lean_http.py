"""The lean /classify endpoint answers exactly as the documented FastAPI route does.

Every request below is sent to two apps, one per setting of ``lean_http``, and the answers
compared: status, body (request ids aside) and the headers clients read. The lean path is a
reimplementation of the request handling, so this is what keeps the two from drifting.
"""

from __future__ import annotations

from typing import Any

import httpx

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for

INFER = "infer-key-0123456789"
ADMIN = "admin-key-0123456789"
KEYS = f"app:infer:{INFER};ops:admin:{ADMIN}"
AS_INFER = {"X-API-Key": INFER}

# (body as JSON or raw bytes, headers): valid, invalid in every way a client gets wrong.
CASES: list[tuple[Any, dict[str, str]]] = [
    ({"task": "sentiment", "text": "I love it"}, AS_INFER),
    ({"task": "topic", "texts": ["my parcel never arrived", "refund please"]}, AS_INFER),
    ({"task": "sentiment", "text": "fine", "top_k": 2}, AS_INFER),
    ({"model": "sentiment@1", "texts": ["ok"], "return_all_scores": True}, AS_INFER),
    ({"text": "no task"}, AS_INFER),
    ({"task": "sentiment", "text": "a", "texts": ["b"]}, AS_INFER),
    ({"task": "sentiment", "text": "   "}, AS_INFER),
    ({"task": "sentiment", "texts": ["ok", "\u200b\ufeff"]}, AS_INFER),
    ({"model": "", "text": "hi"}, AS_INFER),
    ({"task": "sentiment", "texts": []}, AS_INFER),
    ({"task": "sentiment", "texts": ["x"] * 300}, AS_INFER),
    ({"task": "sentiment", "text": 12}, AS_INFER),
    ({"task": "weather", "text": "hi"}, AS_INFER),
    ({"model": "nosuch", "text": "hi"}, AS_INFER),
    ({"model": "../../etc", "text": "hi"}, AS_INFER),
    ({"task": "sentiment", "text": "hi", "colour": "red"}, AS_INFER),
    ({"task": "sentiment", "text": "hi", "timeout_ms": 10**9}, AS_INFER),
    ({"task": "sentiment", "text": "hi", "top_k": 0}, AS_INFER),
    (b'{"task": "sentiment", "text": ', AS_INFER),
    (b"[1, 2, 3]", AS_INFER),
    (b'{"task": "sentiment", "text": "caf\xe9"}', AS_INFER),
    (b'{"task": "sentiment", "text": "caf\xe9"}', {}),
    ({"task": "sentiment", "text": "no key"}, {}),
    ({"task": "sentiment", "text": "wrong key"}, {"X-API-Key": "nope"}),
    ({"task": "sentiment", "text": "admin key"}, {"X-API-Key": ADMIN}),
    ({"task": "sentiment", "text": "bearer"}, {"Authorization": f"Bearer {INFER}"}),
    ({"text": "invalid without a key"}, {}),
]
NOT_AN_OBJECT = {"model_type", "model_attributes_type"}
COMPARED_HEADERS = (
    "content-type",
    "x-model",
    "x-model-version",
    "www-authenticate",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
)


def _send(client: httpx.AsyncClient, body: Any, headers: dict[str, str]) -> Any:
    if isinstance(body, bytes):
        headers = {**headers, "content-type": "application/json"}
        return client.post("/classify", content=body, headers=headers)
    return client.post("/classify", json=body, headers=headers)


def _comparable(r: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body = r.json()
    if "error" in body:
        body["error"].pop("request_id", None)
    if body.get("detail") and body["detail"][0]["type"] == "json_invalid":
        # The two JSON parsers word a syntax error differently; the envelope must agree.
        assert body["error"]["message"].startswith("body: invalid JSON: ")
        body["error"]["message"] = "body: invalid JSON"
        body["detail"] = [{"type": "json_invalid"}]
    if body.get("detail") and body["detail"][0]["type"] in NOT_AN_OBJECT:
        # Validating JSON text and validating a parsed list word "not an object" differently.
        body["error"]["message"] = "body: not an object"
        body["detail"] = [{"type": "not_an_object", "loc": body["detail"][0]["loc"]}]
    return (
        r.status_code,
        body,
        {h: r.headers[h] for h in COMPARED_HEADERS if h in r.headers},
    )


def test_lean_and_fastapi_paths_answer_alike(tiny_store: ModelStore) -> None:
    async def answers(lean: bool) -> list[tuple[int, Any, dict[str, str]]]:
        # A bucket of 100 requests that barely refills: both runs see the same X-RateLimit-*.
        settings = settings_for(
            tiny_store,
            lean_http=lean,
            api_keys=KEYS,
            rate_limit_requests={"infer": 0.01},
            rate_limit_texts={},
            rate_limit_burst_s=10_000.0,
        )
        async with running(settings) as (client, _):
            return [_comparable(await _send(client, body, h)) for body, h in CASES]

    async def main() -> None:
        lean, routed = await answers(True), await answers(False)
        for case, a, b in zip(CASES, lean, routed, strict=True):
            assert a == b, f"{case}: lean {a} != FastAPI {b}"
        statuses = {status for status, _, _ in lean}
        # The cases reach every kind of answer, or the comparison proves little.
        assert {200, 401, 403, 404, 422} <= statuses

    run(main)


def test_lean_path_is_labelled_as_the_route_in_metrics(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, lean_http=True)) as (client, _):
            r = await client.post("/classify", json={"task": "sentiment", "text": "good"})
            assert r.status_code == 200
            lines = (await client.get("/metrics")).text.splitlines()
            counted = [
                line
                for line in lines
                if line.startswith("textserve_http_requests_total{")
                and 'route="/classify"' in line
                and 'status="200"' in line
            ]
            assert counted and counted[0].endswith(" 1.0")

    run(main)


def test_a_body_not_declared_json_is_refused_as_on_every_route(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, lean_http=True)) as (client, _):
            raw = b'{"task": "sentiment", "text": "good"}'
            r = await client.post("/classify", content=raw, headers={"content-type": "text/plain"})
            assert r.status_code == 422, r.text
            declared = {"content-type": "application/json; charset=utf-8"}
            assert (
                await client.post("/classify", content=raw, headers=declared)
            ).status_code == 200

    run(main)
