"""/v1/knowledge_bases through the real app: a real (hashing) embedder, the local store."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.knowledge.ingest import Embedder
from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for
from tests.support.hashing_embedder import HashingEmbedder
from tests.support.tiny_embedding import DIMENSION, publish_tiny_embedding

KB = "/v1/knowledge_bases"
ONE, TWO, ADMIN = "key-one-0123456789", "key-two-0123456789", "key-admin-0123456789"
KEYS = f"one:infer:{ONE};two:infer:{TWO};ops:admin:{ADMIN}"

WARRANTY = (
    "Every product carries a two-year warranty against manufacturing defects. "
    "Batteries are covered by the warranty for one year. Accidental damage is not covered."
)
HOURS = (
    "Our shop opens at nine in the morning and closes at six in the evening, Monday to Saturday."
)
SHIPPING = "Parcels to the islands travel by ferry, which adds two days to the delivery time."


def hashing_resolver(embedder: HashingEmbedder) -> Any:
    """The embedder for model `embedding` at its one version; nothing else is served."""

    def resolve(model: str, version: str | None) -> Embedder | None:
        if model == "embedding" and version in (None, embedder.version):
            return embedder
        return None

    return resolve


def app_for(store: ModelStore, **overrides: Any) -> Any:
    return running(settings_for(store, **overrides), embedders=hashing_resolver(HashingEmbedder()))


async def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(response: httpx.Response, status: int, param: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["param"] == param, error
    return error


async def make_kb(client: httpx.AsyncClient, **headers: str) -> str:
    kb = await ok(await client.post(KB, json={"name": "support"}, headers=headers))
    documents = [
        {"id": "warranty", "text": WARRANTY, "metadata": {"topic": "policy"}},
        {"id": "hours", "text": HOURS, "metadata": {"topic": "shop"}},
        {"id": "shipping", "text": SHIPPING},
    ]
    r = await client.post(
        f"{KB}/{kb['id']}/documents", json={"documents": documents}, headers=headers
    )
    added = await ok(r)
    assert (added["documents"], added["knowledge_base"]) == (3, kb["id"])
    assert added["chunks"] >= 3
    return str(kb["id"])


# The local store (default) and Qdrant (qdrant-client's local mode) behind the same routes.
@pytest.mark.parametrize("vector_url", [None, ":memory:"], ids=["local", "qdrant"])
def test_create_add_search_replace_and_delete(store: ModelStore, vector_url: str | None) -> None:
    async def main() -> None:
        async with app_for(store, vector_url=vector_url) as (client, _):
            kb_id = await make_kb(client)
            kb = await ok(await client.get(f"{KB}/{kb_id}"))
            assert (kb["object"], kb["name"], kb["model"], kb["model_version"]) == (
                "knowledge_base", "support", "embedding", "1",
            )  # fmt: skip
            assert (kb["documents"], kb["dimension"]) == (3, 256)
            listed = await ok(await client.get(KB))
            assert [k["id"] for k in listed["data"]] == [kb_id]

            query = {"query": "how long is the warranty on batteries?"}
            found = await ok(await client.post(f"{KB}/{kb_id}/search", json=query))
            results = found["results"]
            assert len(results) == 3  # top_k defaults to 5; three chunks exist
            best = results[0]
            assert (best["document_id"], best["chunk_id"]) == ("warranty", "warranty#0")
            assert best["metadata"] == {"topic": "policy"}
            assert "two-year warranty" in best["text"]
            assert [r["score"] for r in results] == sorted(
                (r["score"] for r in results), reverse=True
            )
            one = await ok(await client.post(f"{KB}/{kb_id}/search", json={**query, "top_k": 1}))
            assert len(one["results"]) == 1
            shop = {"query": "warranty", "filter": {"topic": "shop"}}
            filtered = await ok(await client.post(f"{KB}/{kb_id}/search", json=shop))
            assert [r["document_id"] for r in filtered["results"]] == ["hours"]

            # Re-adding an id replaces the document: the old text is no longer found.
            new = {
                "id": "warranty",
                "text": "Warranty claims are handled by the maker for three years.",
            }
            await ok(await client.post(f"{KB}/{kb_id}/documents", json={"documents": [new]}))
            found = await ok(await client.post(f"{KB}/{kb_id}/search", json=query))
            texts = [r["text"] for r in found["results"] if r["document_id"] == "warranty"]
            assert texts == [new["text"]]
            assert (await ok(await client.get(f"{KB}/{kb_id}")))["documents"] == 3

            gone = await ok(await client.delete(f"{KB}/{kb_id}/documents/warranty"))
            assert gone == {"id": "warranty", "object": "knowledge_base.document", "deleted": True}
            found = await ok(await client.post(f"{KB}/{kb_id}/search", json=query))
            assert {r["document_id"] for r in found["results"]} == {"hours", "shipping"}
            refused(await client.delete(f"{KB}/{kb_id}/documents/warranty"), 404, "document_id")

            await ok(await client.delete(f"{KB}/{kb_id}"))
            refused(await client.get(f"{KB}/{kb_id}"), 404, "knowledge_base")
            refused(await client.post(f"{KB}/{kb_id}/search", json=query), 404, "knowledge_base")
            assert (await ok(await client.get(KB)))["data"] == []

    run(main)


def test_a_knowledge_base_belongs_to_its_key_and_admins_see_all(store: ModelStore) -> None:
    async def main() -> None:
        async with app_for(store, api_keys=KEYS) as (client, _):
            one, two, admin = {"X-API-Key": ONE}, {"X-API-Key": TWO}, {"X-API-Key": ADMIN}
            kb_id = await make_kb(client, **one)
            # Another key: as if it did not exist, for every route.
            refused(await client.get(f"{KB}/{kb_id}", headers=two), 404, "knowledge_base")
            search = {"query": "warranty"}
            r = await client.post(f"{KB}/{kb_id}/search", json=search, headers=two)
            refused(r, 404, "knowledge_base")
            doc = {"documents": [{"id": "x", "text": "intruder text"}]}
            r = await client.post(f"{KB}/{kb_id}/documents", json=doc, headers=two)
            refused(r, 404, "knowledge_base")
            r = await client.delete(f"{KB}/{kb_id}/documents/warranty", headers=two)
            refused(r, 404, "knowledge_base")
            refused(await client.delete(f"{KB}/{kb_id}", headers=two), 404, "knowledge_base")
            assert (await ok(await client.get(KB, headers=two)))["data"] == []
            r = await client.post(
                "/reply", json={"message": "warranty?", "knowledge_base": kb_id}, headers=two
            )
            refused(r, 404, "knowledge_base")
            # The owner and an admin key see it; nothing the other key tried changed it.
            assert (await ok(await client.get(f"{KB}/{kb_id}", headers=one)))["documents"] == 3
            listed = await ok(await client.get(KB, headers=admin))
            assert [k["id"] for k in listed["data"]] == [kb_id]
            await ok(await client.delete(f"{KB}/{kb_id}", headers=admin))
            refused(await client.get(f"{KB}/{kb_id}", headers=one), 404, "knowledge_base")
            # Without a key: 401, before anything is looked at.
            assert (await client.get(KB)).status_code == 401

    run(main)


def test_documents_count_in_the_texts_bucket(store: ModelStore) -> None:
    settings = {
        "api_keys": f"one:infer:{ONE}",
        "rate_limit_requests": {"infer": 100.0},
        "rate_limit_texts": {"infer": 1.0},
        "rate_limit_burst_s": 5.0,
    }

    async def main() -> None:
        async with app_for(store, **settings) as (client, _):
            one = {"X-API-Key": ONE}
            kb = await ok(await client.post(KB, json={"name": "kb"}, headers=one))
            docs = [{"id": f"d{i}", "text": f"document number {i}"} for i in range(6)]
            r = await client.post(
                f"{KB}/{kb['id']}/documents", json={"documents": docs}, headers=one
            )
            assert r.status_code == 429, r.text
            assert r.headers["x-ratelimit-limit"] == "5"
            r = await client.post(
                f"{KB}/{kb['id']}/documents", json={"documents": docs[:2]}, headers=one
            )
            assert r.status_code == 200, r.text

    run(main)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("post", "", {"name": ""}, 422, "name"),
        ("post", "", {"name": "x", "model": "nope"}, 404, "model"),
        ("post", "", {"name": "x", "extra": 1}, 422, "extra"),
        ("post", "/documents", {"documents": []}, 422, "documents"),
        ("post", "/documents", {"documents": [{"id": "a", "text": " "}]}, 422, "documents[0].text"),
        ("post", "/documents", {"documents": [{"id": "", "text": "t"}]}, 422, "documents[0].id"),
        (
            "post",
            "/documents",
            {"documents": [{"id": "a", "text": "t"}, {"id": "a", "text": "u"}]},
            422,
            "documents[1].id",
        ),
        ("post", "/documents", {"documents": [{"id": "a"}]}, 422, "documents.0.text"),
        (
            "post",
            "/documents",
            {"documents": [{"id": "a", "text": "t", "metadata": [1]}]},
            422,
            "documents.0.metadata",
        ),
        (
            "post",
            "/documents",
            {"documents": [{"id": f"d{i}", "text": "t"} for i in range(257)]},
            413,
            "documents",
        ),
        (
            "post",
            "/documents",
            {"documents": [{"id": "big", "text": "word " * 40_001}]},
            413,
            "documents[0].text",
        ),
        ("post", "/search", {"query": ""}, 422, "query"),
        ("post", "/search", {"query": "q", "top_k": 0}, 422, "top_k"),
        ("post", "/search", {"query": "q", "top_k": 1001}, 422, "top_k"),
        ("post", "/search", {"top_k": 3}, 422, "query"),
        ("delete", "/documents/missing", None, 404, "document_id"),
        ("get", "-unknown", None, 404, "knowledge_base"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    store: ModelStore, method: str, path: str, body: Any, status: int, param: str
) -> None:
    async def main() -> None:
        async with app_for(store) as (client, _):
            kb = await ok(await client.post(KB, json={"name": "kb"}))
            url = KB if path == "" else f"{KB}/{kb['id']}{path}"
            r = await client.request(method, url, json=body)
            refused(r, status, param)
            # Nothing half-written: the knowledge base is still empty.
            assert (await ok(await client.get(f"{KB}/{kb['id']}")))["chunks"] == 0

    run(main)


def test_without_a_served_embedding_model_creation_is_404(tiny_store: ModelStore) -> None:
    async def main() -> None:
        # The default resolver: this store serves classifiers, no embedding model.
        async with running(settings_for(tiny_store)) as (client, app):
            error = refused(await client.post(KB, json={"name": "kb"}), 404, "model")
            assert "embedding" in error["message"]
            body = {"name": "kb", "model": "sentiment"}  # served, but not an embedding model
            refused(await client.post(KB, json=body), 404, "model")
            resolve = app.state.services.knowledge.resolve
            assert resolve("sentiment", None) is None
            assert resolve("sentiment", "1") is None
            assert resolve("sentiment", "not-a-number") is None
            assert resolve("Bad Name!", None) is None

    run(main)


def test_the_served_embedding_model_embeds_a_knowledge_base(tiny_store: ModelStore) -> None:
    """The default resolver: the store's own embedding model (through its engine, no resolver
    passed in) embeds the documents and the query, and the knowledge base is pinned to it."""
    publish_tiny_embedding(tiny_store)

    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, app):
            kb = await ok(await client.post(KB, json={"name": "served"}))
            documents = [{"id": "a", "text": "my parcel is late"}, {"id": "b", "text": "refund"}]
            r = await client.post(f"{KB}/{kb['id']}/documents", json={"documents": documents})
            assert (await ok(r))["documents"] == 2
            r = await client.post(f"{KB}/{kb['id']}/search", json={"query": "parcel is late"})
            results = (await ok(r))["results"]
            assert results[0]["document_id"] == "a"
            assert results[0]["score"] > results[-1]["score"]
            embedder = app.state.services.knowledge.resolve("embedding", None)
            assert embedder is not None
            assert (embedder.name, embedder.version, embedder.dimension) == (
                "embedding",
                "1",
                DIMENSION,
            )

    run(main)


def test_a_new_embedding_version_is_offered_a_reindex_not_mixed(store: ModelStore) -> None:
    served = {"1": HashingEmbedder(version="1")}
    active = ["1"]

    def resolve(model: str, version: str | None) -> Embedder | None:
        return served.get(version or active[0]) if model == "embedding" else None

    async def main() -> None:
        async with running(settings_for(store), embedders=resolve) as (client, _):
            kb_id = await make_kb(client)
            index = await ok(await client.get(f"{KB}/{kb_id}/index"))
            assert (index["pinned_version"], index["reindex_needed"]) == ("1", False)
            # Version 2 becomes active: queries keep using version 1, a re-index is offered.
            served["2"] = HashingEmbedder(version="2")
            active[0] = "2"
            index = await ok(await client.get(f"{KB}/{kb_id}/index"))
            assert (index["active_version"], index["reindex_needed"]) == ("2", True)
            query = {"query": "warranty on batteries"}
            found = await ok(await client.post(f"{KB}/{kb_id}/search", json=query))
            assert found["results"][0]["document_id"] == "warranty"
            # Version 1 is gone: search refuses rather than mixing vectors.
            del served["1"]
            r = await client.post(f"{KB}/{kb_id}/search", json=query)
            assert (r.status_code, r.json()["error"]["type"]) == (409, "reindex_required")
            kb = await ok(await client.post(f"{KB}/{kb_id}/reindex"))
            assert (kb["model_version"], kb["documents"]) == ("2", 3)
            found = await ok(await client.post(f"{KB}/{kb_id}/search", json=query))
            assert found["results"][0]["document_id"] == "warranty"
            index = await ok(await client.get(f"{KB}/{kb_id}/index"))
            assert index["reindex_needed"] is False

    run(main)
