"""``QdrantVectorStore``: the ``VectorStore`` interface over Qdrant, for replicas that share
vectors (Qdrant shards and replicates). Also runs on qdrant-client's local mode
(``location=":memory:"`` or a path), which is how the test suite exercises this adapter.

Each chunk is one point: its id a UUID derived from the chunk id (so re-adding a chunk
overwrites it), its payload ``document_id``, ``chunk_id``, ``text``, ``metadata``. What a
collection is pinned to (model, version, dimension) lives in a small registry collection,
since Qdrant collections carry no free-form metadata on every version this client supports.

Qdrant has no multi-point transactions. An upsert checks every vector before its first write;
then it writes the new chunks first and only then deletes the document's chunks that the new
version lacks, so a search during a replace sees the new text (possibly with a few old
chunks), never a document missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from app.knowledge.errors import CollectionNotFound, InvalidDocument
from app.knowledge.vectors import (
    CollectionInfo,
    DocumentChunks,
    Filter,
    SearchHit,
    Vector,
    as_query,
    check_name,
    check_pinning,
    check_top_k,
    stack_checked,
)

REGISTRY = "textserve_collections"
_NAMESPACE = uuid.UUID("6f1d7c1e-8a57-4a53-9d55-6a0e2f0b7c11")
_BATCH = 256


def connect(url: str, api_key: str | None = None) -> QdrantClient:
    """A client for ``url``: ``http(s)://host:port`` (a server), ``:memory:`` or
    ``file:<path>`` (qdrant-client's local mode, one process only)."""
    if url == ":memory:":
        return QdrantClient(location=":memory:")
    if url.startswith("file:"):
        return QdrantClient(path=url.removeprefix("file:"))
    return QdrantClient(url=url, api_key=api_key)


def _point_id(key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, key))


def _document(document_id: str) -> qm.FieldCondition:
    return qm.FieldCondition(key="document_id", match=qm.MatchValue(value=document_id))


def _condition(key: str, value: str | int | float | bool) -> qm.FieldCondition:
    field = f"metadata.{key}"
    if isinstance(value, float):  # MatchValue holds str, int and bool only
        return qm.FieldCondition(key=field, range=qm.Range(gte=value, lte=value))
    return qm.FieldCondition(key=field, match=qm.MatchValue(value=value))


