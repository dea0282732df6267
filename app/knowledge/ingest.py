"""Documents into chunk vectors: checks and limits, chunking, embedding in batches.

Everything here runs before the first write, so a document that breaks a rule, or an
embedder that fails, leaves the knowledge base as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.knowledge.chunking import ChunkingConfig, chunk_text
from app.knowledge.errors import DocumentTooLarge, InvalidDocument, InvalidVectors
from app.knowledge.vectors import ChunkVector, DocumentChunks


class Embedder(Protocol):
    """An embedding model version: ``embed`` maps texts to L2-normalised float32 rows."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class DocumentIn:
    """A document to add: its id (unique in the knowledge base), text and metadata."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestLimits:
    """What one synchronous add may hold; larger uploads belong to a background job.

    The defaults bound one call to about 1,250 chunks of 800 characters: tens of seconds of
    embedding on 2 CPU cores, within an HTTP deadline.
    """

    max_documents: int = 256
    max_document_chars: int = 200_000
    max_total_chars: int = 1_000_000
    max_id_chars: int = 256
    embed_batch: int = 64


def check_documents(documents: Sequence[DocumentIn], limits: IngestLimits) -> None:
    """Raise ``InvalidDocument`` (422) or ``DocumentTooLarge`` (413) naming the field at fault."""
    if not documents:
        raise InvalidDocument("documents must hold at least one document")
    if len(documents) > limits.max_documents:
        raise DocumentTooLarge(
            f"{len(documents)} documents in one request; at most {limits.max_documents} "
            "(upload larger sets as a file for background ingestion)"
        )
    seen: set[str] = set()
    total = 0
    for i, document in enumerate(documents):
        if not isinstance(document.id, str) or not document.id.strip():
            raise InvalidDocument("a document id must be a non-empty string", f"documents[{i}].id")
        if len(document.id) > limits.max_id_chars or "\x00" in document.id:
            raise InvalidDocument(
                f"a document id has at most {limits.max_id_chars} characters and no NUL",
                f"documents[{i}].id",
            )
        if document.id in seen:
            raise InvalidDocument(
                f"document id {document.id!r} appears twice", f"documents[{i}].id"
            )
        seen.add(document.id)
        if not isinstance(document.text, str) or not document.text.strip():
            raise InvalidDocument("a document needs non-empty text", f"documents[{i}].text")
        if len(document.text) > limits.max_document_chars:
            raise DocumentTooLarge(
                f"document {document.id!r} has {len(document.text)} characters; at most "
                f"{limits.max_document_chars}",
                f"documents[{i}].text",
            )
        total += len(document.text)
        _check_metadata(document.metadata, f"documents[{i}].metadata")
    if total > limits.max_total_chars:
        raise DocumentTooLarge(
            f"{total} characters of text in one request; at most {limits.max_total_chars}"
        )


def _check_metadata(metadata: Mapping[str, Any], param: str) -> None:
    if not isinstance(metadata, Mapping):
        raise InvalidDocument("metadata must be a JSON object", param)
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidDocument(f"metadata is not plain JSON: {exc}", param) from exc


def embed_documents(
    documents: Sequence[DocumentIn],
    embedder: Embedder,
    chunking: ChunkingConfig,
    batch: int = 64,
) -> list[DocumentChunks]:
    """Chunk and embed every document; each chunk carries its document's metadata."""
    pieces = [(d, chunk_text(d.id, d.text, chunking)) for d in documents]
    texts = [chunk.text for _, chunks in pieces for chunk in chunks]
    vectors = embed_all(embedder, texts, batch)
    out: list[DocumentChunks] = []
    row = 0
    for document, chunks in pieces:
        metadata = dict(document.metadata)
        out.append(
            DocumentChunks(
                document.id,
                [
                    ChunkVector(c.chunk_id, c.text, vectors[row + n], metadata)
                    for n, c in enumerate(chunks)
                ],
            )
        )
        row += len(chunks)
    return out


def embed_all(embedder: Embedder, texts: Sequence[str], batch: int) -> npt.NDArray[np.float32]:
    """``embedder.embed`` over ``texts`` in batches, checked: one finite row per text."""
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    parts = []
    for start in range(0, len(texts), batch):
        part = np.asarray(embedder.embed(texts[start : start + batch]), dtype=np.float32)
        expected = (min(batch, len(texts) - start), embedder.dimension)
        if part.shape != expected:
            raise InvalidVectors(
                f"embedding model {embedder.name} {embedder.version} returned shape "
                f"{part.shape}, expected {expected}"
            )
        parts.append(part)
    vectors = np.concatenate(parts)
    if not np.isfinite(vectors).all():
        raise InvalidVectors(f"embedding model {embedder.name} returned a NaN or infinity")
    return vectors
