"""``LocalVectorStore``: vectors in process, persisted in a directory (the default store).

Layout under ``root``::

    vectors.sqlite            collections (pinning) and chunks (ids, text, metadata, where
                              each vector lives: segment file and row)
    <collection>/seg-*.npy    float32 matrices, one per write, each written to a temporary
                              file, fsynced and renamed into place

An upsert writes its vectors to a new segment and then, in ONE SQLite transaction, deletes
the replaced documents' rows and inserts the new ones. A crash or an error before the commit
leaves a segment no row points at; opening the store deletes it. So a reader (or a restart)
sees either the whole write or none of it. Deleted rows leave dead vectors in their segments
until they outnumber the live ones (``compact``), so deletes and replaces never rewrite
everything. Search runs on the in-memory ``MatrixIndex``; every call holds one lock.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import app.knowledge.segments as segments
from app.knowledge.errors import CollectionNotFound, InvalidVectors
from app.knowledge.matrix import MatrixIndex
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
    matches,
    stack_checked,
)

# Collections above this many chunks are searched through the IVF index (docs/knowledge-bases.md).
DEFAULT_ANN_MIN_CHUNKS = 200_000


@dataclass
class _Row:
    document_id: str
    chunk_id: str
    metadata: dict[str, Any]


@dataclass
class _Collection:
    info: CollectionInfo
    index: MatrixIndex
    rows: dict[int, _Row]
    documents: dict[str, list[int]]
    next_row: int
    stored: int = 0  # vectors in segment files, live or dead


class LocalVectorStore:
    """Exact (or, beyond ``ann_min_chunks``, IVF) inner-product search in process, persisted
    under ``root``. One process owns a root: replicas that share vectors use Qdrant."""

    def __init__(
        self, root: Path, ann_min_chunks: int = DEFAULT_ANN_MIN_CHUNKS, nprobe: int = 32
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ann_min_chunks = ann_min_chunks
        self.nprobe = nprobe
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.root / "vectors.sqlite", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        segments.create_schema(self._db)
        self._collections: dict[str, _Collection] = {}
        for name in [r[0] for r in self._db.execute("SELECT name FROM collections")]:
            self._collections[name] = self._load(name)

    # -- collections -------------------------------------------------------------------------
    def create_collection(self, name: str, model: str, model_version: str, dimension: int) -> None:
        check_name(name)
        if dimension < 1:
            raise InvalidVectors(f"dimension must be positive, not {dimension}")
        with self._lock:
            existing = self._collections.get(name)
            if existing is not None:
                check_pinning(existing.info, model, model_version, dimension)
                return
            with segments.transaction(self._db):
                self._db.execute(
                    "INSERT INTO collections (name, model, model_version, dimension) "
                    "VALUES (?, ?, ?, ?)",
                    (name, model, model_version, dimension),
                )
            (self.root / name).mkdir(exist_ok=True)
            info = CollectionInfo(name, model, model_version, dimension)
            index = MatrixIndex(dimension, self.ann_min_chunks, self.nprobe)
            self._collections[name] = _Collection(info, index, {}, {}, 1)

    def get_collection(self, name: str) -> CollectionInfo:
        with self._lock:
            collection = self._get(name)
            info = collection.info
            return CollectionInfo(
                info.name, info.model, info.model_version, info.dimension, len(collection.index)
            )

    def list_collections(self) -> list[str]:
        with self._lock:
            return sorted(self._collections)

    def delete_collection(self, name: str) -> bool:
        with self._lock:
            if self._collections.pop(name, None) is None:
                return False
            with segments.transaction(self._db):
                self._db.execute("DELETE FROM chunks WHERE collection = ?", (name,))
                self._db.execute("DELETE FROM collections WHERE name = ?", (name,))
            shutil.rmtree(self.root / name, ignore_errors=True)
            return True

    # -- documents ---------------------------------------------------------------------------
    def upsert(self, name: str, documents: Sequence[DocumentChunks]) -> int:
        with self._lock:
            collection = self._get(name)
            vectors = stack_checked(documents, collection.info.dimension)
            payloads = [
                [json.dumps(dict(c.metadata), ensure_ascii=False) for c in d.chunks]
                for d in documents
            ]  # fails on metadata JSON cannot hold, before anything is written
            segment = f"seg-{uuid.uuid4().hex}.npy" if len(vectors) else None
            # Once these are chosen, no error may leave the memory and the database apart.
            if segment is not None:
                segments.write_atomic(self.root / name / segment, vectors)
            new_ids = np.arange(
                collection.next_row, collection.next_row + len(vectors), dtype=np.int64
            )
            replaced: list[int] = []
            try:
                with segments.transaction(self._db):
                    row = 0
                    for document, texts in zip(documents, payloads, strict=True):
                        replaced.extend(collection.documents.get(document.document_id, []))
                        self._db.execute(
                            "DELETE FROM chunks WHERE collection = ? AND document_id = ?",
                            (name, document.document_id),
                        )
                        for position, (chunk, meta) in enumerate(
                            zip(document.chunks, texts, strict=True)
                        ):
                            self._db.execute(
                                "INSERT INTO chunks (collection, row_id, document_id, chunk_id,"
                                " position, text, metadata, segment, offset) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (name, int(new_ids[row]), document.document_id, chunk.chunk_id,
                                 position, chunk.text, meta, segment, row),
                            )  # fmt: skip
                            row += 1
            except BaseException:
                if segment is not None:
                    (self.root / name / segment).unlink(missing_ok=True)
                raise
            self._apply(collection, documents, new_ids, vectors, replaced)
            return len(vectors)

    def delete_document(self, name: str, document_id: str) -> bool:
        with self._lock:
            collection = self._get(name)
            row_ids = collection.documents.get(document_id)
            if not row_ids:
                return False
            with segments.transaction(self._db):
                self._db.execute(
                    "DELETE FROM chunks WHERE collection = ? AND document_id = ?",
                    (name, document_id),
                )
            self._forget(collection, row_ids)
            del collection.documents[document_id]
            self._maybe_compact(collection)
            return True

    # -- reading -----------------------------------------------------------------------------
    def search(
        self, name: str, vector: Vector, top_k: int, filter: Filter | None = None
    ) -> list[SearchHit]:
        check_top_k(top_k)
        with self._lock:
            collection = self._get(name)
            query = as_query(vector, collection.info.dimension)
            allowed = None
            if filter:
                rows = collection.rows
                allowed = np.fromiter(
                    (matches(rows[i].metadata, filter) for i in collection.index.ids.tolist()),
                    dtype=bool,
                    count=len(collection.index),
                )
            ids, scores = collection.index.search(query, top_k, allowed)
            texts = segments.texts(self._db, name, ids.tolist())
            return [
                SearchHit(
                    document_id=collection.rows[row_id].document_id,
                    chunk_id=collection.rows[row_id].chunk_id,
                    text=texts[row_id],
                    score=float(score),
                    metadata=dict(collection.rows[row_id].metadata),
                )
                for row_id, score in zip(ids.tolist(), scores.tolist(), strict=True)
            ]

    def count(self, name: str, document_id: str | None = None) -> int:
        with self._lock:
            collection = self._get(name)
            if document_id is None:
                return len(collection.index)
            return len(collection.documents.get(document_id, []))

    def compact(self, name: str) -> None:
        """Rewrite a collection's live vectors into one segment and drop the old files."""
        with self._lock:
            collection = self._get(name)
            segments.compact(self._db, self.root / name, name, collection.index)
            collection.stored = len(collection.index)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._collections.clear()

    # -- internals ---------------------------------------------------------------------------
    def _get(self, name: str) -> _Collection:
        collection = self._collections.get(name)
        if collection is None:
            raise CollectionNotFound(f"no vector collection {name!r}")
        return collection

    def _apply(
        self,
        collection: _Collection,
        documents: Sequence[DocumentChunks],
        new_ids: np.ndarray[Any, np.dtype[np.int64]],
        vectors: Vector,
        replaced: list[int],
    ) -> None:
        self._forget(collection, replaced)
        row = 0
        for document in documents:
            ids = new_ids[row : row + len(document.chunks)].tolist()
            collection.documents[document.document_id] = ids
            for row_id, chunk in zip(ids, document.chunks, strict=True):
                collection.rows[row_id] = _Row(
                    document.document_id, chunk.chunk_id, dict(chunk.metadata)
                )
            if not ids:
                del collection.documents[document.document_id]
            row += len(document.chunks)
        collection.index.add(new_ids, vectors)
        collection.next_row += len(vectors)
        collection.stored += len(vectors)
        self._maybe_compact(collection)

    def _forget(self, collection: _Collection, row_ids: list[int]) -> None:
        for row_id in row_ids:
            collection.rows.pop(row_id, None)
        collection.index.remove(np.asarray(row_ids, dtype=np.int64))

    def _maybe_compact(self, collection: _Collection) -> None:
        live = len(collection.index)
        if collection.stored - live > max(1024, live):
            self.compact(collection.info.name)

    def _load(self, name: str) -> _Collection:
        model, version, dimension = self._db.execute(
            "SELECT model, model_version, dimension FROM collections WHERE name = ?", (name,)
        ).fetchone()
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        index = MatrixIndex(dimension, self.ann_min_chunks, self.nprobe)
        collection = _Collection(CollectionInfo(name, model, version, dimension), index, {}, {}, 1)
        loaded = segments.load(self._db, directory, name, dimension)
        for row_id, document_id, chunk_id, metadata in loaded.rows:
            collection.rows[row_id] = _Row(document_id, chunk_id, json.loads(metadata))
            collection.documents.setdefault(document_id, []).append(row_id)
        index.add(loaded.ids, loaded.vectors)
        collection.next_row = int(loaded.ids.max()) + 1 if len(loaded.ids) else 1
        collection.stored = loaded.stored
        return collection
