"""The same contract for both VectorStore implementations: the local store and the Qdrant
adapter on qdrant-client's local mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from app.knowledge import open_vector_store
from app.knowledge.errors import CollectionNotFound, InvalidDocument, InvalidVectors
from app.knowledge.local import LocalVectorStore
from app.knowledge.qdrant import QdrantVectorStore
from app.knowledge.vectors import ChunkVector, DocumentChunks, Vector, VectorStore

DIM = 8


def unit(*values: float) -> Vector:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def document(doc_id: str, vectors: list[Vector], **metadata: object) -> DocumentChunks:
    chunks = [
        ChunkVector(f"{doc_id}#{n}", f"text {n} of {doc_id}", v, dict(metadata))
        for n, v in enumerate(vectors)
    ]
    return DocumentChunks(doc_id, chunks)


@pytest.fixture(params=["local", "qdrant"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], VectorStore]]:
    opened: list[VectorStore] = []

    def make() -> VectorStore:
        store: VectorStore
        if request.param == "local":
            store = LocalVectorStore(tmp_path / "vectors")
        else:
            # The path mode persists, so reopening is tested on both.
            store = QdrantVectorStore.from_url(f"file:{tmp_path / 'qdrant'}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[[], VectorStore]) -> VectorStore:
    s = make_store()
    s.create_collection("kb1", "embedding", "3", DIM)
    return s


def test_collection_metadata_round_trip(store: VectorStore) -> None:
    info = store.get_collection("kb1")
    assert (info.name, info.model, info.model_version, info.dimension, info.count) == (
        "kb1", "embedding", "3", DIM, 0
    )  # fmt: skip
    assert store.list_collections() == ["kb1"]
    store.create_collection("kb1", "embedding", "3", DIM)  # same pinning: kept
    with pytest.raises(InvalidDocument, match="pinned to embedding 3"):
        store.create_collection("kb1", "embedding", "4", DIM)
    with pytest.raises(CollectionNotFound):
        store.get_collection("nope")


def test_empty_collection_search_returns_nothing(store: VectorStore) -> None:
    assert store.search("kb1", unit(1), top_k=5) == []
    assert store.count("kb1") == 0


def test_search_orders_by_inner_product_with_exact_scores(store: VectorStore) -> None:
    vectors = {"a": unit(1, 0), "b": unit(1, 1), "c": unit(0, 1), "d": unit(-1, 0.2)}
    store.upsert("kb1", [document(k, [v], source=k) for k, v in vectors.items()])
    query = unit(1, 0.2)
    hits = store.search("kb1", query, top_k=4)
    expected = sorted(vectors, key=lambda k: -float(vectors[k] @ query))
    assert [h.document_id for h in hits] == expected
    for hit in hits:
        assert hit.score == pytest.approx(float(vectors[hit.document_id] @ query), abs=1e-5)
        assert hit.chunk_id == f"{hit.document_id}#0"
        assert hit.text == f"text 0 of {hit.document_id}"
        assert hit.metadata == {"source": hit.document_id}


def test_top_k_bounds(store: VectorStore) -> None:
    store.upsert("kb1", [document("a", [unit(1), unit(1, 1), unit(0, 1)])])
    assert len(store.search("kb1", unit(1), top_k=2)) == 2
    assert len(store.search("kb1", unit(1), top_k=50)) == 3  # fewer chunks than top_k
    for bad in (0, -1, 1001):
        with pytest.raises(InvalidDocument, match="top_k"):
            store.search("kb1", unit(1), top_k=bad)


def test_metadata_round_trip_and_filter(store: VectorStore) -> None:
    meta = {"lang": "fr", "year": 2024, "draft": False, "tags": ["x", "é"], "ratio": 0.5}
    store.upsert(
        "kb1", [document("fr", [unit(1)], **meta), document("en", [unit(1, 0.1)], lang="en")]
    )
    [hit] = store.search("kb1", unit(1), top_k=1, filter={"lang": "fr"})
    assert (hit.document_id, hit.metadata) == ("fr", meta)
    assert [h.document_id for h in store.search("kb1", unit(1), 5, filter={"year": 2024})] == ["fr"]
    assert store.search("kb1", unit(1), 5, filter={"draft": True}) == []
    assert [h.document_id for h in store.search("kb1", unit(1), 5, {"ratio": 0.5})] == ["fr"]


def test_re_adding_a_document_replaces_its_chunks(store: VectorStore) -> None:
    store.upsert(
        "kb1", [document("a", [unit(1), unit(1, 1), unit(0, 1)]), document("b", [unit(0, 0, 1)])]
    )
    assert store.count("kb1", "a") == 3
    store.upsert("kb1", [document("a", [unit(0, 0, 0, 1)], version=2)])
    assert store.count("kb1", "a") == 1
    assert store.count("kb1") == 2
    hits = store.search("kb1", unit(0, 0, 0, 1), top_k=5)
    assert [(h.chunk_id, h.metadata) for h in hits if h.document_id == "a"] == [
        ("a#0", {"version": 2})
    ]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_delete_document(store: VectorStore) -> None:
    store.upsert("kb1", [document("a", [unit(1), unit(1, 1)]), document("b", [unit(0, 1)])])
    assert store.delete_document("kb1", "a") is True
    assert store.delete_document("kb1", "a") is False
    assert [h.document_id for h in store.search("kb1", unit(1), top_k=5)] == ["b"]
    assert store.count("kb1") == 1


def test_delete_collection(store: VectorStore) -> None:
    store.upsert("kb1", [document("a", [unit(1)])])
    assert store.delete_collection("kb1") is True
    assert store.delete_collection("kb1") is False
    assert store.list_collections() == []
    with pytest.raises(CollectionNotFound):
        store.search("kb1", unit(1), top_k=1)
    store.create_collection("kb1", "embedding", "4", DIM)  # the name is free again
    assert store.count("kb1") == 0


def test_dimension_mismatch_is_a_clear_error(store: VectorStore) -> None:
    with pytest.raises(InvalidVectors, match=f"{DIM}-d"):
        store.search("kb1", np.ones(DIM + 1, dtype=np.float32), top_k=1)
    with pytest.raises(InvalidVectors, match="NaN"):
        store.search("kb1", np.full(DIM, np.nan, dtype=np.float32), top_k=1)


def test_a_failed_add_writes_nothing(store: VectorStore) -> None:
    store.upsert("kb1", [document("a", [unit(1)], v=1)])
    bad = DocumentChunks("b", [ChunkVector("b#0", "bad", np.ones(DIM + 3, dtype=np.float32))])
    batch = [document("a", [unit(0, 1)], v=2), bad, document("c", [unit(0, 0, 1)])]
    with pytest.raises(InvalidVectors, match="document 'b' chunk 0"):
        store.upsert("kb1", batch)
    assert store.count("kb1") == 1
    [hit] = store.search("kb1", unit(1), top_k=5)
    assert (hit.document_id, hit.metadata) == ("a", {"v": 1})


def test_persistence_across_reopen(make_store: Callable[[], VectorStore]) -> None:
    first = make_store()
    first.create_collection("kb1", "embedding", "3", DIM)
    first.upsert("kb1", [document("a", [unit(1), unit(1, 1)], k="v"), document("b", [unit(0, 1)])])
    first.upsert("kb1", [document("a", [unit(1, 0, 1)])])
    first.delete_document("kb1", "b")
    before = first.search("kb1", unit(1), top_k=5)
    first.close()
    again = make_store()
    assert again.get_collection("kb1").count == 1
    assert again.search("kb1", unit(1), top_k=5) == before


def test_the_url_setting_picks_the_store(tmp_path: Path) -> None:
    local = open_vector_store(None, tmp_path)
    assert isinstance(local, LocalVectorStore)
    assert local.root == tmp_path / "vectors"
    memory = open_vector_store(":memory:", tmp_path)
    assert isinstance(memory, QdrantVectorStore)
    memory.create_collection("kb1", "embedding", "3", DIM)
    memory.upsert("kb1", [document("a", [unit(1)])])
    assert [h.document_id for h in memory.search("kb1", unit(1), 1)] == ["a"]
    for store in (local, memory):
        store.close()
