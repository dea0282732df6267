"""POST /classify: sentiment, topic, or any classification model by name."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import ServicesDep
from app.api.disconnect import unless_client_leaves
from app.api.inference import ERRORS, check_texts, timeout_seconds, timing_headers
from app.api.middleware import model_headers
from app.api.opinion import answer_opinion
from app.api.schemas import (
    CLASSIFY_RESPONSE,
    ClassifyRequest,
    ClassifyResponse,
    ClassifyResult,
)
from app.api.schemas_opinion import OpinionResponse
from app.service import Services
from app.serving.refs import ModelRef

router = APIRouter(tags=["inference"])
JSON = "application/json"


async def answer(services: Services, body: ClassifyRequest) -> tuple[bytes, dict[str, str]]:
    """The answer to a valid classify request: its JSON body and its headers.

    Shared by the documented FastAPI route and the lean endpoint (app/api/lean.py).
    """
    if body.tasks is not None or body.models is not None or body.stream is not None:
        opinion, opinion_headers = await answer_opinion(services, body)
        # Validated into its documented model once: the multi-task answer is not the hot path.
        return OpinionResponse.model_validate(opinion).model_dump_json(
            exclude_unset=True
        ).encode(), opinion_headers
    settings = services.settings
    single = body.text is not None
    texts = [body.text] if body.text is not None else (body.texts or [])
    check_texts(settings, texts, "text" if single else "texts")
    # `is not None`: an empty name is refused as sent, not read as "no model given".
    ref = ModelRef.parse(body.model) if body.model is not None else ModelRef(str(body.task))
    result = await services.classifier.classify(
        ref,
        texts,
        timeout_s=timeout_seconds(settings, body.timeout_ms),
        top_k=body.top_k,
        all_scores=body.return_all_scores,
    )
    results: list[ClassifyResult] = []
    for p in result.predictions:
        item = ClassifyResult(label=p.label, score=p.score, truncated=p.truncated)
        if p.scores is not None:
            item["scores"] = p.scores
        results.append(item)
    if single:
        # Serialized in insertion order: the first result's fields come before `results`,
        # as clients have always read them.
        first = results[0]
        payload = ClassifyResponse(
            model=result.model,
            version=result.version,
            label=first["label"],
            score=first["score"],
            truncated=first["truncated"],
            results=results,
        )
    else:
        payload = ClassifyResponse(model=result.model, version=result.version, results=results)
    headers = {**timing_headers(result.timings), **model_headers(result.model, result.version)}
    # pydantic-core writes the plain payload straight to JSON bytes (compact, UTF-8, a NaN
    # score as null): no model objects, no second validation.
    return CLASSIFY_RESPONSE.dump_json(payload), headers


@router.post("/classify", response_model=ClassifyResponse | OpinionResponse, responses=ERRORS)
async def classify(body: ClassifyRequest, services: ServicesDep, request: Request) -> Response:
    """Classify one text (`text`) or several (`texts`) with a task's model or a named one."""
    content, headers = await unless_client_leaves(answer(services, body), request.receive)
    # Serialized as the lean endpoint does, rather than through response_model (which would
    # validate the answer a second time).
    return Response(content, media_type=JSON, headers=headers)
