"""Knowledge bases: chunking, the ``VectorStore`` interface (local | qdrant), ingestion,
search and extractive answers. Knows nothing of HTTP or of how texts are embedded: the
service takes an ``Embedder`` (docs/knowledge-bases.md)."""

from __future__ import annotations

from pathlib import Path

from app.knowledge.local import DEFAULT_ANN_MIN_CHUNKS, LocalVectorStore
from app.knowledge.vectors import VectorStore


def open_vector_store(
    url: str | None,
    data_dir: Path,
    api_key: str | None = None,
    ann_min_chunks: int = DEFAULT_ANN_MIN_CHUNKS,
) -> VectorStore:
    """The store ``TEXTSERVE_VECTOR_URL`` names: none, the local store under
    ``data_dir/vectors``; ``http(s)://...``, ``:memory:`` or ``file:<path>``, Qdrant."""
    if not url:
        return LocalVectorStore(data_dir / "vectors", ann_min_chunks=ann_min_chunks)
    from app.knowledge.qdrant import QdrantVectorStore  # its client loads only when chosen

    return QdrantVectorStore.from_url(url, api_key)
