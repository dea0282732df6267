"""Ranking by embedding cosine: documents against a query (rerank), items against a user
(recommend). Vectors are unit length, so a dot product is the cosine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.serving.embedder import Embedder, Embeddings, Vectors
from app.serving.refs import ModelRef

# Recommend: how a user's history becomes one interest vector. Each item's vector weighs
# RECENCY_DECAY times the one after it (the last item is the most recent, weight 1), and
# the weighted mean is normalised. 0.8: the fifth most recent item still counts 41 %, the
# fifteenth 4 %, so a long history does not drown what the user looked at last. Chosen, not
# measured on a public click set (see docs/api-embeddings.md).
RECENCY_DECAY = 0.8


@dataclass(frozen=True)
class Scored:
    index: int  # position in the caller's list
    score: float


@dataclass(frozen=True)
class Ranking:
    model: str
    version: int
    results: list[Scored]  # best first
    tokens: int
    embeddings: Embeddings


def top(scores: Vectors, top_n: int | None) -> list[Scored]:
    """Indices by descending score (ties keep the caller's order), the first ``top_n``."""
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    if top_n is not None:
        order = order[:top_n]
    return [Scored(int(i), float(scores[i])) for i in order]


def interest_vector(history: Vectors) -> Vectors:
    """One unit vector for a history of item vectors, oldest first (see RECENCY_DECAY)."""
    ages = np.arange(len(history) - 1, -1, -1, dtype=np.float64)
    weights = RECENCY_DECAY**ages
    mean = (history.astype(np.float64) * weights[:, None]).sum(axis=0) / weights.sum()
    norm = float(np.linalg.norm(mean))
    out: Vectors = (mean / max(norm, 1e-12)).astype(np.float32)
    return out


class Ranker:
    """Rerank and recommend with one embedding model, each in one batcher submission."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    async def rerank(
        self,
        ref: ModelRef,
        query: str,
        documents: list[str],
        *,
        top_n: int | None,
        timeout_s: float,
    ) -> Ranking:
        """``documents`` by the cosine of their vectors with the query's."""
        got = await self._embedder.embed(ref, [query, *documents], timeout_s)
        scores = got.vectors[1:] @ got.vectors[0]
        return Ranking(got.model, got.version, top(scores, top_n), got.tokens, got)

    async def recommend(
        self,
        ref: ModelRef,
        user_texts: list[str],
        candidates: list[str],
        *,
        top_n: int | None,
        timeout_s: float,
    ) -> Ranking:
        """``candidates`` by cosine with the user's interest vector (``user_texts`` oldest
        first: a history, or one text describing the user)."""
        got = await self._embedder.embed(ref, [*user_texts, *candidates], timeout_s)
        user = interest_vector(got.vectors[: len(user_texts)])
        scores = got.vectors[len(user_texts) :] @ user
        return Ranking(got.model, got.version, top(scores, top_n), got.tokens, got)
