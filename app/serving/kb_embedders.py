"""Which embedder embeds a knowledge base's texts: the resolver ``KnowledgeBaseService`` takes.

``registry_resolver(registry)`` looks the embedding model up among the served models and
hands its engine to ``engine_embedder``, the one place that turns a served embedding model
into an ``app.knowledge.ingest.Embedder``: the synchronous ``PinnedEmbedder`` of
``app/serving/embedder.py``, pinned to that engine's version, which is what a knowledge base
records. A model that is not served, or is not an embedding model, resolves to None, so the
knowledge-base routes answer 404 naming ``model`` rather than embedding with something else.
Tests may pass their own resolver (``Services.build(..., embedders=...)``).
"""

from __future__ import annotations

from app.errors import InvalidModelName, ModelNotFound, ModelNotReady
from app.knowledge.ingest import Embedder
from app.knowledge.service import EmbedderResolver
from app.registry.registry import ModelRegistry
from app.runtime.engine import InferenceEngine
from app.serving.embedder import PinnedEmbedder

EMBEDDING_TASK = "embedding"


def engine_embedder(engine: InferenceEngine) -> Embedder:
    """The ``Embedder`` over a served embedding engine, its ``version`` the engine's (the
    pinning a knowledge base keeps). ``KnowledgeBaseService`` calls ``embed`` from a worker
    thread, not the event loop: it runs the engine directly, outside the request batcher."""
    return PinnedEmbedder(engine)


def registry_resolver(registry: ModelRegistry) -> EmbedderResolver:
    """(model, version or None for the active one) -> its embedder, or None when that
    model version is not served, is not an embedding model, or has no embedder."""

    def resolve(model: str, version: str | None) -> Embedder | None:
        try:
            number = int(version) if version is not None else None
            engine = registry.get(model, number)
        except (ValueError, ModelNotFound, ModelNotReady, InvalidModelName):
            return None
        if engine.manifest.task != EMBEDDING_TASK:
            return None
        return engine_embedder(engine)

    return resolve
