"""The knowledge-base service: create, list, get, delete; add and delete documents; search;
re-index when the active embedding version changes. No HTTP: routes call it later.

A knowledge base is pinned to the embedding model version that embedded it. Queries are
embedded with that same version; when it can no longer be served (``resolve`` returns None)
search raises ``ReindexRequired`` rather than mixing vectors of two versions, and
``reindex`` rebuilds the chunks with the active version into a new collection, then swaps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ModelNotFound
from app.knowledge.answer import ExtractiveAnswer, extract_answer
from app.knowledge.chunking import ChunkingConfig
from app.knowledge.errors import (
    DocumentNotFound,
    InvalidDocument,
    KnowledgeBaseNotFound,
    ReindexRequired,
)
from app.knowledge.ingest import (
    DocumentIn,
    Embedder,
    IngestLimits,
    check_documents,
    embed_all,
    embed_documents,
)
from app.knowledge.records import DocumentRow, KnowledgeBase, KnowledgeBaseRow, KnowledgeDatabase
from app.knowledge.vectors import Filter, SearchHit, VectorStore, check_top_k

# (model name, version or None for the active one) -> that embedder, or None if not servable.
EmbedderResolver = Callable[[str, str | None], Embedder | None]


@dataclass(frozen=True)
class Caller:
    """Who asks: the API key id (None on a server without keys) and whether it is an admin."""

    key_id: str | None
    admin: bool = False


@dataclass(frozen=True)
class AddResult:
    documents: int
    chunks: int


@dataclass(frozen=True)
class IndexStatus:
    """The version a knowledge base is pinned to and the active one; ``reindex_needed`` when
    they differ (queries keep using the pinned one while it can be served)."""

    model: str
    pinned_version: str
    active_version: str | None
    reindex_needed: bool


class KnowledgeBaseService:
    """Knowledge bases over one ``VectorStore`` and one metadata database."""

    def __init__(
        self,
        store: VectorStore,
        database: KnowledgeDatabase,
        resolve: EmbedderResolver,
        default_model: str = "embedding",
        chunking: ChunkingConfig | None = None,
        limits: IngestLimits | None = None,
    ) -> None:
        self.store = store
        self.db = database
        self.resolve = resolve
        self.default_model = default_model
        self.chunking = chunking or ChunkingConfig()
        self.limits = limits or IngestLimits()

    # -- knowledge bases ---------------------------------------------------------------------
    def create(self, name: str, caller: Caller, model: str | None = None) -> KnowledgeBase:
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise InvalidDocument("name must be 1 to 255 characters", param="name")
        model = model or self.default_model
        embedder = self.resolve(model, None)
        if embedder is None:
            raise ModelNotFound(f"no embedding model {model!r} is being served")
        kb_id = f"kb_{uuid.uuid4().hex[:24]}"
        now = time.time()
        row = KnowledgeBaseRow(
            id=kb_id, name=name.strip(), owner=caller.key_id, model=model,
            model_version=embedder.version, dimension=embedder.dimension,
            collection=f"{kb_id}-1", created_at=now, updated_at=now,
        )  # fmt: skip
        self.store.create_collection(row.collection, model, embedder.version, embedder.dimension)
        with self.db.session() as s:
            s.add(row)
        return KnowledgeBase.of(row)

    def list_knowledge_bases(self, caller: Caller) -> list[KnowledgeBase]:
        """The caller's knowledge bases (every one for an admin), oldest first."""
        with self.db.session() as s:
            query = select(KnowledgeBaseRow).order_by(KnowledgeBaseRow.created_at)
            if not caller.admin and caller.key_id is None:
                query = query.where(KnowledgeBaseRow.owner.is_(None))
            elif not caller.admin:
                query = query.where(KnowledgeBaseRow.owner == caller.key_id)
            return [self._describe(s, row) for row in s.scalars(query)]

    def get(self, kb_id: str, caller: Caller) -> KnowledgeBase:
        with self.db.session() as s:
            return self._describe(s, self._row(s, kb_id, caller))

    def delete(self, kb_id: str, caller: Caller) -> None:
        with self.db.session() as s:
            row = self._row(s, kb_id, caller)
            collection = row.collection
            s.query(DocumentRow).filter(DocumentRow.kb_id == kb_id).delete()
            s.delete(row)
        self.store.delete_collection(collection)

    # -- documents ---------------------------------------------------------------------------
    def add_documents(
        self, kb_id: str, documents: Sequence[DocumentIn], caller: Caller
    ) -> AddResult:
        """Chunk, embed and store ``documents``, replacing those whose ids exist; all or none.

        Synchronous up to ``limits`` (413 beyond). Vectors are written inside the metadata
        transaction, so a failed vector write also leaves the document records unchanged.
        """
        check_documents(documents, self.limits)
        kb = self.get(kb_id, caller)
        embedder = self._embedder(kb)
        chunked = embed_documents(documents, embedder, self.chunking, self.limits.embed_batch)
        now = time.time()
        with self.db.session() as s:
            for document, chunks in zip(documents, chunked, strict=True):
                s.merge(
                    DocumentRow(
                        kb_id=kb.id, document_id=document.id, text=document.text,
                        meta=dict(document.metadata), chunks=len(chunks.chunks), created_at=now,
                    )
                )  # fmt: skip
            s.flush()
            written = self.store.upsert(kb.collection, chunked)
            self._touch(s, kb.id, now)
        return AddResult(documents=len(documents), chunks=written)

    def delete_document(self, kb_id: str, document_id: str, caller: Caller) -> None:
        kb = self.get(kb_id, caller)
        with self.db.session() as s:
            row = s.get(DocumentRow, (kb.id, document_id))
            if row is None:
                raise DocumentNotFound(f"no document {document_id!r} in knowledge base {kb_id}")
            s.delete(row)
            s.flush()
            self.store.delete_document(kb.collection, document_id)
            self._touch(s, kb.id, time.time())

    def search(
        self, kb_id: str, query: str, caller: Caller, top_k: int = 5, filter: Filter | None = None
    ) -> list[SearchHit]:
        """The ``top_k`` chunks closest to ``query`` (cosine similarity), best first."""
        check_top_k(top_k)
        if not isinstance(query, str) or not query.strip():
            raise InvalidDocument("query must be a non-empty string", param="query")
        kb = self.get(kb_id, caller)
        vector = embed_all(self._embedder(kb), [query], 1)[0]
        return self.store.search(kb.collection, vector, top_k, filter)

    def answer(
        self, kb_id: str, query: str, caller: Caller, top_k: int = 3
    ) -> tuple[list[SearchHit], ExtractiveAnswer | None]:
        """The passages closest to ``query`` and the best sentence(s) of the first, picked
        by the knowledge base's own embedder (for /reply's answers from documents)."""
        check_top_k(top_k)
        kb = self.get(kb_id, caller)
        embedder = self._embedder(kb)
        hits = self.store.search(kb.collection, embed_all(embedder, [query], 1)[0], top_k)
        return hits, extract_answer(query, hits, embed=embedder.embed)

    # -- embedding versions ------------------------------------------------------------------
    def index_status(self, kb_id: str, caller: Caller) -> IndexStatus:
        kb = self.get(kb_id, caller)
        active = self.resolve(kb.model, None)
        version = active.version if active is not None else None
        return IndexStatus(kb.model, kb.model_version, version, version != kb.model_version)

    def reindex(self, kb_id: str, caller: Caller) -> KnowledgeBase:
        """Re-chunk and re-embed every document with the active version into a new collection,
        then point the knowledge base at it; searches use the old one until the swap."""
        kb = self.get(kb_id, caller)
        embedder = self.resolve(kb.model, None)
        if embedder is None:
            raise ModelNotFound(f"no embedding model {kb.model!r} is being served")
        generation = int(kb.collection.rsplit("-", 1)[1]) + 1
        collection = f"{kb.id}-{generation}"
        self.store.create_collection(collection, kb.model, embedder.version, embedder.dimension)
        try:
            self._refill(kb.id, collection, embedder)
            with self.db.session() as s:
                row = self._row(s, kb.id, caller)
                old = row.collection
                row.collection, row.model_version = collection, embedder.version
                row.dimension, row.updated_at = embedder.dimension, time.time()
        except BaseException:
            self.store.delete_collection(collection)
            raise
        self.store.delete_collection(old)
        return self.get(kb.id, caller)

    # -- internals ---------------------------------------------------------------------------
    def _refill(self, kb_id: str, collection: str, embedder: Embedder) -> None:
        after = ""
        while True:  # in pages, so a large knowledge base never sits in memory whole
            with self.db.session() as s:
                rows = s.scalars(
                    select(DocumentRow)
                    .where(DocumentRow.kb_id == kb_id, DocumentRow.document_id > after)
                    .order_by(DocumentRow.document_id)
                    .limit(self.limits.max_documents)
                ).all()
            if not rows:
                return
            documents = [DocumentIn(r.document_id, r.text, r.meta) for r in rows]
            chunked = embed_documents(documents, embedder, self.chunking, self.limits.embed_batch)
            self.store.upsert(collection, chunked)
            after = rows[-1].document_id

    def _embedder(self, kb: KnowledgeBase) -> Embedder:
        embedder = self.resolve(kb.model, kb.model_version)
        if embedder is None:
            raise ReindexRequired(
                f"knowledge base {kb.id} was embedded by {kb.model} version {kb.model_version},"
                " which is no longer served; re-index it with the active version"
            )
        return embedder

    def _row(self, s: Session, kb_id: str, caller: Caller) -> KnowledgeBaseRow:
        row = s.get(KnowledgeBaseRow, kb_id)
        # Another key's knowledge base answers as if it did not exist: ids are not probed.
        if row is None or not (caller.admin or row.owner == caller.key_id):
            raise KnowledgeBaseNotFound(f"no knowledge base {kb_id!r}")
        return row

    def _describe(self, s: Session, row: KnowledgeBaseRow) -> KnowledgeBase:
        counts: Any = s.execute(
            select(func.count(), func.coalesce(func.sum(DocumentRow.chunks), 0)).where(
                DocumentRow.kb_id == row.id
            )
        ).one()
        return KnowledgeBase.of(row, documents=int(counts[0]), chunks=int(counts[1]))

    def _touch(self, s: Session, kb_id: str, now: float) -> None:
        row = s.get(KnowledgeBaseRow, kb_id)
        if row is not None:
            row.updated_at = now
