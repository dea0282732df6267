"""POST /v1/rerank (Cohere's and Jina's shape) and POST /v1/recommend, scored by the cosine
of an embedding model's vectors (app/serving/ranker.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import ServicesDep
from app.api.inference import ERRORS, check_texts, timeout_seconds, timing_headers
from app.api.middleware import model_headers
from app.api.schemas_embeddings import (
    EmbeddingsUsage,
    Recommendation,
    RecommendRequest,
    RecommendResponse,
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
)
from app.serving.ranker import Ranking
from app.serving.refs import ModelRef

router = APIRouter(tags=["embeddings"])


@router.post("/v1/rerank", response_model=RerankResponse, responses=ERRORS)
async def rerank(body: RerankRequest, services: ServicesDep, response: Response) -> RerankResponse:
    """The documents by relevance to the query, best first."""
    settings = services.settings
    check_texts(settings, [body.query], "query", single=True)
    docs = [RerankDocument(text=d) if isinstance(d, str) else d for d in body.documents]
    check_texts(settings, [d.text for d in docs], "documents")
    ranking = await services.ranker.rerank(
        ModelRef.parse(body.model),
        body.query,
        [d.text for d in docs],
        top_n=body.top_n,
        timeout_s=timeout_seconds(settings, body.timeout_ms),
    )
    _headers(response, ranking)
    results = [
        RerankResult(
            index=r.index,
            relevance_score=r.score,
            document=docs[r.index] if body.return_documents else None,
        )
        for r in ranking.results
    ]
    usage = EmbeddingsUsage(prompt_tokens=ranking.tokens, total_tokens=ranking.tokens)
    return RerankResponse(model=ranking.model, results=results, usage=usage)


@router.post("/v1/recommend", response_model=RecommendResponse, responses=ERRORS)
async def recommend(
    body: RecommendRequest, services: ServicesDep, response: Response
) -> RecommendResponse:
    """The candidates by match with the user's interests, best first."""
    settings = services.settings
    if body.user.history is not None:
        user_texts = body.user.history
        check_texts(settings, user_texts, "user.history")
    else:
        user_texts = [body.user.text or ""]
        check_texts(settings, user_texts, "user.text", single=True)
    check_texts(settings, [c.text for c in body.candidates], "candidates")
    excluded = set(body.exclude)
    kept = [c for c in body.candidates if c.id not in excluded]
    ref = ModelRef.parse(body.model)
    if not kept:  # everything excluded: nothing to rank, but the model must still exist
        return RecommendResponse(model=services.embedder.engine(ref).name, results=[])
    ranking = await services.ranker.recommend(
        ref,
        user_texts,
        [c.text for c in kept],
        top_n=body.top_n,
        timeout_s=timeout_seconds(settings, body.timeout_ms),
    )
    _headers(response, ranking)
    results = [Recommendation(id=kept[r.index].id, score=r.score) for r in ranking.results]
    return RecommendResponse(model=ranking.model, results=results)


def _headers(response: Response, ranking: Ranking) -> None:
    """Timing and model headers, as /classify sends them (the access log reads them too)."""
    got = ranking.embeddings
    response.headers.update(
        {**timing_headers(got.timings), **model_headers(got.model, got.version)}
    )
