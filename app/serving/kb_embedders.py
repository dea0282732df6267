"""Which embedder embeds a knowledge base's texts: the resolver ``KnowledgeBaseService`` takes.

``registry_resolver(registry)`` looks the embedding model up among the served models and
hands its engine to ``engine_embedder``, the one place that turns a served embedding model
into an ``app.knowledge.ingest.Embedder``. Until the engine-backed embedder
(``app/serving/embedder.py``, model kind ``embedding``) is wired in there, it returns None,
so knowledge-base routes answer 404 "no embedding model ... is being served" rather than
embedding with something else. Tests pass their own resolver (``Services.build(...,
embedders=...)``).
"""

from __future__ import annotations

import logging

from app.errors import InvalidModelName, ModelNotFound, ModelNotReady
from app.knowledge.ingest import Embedder
from app.knowledge.service import EmbedderResolver
from app.registry.registry import ModelRegistry
from app.runtime.engine import InferenceEngine

log = logging.getLogger(__name__)
EMBEDDING_TASK = "embedding"


def engine_embedder(engine: InferenceEngine) -> Embedder | None:
    """The ``Embedder`` over a served embedding engine; None while none is wired.

    INTEGRATION POINT: return the engine-backed embedder of ``app/serving/embedder.py`` here
    (its ``version`` must be ``str(engine.version)``, the pinning a knowledge base keeps).
    ``KnowledgeBaseService`` calls ``embed`` from a worker thread, not the event loop.
    """
    log.debug("embedding model %s has no embedder wired yet", engine.ref)
    return None


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
