"""The one ``VectorStore`` interface, its records, and the checks both implementations share.

A collection holds the chunks of documents, each with one vector. It is pinned to the
embedding model (name and version) that made its vectors and to their dimension, so vectors
of two model versions are never mixed: a new version goes into a new collection (re-index).
Vectors are compared by inner product; the embedding models L2-normalise their output, so
the score is the cosine similarity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.knowledge.errors import InvalidDocument, InvalidVectors

Vector = npt.NDArray[np.float32]
# Equality on metadata keys: {"lang": "en", "year": 2024}; every pair must match.
Filter = Mapping[str, str | int | float | bool]

MAX_TOP_K = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection is pinned to; ``count`` is its number of chunks when read back."""

    name: str
    model: str
    model_version: str
    dimension: int
    count: int = 0


@dataclass(frozen=True)
class ChunkVector:
    """One chunk to store: its id (``<document_id>#<n>``), text, vector and metadata."""

    chunk_id: str
    text: str
    vector: Vector
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentChunks:
    """Every chunk of one document; storing it replaces whatever the document had before."""

    document_id: str
    chunks: Sequence[ChunkVector]


@dataclass(frozen=True)
class SearchHit:
    """A chunk found by a search, with its inner-product score (higher is closer)."""

    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any]


class VectorStore(Protocol):
    """Collections of chunk vectors. Implementations: ``LocalVectorStore`` (in process,
    persisted in a directory) and ``QdrantVectorStore`` (a Qdrant server or its local mode)."""

    def create_collection(self, name: str, model: str, model_version: str, dimension: int) -> None:
        """Create an empty collection; an existing one with the same pinning is kept as is."""

    def get_collection(self, name: str) -> CollectionInfo:
        """Its pinning and chunk count; ``CollectionNotFound`` when there is none."""

    def list_collections(self) -> list[str]:
        """Names of every collection, sorted."""

    def delete_collection(self, name: str) -> bool:
        """Remove a collection and its vectors; False when there was none."""

    def upsert(self, name: str, documents: Sequence[DocumentChunks]) -> int:
        """Store each document's chunks in place of its old ones, all or nothing; returns the
        number of chunks written. Vectors are checked before anything is written."""

    def delete_document(self, name: str, document_id: str) -> bool:
        """Remove every chunk of a document; False when it had none."""

    def search(
        self, name: str, vector: Vector, top_k: int, filter: Filter | None = None
    ) -> list[SearchHit]:
        """The ``top_k`` chunks of highest inner product with ``vector``, best first."""

    def count(self, name: str, document_id: str | None = None) -> int:
        """Chunks in the collection (of one document, when given)."""

    def close(self) -> None:
        """Release files, connections and threads."""


def check_name(name: str) -> str:
    """A collection name safe as a directory and a Qdrant collection name."""
    if not _NAME.match(name):
        raise InvalidDocument(f"invalid collection name {name!r}", param="name")
    return name


def check_pinning(info: CollectionInfo, model: str, model_version: str, dimension: int) -> None:
    """Refuse to re-create an existing collection with another pinning."""
    if (info.model, info.model_version, info.dimension) != (model, model_version, dimension):
        raise InvalidDocument(
            f"collection {info.name!r} exists, pinned to {info.model} {info.model_version} "
            f"({info.dimension}-d)",
            param="name",
        )


def check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidDocument(f"top_k must be an integer from 1 to {MAX_TOP_K}", param="top_k")
    return top_k


def as_query(vector: npt.ArrayLike, dimension: int) -> Vector:
    """A query vector as float32 of the collection's dimension, or ``InvalidVectors``."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] != dimension:
        raise InvalidVectors(
            f"query vector has shape {tuple(array.shape)}; the collection holds {dimension}-d "
            "vectors"
        )
    if not np.isfinite(array).all():
        raise InvalidVectors("query vector has a NaN or infinite value")
    return array


def stack_checked(documents: Sequence[DocumentChunks], dimension: int) -> Vector:
    """Every chunk vector of ``documents`` as one (n, dimension) float32 matrix, after checking
    all of them: ids, dimension, finiteness. Raises before the caller writes anything."""
    seen: set[str] = set()
    rows: list[Vector] = []
    for d, document in enumerate(documents):
        if not document.document_id or not isinstance(document.document_id, str):
            raise InvalidDocument(f"documents[{d}] has no id", param=f"documents[{d}].id")
        if document.document_id in seen:
            raise InvalidDocument(
                f"document id {document.document_id!r} appears twice in one request",
                param=f"documents[{d}].id",
            )
        seen.add(document.document_id)
        chunk_ids: set[str] = set()
        for c, chunk in enumerate(document.chunks):
            if chunk.chunk_id in chunk_ids:
                raise InvalidDocument(f"chunk id {chunk.chunk_id!r} appears twice")
            chunk_ids.add(chunk.chunk_id)
            array = np.asarray(chunk.vector, dtype=np.float32)
            if array.ndim != 1 or array.shape[0] != dimension:
                raise InvalidVectors(
                    f"document {document.document_id!r} chunk {c}: vector has shape "
                    f"{tuple(array.shape)}; the collection holds {dimension}-d vectors"
                )
            if not np.isfinite(array).all():
                raise InvalidVectors(
                    f"document {document.document_id!r} chunk {c}: vector has a NaN or "
                    "infinite value"
                )
            rows.append(array)
    if not rows:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.stack(rows).astype(np.float32, copy=False)


def matches(metadata: Mapping[str, Any], filter: Filter | None) -> bool:
    """Whether ``metadata`` has every key of ``filter`` with an equal value."""
    if not filter:
        return True
    return all(_equal(metadata.get(key), value) for key, value in filter.items())


def _equal(have: Any, want: Any) -> bool:
    # bool is an int in Python; True must not match 1, as it does not in Qdrant.
    if isinstance(have, bool) or isinstance(want, bool):
        return isinstance(have, bool) and isinstance(want, bool) and have == want
    if isinstance(have, float | int) and isinstance(want, float | int):
        return math.isclose(have, want, rel_tol=0, abs_tol=0)
    return bool(have == want)
