"""Sentence embeddings over an engine: the graph pools and normalises, this checks and packs.

An embedding model (manifest task ``embedding``) answers one unit-length float32 vector per
text. Requests of many texts go through the same batcher as every other model: it splits
them across runs by its token and row limits, sorted by length, under the request deadline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.errors import ShuttingDown, WrongModelTask
from app.registry.registry import ModelRegistry
from app.runtime.engine import InferenceEngine
from app.serving.classifier import Timings
from app.serving.refs import ModelRef

EMBEDDING_TASK = "embedding"
DEFAULT_MODEL = "embedding"
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Embeddings:
    """The answer for a list of texts: one row per text, in order."""

    model: str
    version: int
    dimension: int
    vectors: Vectors  # (texts, dimension), unit length
    tokens: int  # tokens fed to the model, after truncation
    truncated: list[bool]
    timings: Timings


class Embedder:
    """Turns texts into vectors with the requested embedding model version."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def engine(self, ref: ModelRef) -> InferenceEngine:
        """The engine serving ``ref``; ``WrongModelTask`` if it is not an embedding model."""
        engine = self._registry.get(ref.name, ref.version)
        if engine.manifest.task != EMBEDDING_TASK:
            raise WrongModelTask(
                f"model {ref.name!r} is a {engine.manifest.task} model, not an embedding model"
            )
        return engine

    def dimension(self, ref: ModelRef) -> int:
        return model_dimension(self.engine(ref))

    def pinned(self, ref: ModelRef | str = DEFAULT_MODEL) -> PinnedEmbedder:
        """The version ``ref`` names (the active one without ``@version``), synchronous."""
        return PinnedEmbedder(self.engine(ModelRef.parse(ref) if isinstance(ref, str) else ref))

    async def embed(self, ref: ModelRef | str, texts: list[str], timeout_s: float) -> Embeddings:
        """Vectors for ``texts`` (non-empty) within ``timeout_s`` seconds."""
        started = time.perf_counter()
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        engine = self.engine(ref)
        try:
            result = await engine.infer(texts, timeout_s)
        except ShuttingDown:
            # A hot swap may retire this engine between the lookup and the submit; the
            # engine that replaced it takes the request. Shutdown proper fails the lookup.
            replacement = self.engine(ref)
            if replacement is engine:
                raise
            engine = replacement
            result = await engine.infer(texts, timeout_s)
        vectors = np.ascontiguousarray(result.outputs[0], dtype=np.float32)
        timings = Timings(
            total_s=time.perf_counter() - started,
            queue_s=result.queue_s,
            tokenize_s=result.tokenize_s,
            inference_s=result.inference_s,
        )
        return Embeddings(
            model=engine.name,
            version=engine.version,
            dimension=vectors.shape[1],
            vectors=vectors,
            tokens=sum(engine.token_counts(texts)),
            truncated=result.truncated,
            timings=timings,
        )


# Rows per run when a pinned embedder embeds off the request path (knowledge-base ingestion).
OFFLINE_BATCH = 32


class PinnedEmbedder:
    """One loaded embedding model version, synchronous: for work off the event loop (a
    knowledge base ingesting documents in a worker thread), where the request batcher's
    deadlines have no meaning. Matches app/knowledge's ``Embedder`` protocol."""

    def __init__(self, engine: InferenceEngine) -> None:
        self._engine = engine
        self._dimension = model_dimension(engine)

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def version(self) -> str:
        return str(self._engine.version)

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length float32 rows for ``texts``, in order: length-sorted runs of
        ``OFFLINE_BATCH`` texts, so little of the work goes on padding."""
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for first in range(0, len(order), OFFLINE_BATCH):
            picked = order[first : first + OFFLINE_BATCH]
            (vectors,), _ = self._engine.run_direct([texts[i] for i in picked])
            out[picked] = vectors
        return out


def model_dimension(engine: InferenceEngine) -> int:
    """The manifest's dimension, else the width of the model's output."""
    if engine.manifest.dimension:
        return engine.manifest.dimension
    (vectors,), _ = engine.run_direct(["dimension"])
    return int(vectors.shape[1])
