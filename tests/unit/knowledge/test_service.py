"""The knowledge-base service over the local store, SQLite and a real hashing embedder."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from app.errors import ModelNotFound
from app.knowledge.chunking import ChunkingConfig
from app.knowledge.errors import (
    DocumentNotFound,
    DocumentTooLarge,
    InvalidDocument,
    KnowledgeBaseNotFound,
    ReindexRequired,
)
from app.knowledge.ingest import DocumentIn, Embedder, IngestLimits
from app.knowledge.local import LocalVectorStore
from app.knowledge.records import KnowledgeDatabase, default_url
from app.knowledge.service import Caller, KnowledgeBaseService
from tests.support.hashing_embedder import HashingEmbedder

ALICE = Caller("alice")
BOB = Caller("bob")
ADMIN = Caller("root", admin=True)

DOCS = [
    DocumentIn(
        "warranty",
        "Every product has a two year warranty. The warranty covers manufacturing defects. "
        "Damage from accidents is not covered by the warranty.",
        {"topic": "policy"},
    ),
    DocumentIn(
        "hours",
        "Our shop opens at nine in the morning. It closes at six in the evening. "
        "On Sundays the shop is closed.",
        {"topic": "store"},
    ),
    DocumentIn("shipping", "Parcels ship within two days. Express delivery costs ten euros.", {}),
]


class Models:
    """Which embedding versions are served: the resolver the service is given."""

    def __init__(self) -> None:
        self.versions = {"1": HashingEmbedder(version="1")}
        self.active = "1"

    def resolve(self, model: str, version: str | None) -> Embedder | None:
        if model != "embedding":
            return None
        return self.versions.get(version or self.active)


@pytest.fixture
def models() -> Models:
    return Models()


@pytest.fixture
def service(tmp_path: Path, models: Models) -> Iterator[KnowledgeBaseService]:
    store = LocalVectorStore(tmp_path / "vectors")
    db = KnowledgeDatabase(default_url(tmp_path))
    yield KnowledgeBaseService(
        store, db, models.resolve, chunking=ChunkingConfig(max_chars=120, overlap_chars=40),
        limits=IngestLimits(max_documents=10, max_document_chars=2000, max_total_chars=3000),
    )  # fmt: skip
    store.close()
    db.close()


def test_crud_and_search(service: KnowledgeBaseService) -> None:
    kb = service.create("support", ALICE)
    assert (kb.model, kb.model_version, kb.dimension, kb.owner) == ("embedding", "1", 256, "alice")
    added = service.add_documents(kb.id, DOCS, ALICE)
    assert added.documents == 3 and added.chunks >= 3
    got = service.get(kb.id, ALICE)
    assert (got.documents, got.chunks) == (3, added.chunks)

    hits = service.search(kb.id, "when does the shop close on sundays", ALICE)
    assert hits[0].document_id == "hours"
    assert hits[0].chunk_id.startswith("hours#")
    assert hits[0].metadata == {"topic": "store"}
    assert len(hits) <= 5 and hits == sorted(hits, key=lambda h: -h.score)
    assert service.search(kb.id, "warranty accidents", ALICE, top_k=1)[0].document_id == "warranty"
    only = service.search(kb.id, "warranty", ALICE, filter={"topic": "store"})
    assert {h.document_id for h in only} == {"hours"}

    service.delete_document(kb.id, "hours", ALICE)
    hits = service.search(kb.id, "when does the shop close on sundays", ALICE)
    assert "hours" not in {h.document_id for h in hits}
    with pytest.raises(DocumentNotFound):
        service.delete_document(kb.id, "hours", ALICE)

    service.delete(kb.id, ALICE)
    with pytest.raises(KnowledgeBaseNotFound):
        service.get(kb.id, ALICE)
    assert service.store.list_collections() == []


def test_re_adding_a_document_replaces_it(service: KnowledgeBaseService) -> None:
    kb = service.create("support", ALICE)
    service.add_documents(kb.id, DOCS, ALICE)
    service.add_documents(kb.id, [DocumentIn("hours", "We are open around the clock.")], ALICE)
    assert service.get(kb.id, ALICE).documents == 3
    hits = service.search(kb.id, "open around the clock", ALICE, top_k=10)
    assert [h.text for h in hits if h.document_id == "hours"] == ["We are open around the clock."]


def test_knowledge_bases_belong_to_their_key(service: KnowledgeBaseService) -> None:
    mine = service.create("alice's", ALICE)
    theirs = service.create("bob's", BOB)
    assert [kb.id for kb in service.list_knowledge_bases(ALICE)] == [mine.id]
    assert [kb.id for kb in service.list_knowledge_bases(ADMIN)] == [mine.id, theirs.id]
    for call in (
        lambda: service.get(theirs.id, ALICE),
        lambda: service.search(theirs.id, "x", ALICE),
        lambda: service.add_documents(theirs.id, DOCS, ALICE),
        lambda: service.delete(theirs.id, ALICE),
    ):
        with pytest.raises(KnowledgeBaseNotFound):
            call()
    service.add_documents(theirs.id, DOCS[:1], ADMIN)
    assert service.get(theirs.id, BOB).documents == 1


def test_bad_documents_are_refused_and_nothing_is_written(service: KnowledgeBaseService) -> None:
    kb = service.create("support", ALICE)
    service.add_documents(kb.id, DOCS[:1], ALICE)
    cases = [
        ([], InvalidDocument, "documents"),
        ([DocumentIn("", "text")], InvalidDocument, "documents[0].id"),
        ([DOCS[1], DocumentIn("hours", "again")], InvalidDocument, "documents[1].id"),
        ([DOCS[1], DocumentIn("x", "   ")], InvalidDocument, "documents[1].text"),
        ([DocumentIn("x", "y", {"bad": float("nan")})], InvalidDocument, "documents[0].metadata"),
        ([DocumentIn("x", "word " * 500)], DocumentTooLarge, "documents[0].text"),
        ([DocumentIn(str(i), "text") for i in range(11)], DocumentTooLarge, "documents"),
        ([DocumentIn(str(i), "word " * 390) for i in range(2)], DocumentTooLarge, "documents"),
    ]
    for documents, error, param in cases:
        with pytest.raises(error) as caught:
            service.add_documents(kb.id, documents, ALICE)
        assert caught.value.param == param
    assert service.get(kb.id, ALICE).documents == 1
    assert service.store.count(kb.collection) == service.get(kb.id, ALICE).chunks
    with pytest.raises(InvalidDocument, match="query"):
        service.search(kb.id, "  ", ALICE)
    with pytest.raises(InvalidDocument, match="top_k"):
        service.search(kb.id, "warranty", ALICE, top_k=0)
    with pytest.raises(ModelNotFound):
        service.create("other", ALICE, model="no-such-model")


def test_a_new_embedding_version_asks_for_a_reindex(
    service: KnowledgeBaseService, models: Models
) -> None:
    kb = service.create("support", ALICE)
    service.add_documents(kb.id, DOCS, ALICE)
    assert service.index_status(kb.id, ALICE).reindex_needed is False

    models.versions["2"] = HashingEmbedder(version="2")
    models.active = "2"
    status = service.index_status(kb.id, ALICE)
    assert (status.pinned_version, status.active_version, status.reindex_needed) == ("1", "2", True)
    # The pinned version still serves: queries keep working, embedded by version 1.
    assert service.search(kb.id, "shop close sundays", ALICE)[0].document_id == "hours"

    del models.versions["1"]
    with pytest.raises(ReindexRequired, match="re-index"):
        service.search(kb.id, "shop close sundays", ALICE)

    reindexed = service.reindex(kb.id, ALICE)
    assert (reindexed.model_version, reindexed.documents) == ("2", 3)
    assert reindexed.collection != kb.collection
    assert service.store.list_collections() == [reindexed.collection]
    assert service.store.get_collection(reindexed.collection).model_version == "2"
    assert service.search(kb.id, "shop close sundays", ALICE)[0].document_id == "hours"
    assert service.index_status(kb.id, ALICE).reindex_needed is False


def test_an_embedder_failing_midway_writes_nothing(
    service: KnowledgeBaseService, models: Models
) -> None:
    kb = service.create("support", ALICE)
    service.add_documents(kb.id, DOCS[:1], ALICE)
    before = service.get(kb.id, ALICE)

    class FailsOnSecondBatch(HashingEmbedder):
        def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            if self.calls:
                raise RuntimeError("engine went away")
            return super().embed(texts)

    models.versions["1"] = FailsOnSecondBatch(version="1")
    many = [DocumentIn(f"d{i}", f"Document {i} about topic {i}.") for i in range(10)]
    small_batches = IngestLimits(embed_batch=3)
    service.limits = small_batches
    with pytest.raises(RuntimeError, match="went away"):
        service.add_documents(kb.id, [*many, DocumentIn("warranty", "Replaced text.")], ALICE)
    after = service.get(kb.id, ALICE)
    assert (after.documents, after.chunks) == (before.documents, before.chunks)
    assert service.store.count(kb.collection) == before.chunks
    models.versions["1"] = HashingEmbedder(version="1")
    hits = service.search(kb.id, "two year warranty", ALICE)
    assert hits[0].text.startswith("Every product has a two year warranty.")
