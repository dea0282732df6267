"""POST /v1/embeddings, /v1/rerank and /v1/recommend through the real app, a real tiny
embedding model in ONNX Runtime, and the official OpenAI client."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import openai
import pytest
from tokenizers import Tokenizer

from app.store.versions import ModelStore
from tests.integration.conftest import gate_engine, run, running, settings_for
from tests.support.tiny_embedding import DIMENSION, publish_tiny_embedding, reference_vector

DELIVERY = "my parcel arrived late"
BILLING = "a charge on my card and the invoice"
ACCOUNT = "my password and login"


@pytest.fixture
def embed_store(tiny_store: ModelStore) -> tuple[ModelStore, np.ndarray]:
    """The tiny classifiers plus a tiny embedding model named `embedding`."""
    _, table = publish_tiny_embedding(tiny_store)
    return tiny_store, table


def expected(store: ModelStore, table: np.ndarray, texts: list[str]) -> np.ndarray:
    tok = Tokenizer.from_file(str(store.root / "embedding" / "1" / "tokenizer.json"))
    return np.stack([reference_vector(table, tok.encode(t).ids) for t in texts])


def test_openai_client_gets_the_same_vectors_as_base64_and_float(
    embed_store: tuple[ModelStore, np.ndarray],
) -> None:
    store, table = embed_store
    texts = [DELIVERY, BILLING, ACCOUNT, "thanks"]

    async def main() -> None:
        async with running(settings_for(store)) as (client, _):
            sdk = openai.AsyncOpenAI(
                base_url="http://textserve/v1",
                api_key="x",
                # The app in process; the SDK's stubs name its own httpx build's client type.
                http_client=client,  # type: ignore[arg-type]
                max_retries=0,
            )
            default = await sdk.embeddings.create(model="embedding", input=texts)
            floats = await sdk.embeddings.create(
                model="embedding", input=texts, encoding_format="float"
            )
            got_default = np.array([d.embedding for d in default.data])
            got_float = np.array([d.embedding for d in floats.data])
            assert [d.index for d in default.data] == [0, 1, 2, 3]
            assert default.model == "embedding"
            assert default.usage.prompt_tokens == default.usage.total_tokens == 17  # words
            np.testing.assert_array_equal(got_default, got_float)
            np.testing.assert_allclose(got_float, expected(store, table, texts), atol=1e-6)
            assert got_float.shape == (4, DIMENSION)

    run(main)


def test_one_string_and_a_request_larger_than_a_batch(
    embed_store: tuple[ModelStore, np.ndarray],
) -> None:
    store, table = embed_store
    words = DELIVERY.split() + BILLING.split() + ACCOUNT.split()
    texts = [" ".join(words[i % len(words) :][:5]) or "thanks" for i in range(256)]

    async def main() -> None:
        async with running(settings_for(store, max_batch_size=8)) as (client, _):
            r = await client.post("/v1/embeddings", json={"input": DELIVERY})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["object"] == "list" and body["data"][0]["object"] == "embedding"
            assert len(body["data"]) == 1
            r = await client.post(
                "/v1/embeddings", json={"input": DELIVERY, "encoding_format": "base64"}
            )
            packed = r.json()["data"][0]["embedding"]
            assert isinstance(packed, str)  # little-endian float32 bytes, as OpenAI sends them
            unpacked = np.frombuffer(base64.b64decode(packed), dtype="<f4")
            np.testing.assert_array_equal(unpacked, np.float32(body["data"][0]["embedding"]))
            r = await client.post(
                "/v1/embeddings", json={"input": texts, "dimensions": DIMENSION, "user": "u1"}
            )
            assert r.status_code == 200, r.text
            got = np.array([d["embedding"] for d in r.json()["data"]])
            np.testing.assert_allclose(got, expected(store, table, texts), atol=1e-6)
            lines = (await client.get("/metrics")).text.splitlines()
            assert any(
                line.startswith("textserve_http_requests_total{")
                and 'route="/v1/embeddings"' in line
                and 'status="200"' in line
                for line in lines
            )

    run(main)


BAD_EMBEDDINGS: list[tuple[dict[str, Any], int, str]] = [
    ({"input": ""}, 422, "input"),
    ({"input": []}, 422, "input"),
    ({"input": ["ok", "  "]}, 422, "input.1"),
    ({"input": ["x"] * 257}, 422, "input"),
    ({"input": [1, 2]}, 422, "input"),
    ({"input": "ok", "model": "nope"}, 404, "model"),
    ({"input": "ok", "model": "sentiment"}, 422, "model"),
    ({"input": "ok", "dimensions": 8}, 400, "dimensions"),
    ({"input": "ok", "encoding_format": "int8"}, 422, "encoding_format"),
    ({"input": "ok", "timeout_ms": 10**9}, 422, "timeout_ms"),
]


def test_bad_embedding_requests_name_the_field(
    embed_store: tuple[ModelStore, np.ndarray],
) -> None:
    async def main() -> None:
        async with running(settings_for(embed_store[0])) as (client, _):
            for body, status, param in BAD_EMBEDDINGS:
                r = await client.post("/v1/embeddings", json=body)
                assert r.status_code == status, (body, r.text)
                assert r.json()["error"]["param"] == param, (body, r.text)

    run(main)


def test_rerank_orders_documents_by_relevance(
    embed_store: tuple[ModelStore, np.ndarray],
) -> None:
    docs: list[Any] = [BILLING, {"id": "d", "text": DELIVERY}, ACCOUNT]

    async def main() -> None:
        async with running(settings_for(embed_store[0])) as (client, _):
            r = await client.post(
                "/v1/rerank", json={"query": "when will the parcel arrive", "documents": docs}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model"] == "embedding"
            assert body["results"][0]["index"] == 1
            scores = [x["relevance_score"] for x in body["results"]]
            assert scores == sorted(scores, reverse=True) and len(scores) == 3
            assert "document" not in body["results"][0] or body["results"][0]["document"] is None
            assert body["usage"]["total_tokens"] > 0
            assert (r.headers["x-model"], r.headers["x-model-version"]) == ("embedding", "1")
            assert float(r.headers["x-inference-time"]) >= 0.0
            r = await client.post(
                "/v1/rerank",
                json={
                    "query": "refund my card",
                    "documents": docs,
                    "top_n": 1,
                    "return_documents": True,
                },
            )
            (only,) = r.json()["results"]
            assert (only["index"], only["document"]["text"]) == (0, BILLING)
            for body, param in [
                ({"query": "", "documents": docs}, "query"),
                ({"query": "q", "documents": []}, "documents"),
                ({"query": "q", "documents": ["ok", ""]}, "documents.1"),
                ({"query": "q", "documents": ["x"] * 257}, "documents"),
                ({"query": "q", "documents": docs, "model": "topic"}, "model"),
                ({"query": "q", "documents": docs, "top_n": 0}, "top_n"),
            ]:
                r = await client.post("/v1/rerank", json=body)
                assert r.status_code == 422, (body, r.text)
                assert r.json()["error"]["param"] == param, (body, r.text)

    run(main)


CANDIDATES = [
    {"id": "bill", "text": BILLING},
    {"id": "ship", "text": "delivery of a parcel this week"},
    {"id": "login", "text": ACCOUNT},
]


def test_recommend_orders_candidates_by_the_users_interests(
    embed_store: tuple[ModelStore, np.ndarray],
) -> None:
    async def main() -> None:
        async with running(settings_for(embed_store[0])) as (client, _):
            history = ["my password", "login to the app", DELIVERY, "parcel late"]
            r = await client.post(
                "/v1/recommend", json={"user": {"history": history}, "candidates": CANDIDATES}
            )
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            # The recent items (delivery) outweigh the older ones (account), billing last.
            assert [x["id"] for x in results] == ["ship", "login", "bill"]
            assert [x["score"] for x in results] == sorted(
                (x["score"] for x in results), reverse=True
            )
            r = await client.post(
                "/v1/recommend",
                json={
                    "user": {"text": "invoice and price"},
                    "candidates": CANDIDATES,
                    "exclude": ["ship"],
                    "top_n": 1,
                },
            )
            assert [x["id"] for x in r.json()["results"]] == ["bill"]
            for body, param in [
                ({"user": {"history": []}, "candidates": CANDIDATES}, "user.history"),
                ({"user": {"text": " "}, "candidates": CANDIDATES}, "user.text"),
                ({"user": {"text": "a", "history": ["b"]}, "candidates": CANDIDATES}, "user"),
                ({"user": {"text": "a"}, "candidates": []}, "candidates"),
                ({"user": {"text": "a"}, "candidates": CANDIDATES, "model": "x"}, "model"),
            ]:
                r = await client.post("/v1/recommend", json=body)
                assert r.status_code in (404, 422), (body, r.text)
                assert r.json()["error"]["param"] == param, (body, r.text)

    run(main)


def test_keys_scopes_and_the_texts_bucket_count_inputs(
    embed_store: tuple[ModelStore, np.ndarray],
) -> None:
    key = "infer-key-0123456789"
    settings = settings_for(
        embed_store[0],
        api_keys=f"app:infer:{key}",
        rate_limit_requests={},
        rate_limit_texts={"infer": 0.01},
        rate_limit_burst_s=1000.0,  # a bucket of 10 texts that barely refills
    )

    async def main() -> None:
        async with running(settings) as (client, _):
            auth = {"Authorization": f"Bearer {key}"}
            r = await client.post("/v1/embeddings", json={"input": "ok"})
            assert r.status_code == 401
            r = await client.post("/v1/embeddings", json={"input": ["ok"] * 6}, headers=auth)
            assert r.status_code == 200, r.text
            r = await client.post(
                "/v1/rerank", json={"query": "q", "documents": ["ok"] * 6}, headers=auth
            )
            assert r.status_code == 429, r.text

    run(main)


def test_a_pinned_embedder_gives_the_served_vectors_synchronously(
    embed_store: tuple[ModelStore, np.ndarray],
) -> None:
    store, table = embed_store
    texts = [f"{DELIVERY} {'late ' * (i % 5)}".strip() for i in range(70)]

    async def main() -> None:
        async with running(settings_for(store)) as (_, app):
            pinned = app.state.services.embedder.pinned("embedding")
            assert (pinned.name, pinned.version, pinned.dimension) == ("embedding", "1", 16)
            got = await asyncio.to_thread(pinned.embed, texts)
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, expected(store, table, texts), atol=1e-6)
            served = await app.state.services.embedder.embed("embedding", texts[:3], 5.0)
            np.testing.assert_allclose(served.vectors, got[:3], atol=1e-6)
            assert (served.model, served.version, served.dimension) == ("embedding", 1, 16)

    run(main)


def test_a_request_past_its_deadline_is_answered_504(
    embed_store: tuple[ModelStore, np.ndarray],
) -> None:
    async def main() -> None:
        async with running(settings_for(embed_store[0])) as (client, app):
            gate = gate_engine(app, "embedding")
            gate.gate.clear()  # the model's run waits: the request outlives its deadline
            try:
                r = await client.post(
                    "/v1/rerank", json={"query": "q", "documents": ["a b"], "timeout_ms": 50}
                )
            finally:
                gate.gate.set()
            assert r.status_code == 504, r.text

    run(main)