class QdrantVectorStore:
    """The ``VectorStore`` interface on a Qdrant client (server or local mode)."""

    def __init__(self, client: QdrantClient, remote: bool = True) -> None:
        self.client = client
        # Payload indexes speed up filters on a server; local mode has none (and warns).
        self.remote = remote
        if not client.collection_exists(REGISTRY):
            client.create_collection(
                REGISTRY, vectors_config=qm.VectorParams(size=1, distance=qm.Distance.DOT)
            )

    @classmethod
    def from_url(cls, url: str, api_key: str | None = None) -> QdrantVectorStore:
        local = url == ":memory:" or url.startswith("file:")
        return cls(connect(url, api_key), remote=not local)

    # -- collections -------------------------------------------------------------------------
    def create_collection(self, name: str, model: str, model_version: str, dimension: int) -> None:
        check_name(name)
        if name == REGISTRY:
            raise InvalidDocument(f"{REGISTRY!r} is reserved", param="name")
        try:
            info = self.get_collection(name)
        except CollectionNotFound:
            pass
        else:
            check_pinning(info, model, model_version, dimension)
            return
        if not self.client.collection_exists(name):
            self.client.create_collection(
                name, vectors_config=qm.VectorParams(size=dimension, distance=qm.Distance.DOT)
            )
            if self.remote:
                self.client.create_payload_index(name, "document_id", qm.PayloadSchemaType.KEYWORD)
        # Registered last: a collection is visible only once it can take points.
        pinning = {"name": name, "model": model, "model_version": model_version}
        self.client.upsert(
            REGISTRY,
            [
                qm.PointStruct(
                    id=_point_id(name), vector=[1.0], payload={**pinning, "dim": dimension}
                )
            ],
            wait=True,
        )

    def get_collection(self, name: str) -> CollectionInfo:
        found = self.client.retrieve(REGISTRY, [_point_id(name)], with_payload=True)
        if not found or not self.client.collection_exists(name):
            raise CollectionNotFound(f"no vector collection {name!r}")
        payload: dict[str, Any] = found[0].payload or {}
        return CollectionInfo(
            name=name,
            model=str(payload["model"]),
            model_version=str(payload["model_version"]),
            dimension=int(payload["dim"]),
            count=self.client.count(name, exact=True).count,
        )

    def list_collections(self) -> list[str]:
        names: list[str] = []
        offset: Any = None
        while True:
            points, offset = self.client.scroll(REGISTRY, limit=256, offset=offset)
            names.extend(str((p.payload or {})["name"]) for p in points)
            if offset is None:
                return sorted(names)

    def delete_collection(self, name: str) -> bool:
        known = bool(self.client.retrieve(REGISTRY, [_point_id(name)]))
        # Unregistered first, so a half-deleted collection is never listed.
        self.client.delete(REGISTRY, qm.PointIdsList(points=[_point_id(name)]), wait=True)
        existed = self.client.collection_exists(name)
        if existed:
            self.client.delete_collection(name)
        return known or existed

    # -- documents ---------------------------------------------------------------------------
    def upsert(self, name: str, documents: Sequence[DocumentChunks]) -> int:
        info = self.get_collection(name)
        vectors = stack_checked(documents, info.dimension)
        points: list[qm.PointStruct] = []
        for document in documents:
            for position, chunk in enumerate(document.chunks):
                payload = {
                    "document_id": document.document_id,
                    "chunk_id": chunk.chunk_id,
                    "position": position,
                    "text": chunk.text,
                    "metadata": dict(chunk.metadata),
                }
                point_id = _point_id(chunk.chunk_id)
                vector = vectors[len(points)].tolist()
                points.append(qm.PointStruct(id=point_id, vector=vector, payload=payload))
        for start in range(0, len(points), _BATCH):
            self.client.upsert(name, points[start : start + _BATCH], wait=True)
        for document in documents:
            keep = [chunk.chunk_id for chunk in document.chunks]
            stale = qm.Filter(
                must=[_document(document.document_id)],
                must_not=[qm.FieldCondition(key="chunk_id", match=qm.MatchAny(any=keep))]
                if keep
                else None,
            )
            self.client.delete(name, qm.FilterSelector(filter=stale), wait=True)
        return len(points)

    def delete_document(self, name: str, document_id: str) -> bool:
        self.get_collection(name)
        if not self.count(name, document_id):
            return False
        only = qm.Filter(must=[_document(document_id)])
        self.client.delete(name, qm.FilterSelector(filter=only), wait=True)
        return True

    # -- reading -----------------------------------------------------------------------------
    def search(
        self, name: str, vector: Vector, top_k: int, filter: Filter | None = None
    ) -> list[SearchHit]:
        check_top_k(top_k)
        info = self.get_collection(name)
        query = as_query(vector, info.dimension)
        conditions: list[qm.Condition] = [_condition(k, v) for k, v in (filter or {}).items()]
        found = self.client.query_points(
            name,
            query=query.tolist(),
            limit=top_k,
            query_filter=qm.Filter(must=conditions) if conditions else None,
            with_payload=True,
        ).points
        hits = []
        for point in found:
            payload: dict[str, Any] = point.payload or {}
            hits.append(
                SearchHit(
                    document_id=str(payload["document_id"]),
                    chunk_id=str(payload["chunk_id"]),
                    text=str(payload["text"]),
                    score=float(point.score),
                    metadata=dict(payload.get("metadata") or {}),
                )
            )
        return hits

    def count(self, name: str, document_id: str | None = None) -> int:
        if not self.client.collection_exists(name):
            raise CollectionNotFound(f"no vector collection {name!r}")
        only = qm.Filter(must=[_document(document_id)]) if document_id is not None else None
        return self.client.count(name, count_filter=only, exact=True).count

    def close(self) -> None:
        self.client.close()
