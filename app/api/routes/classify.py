"""POST /classify: sentiment, topic, or any classification model by name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import ServicesDep
from app.api.disconnect import unless_client_leaves
from app.api.errors import InvalidInput
from app.api.middleware import model_headers
from app.api.schemas import (
    CLASSIFY_RESPONSE,
    ClassifyRequest,
    ClassifyResponse,
    ClassifyResult,
    ErrorResponse,
)
from app.config import Settings
from app.service import Services
from app.serving.classifier import Timings
from app.serving.refs import ModelRef
from app.serving.text import is_blank

router = APIRouter(tags=["inference"])
JSON = "application/json"

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (404, 413, 422, 429, 503, 504)
}


def check_texts(settings: Settings, texts: list[str], field: str) -> None:
    """Limits that depend on settings, each answered with the offending field named."""
    if not texts:
        raise InvalidInput(field, "give at least one text")
    if len(texts) > settings.max_texts_per_request:
        raise InvalidInput(
            field, f"{len(texts)} texts exceed the limit of {settings.max_texts_per_request}"
        )
    for i, text in enumerate(texts):
        where = field if field == "text" else f"{field}.{i}"
        if is_blank(text):
            raise InvalidInput(where, "text is empty")
        if len(text) > settings.max_text_chars:
            raise InvalidInput(
                where, f"text has {len(text)} characters; the limit is {settings.max_text_chars}"
            )


def timeout_seconds(settings: Settings, timeout_ms: int | None, param: str = "timeout_ms") -> float:
    if timeout_ms is None:
        return settings.default_timeout_ms / 1000.0
    if timeout_ms > settings.max_timeout_ms:
        raise InvalidInput(param, f"must be at most {settings.max_timeout_ms}")
    return timeout_ms / 1000.0


def timing_headers(t: Timings) -> dict[str, str]:
    """Per-stage times in milliseconds, as text-embeddings-inference reports them."""
    return {
        "x-total-time": f"{t.total_s * 1000:.3f}",
        "x-queue-time": f"{t.queue_s * 1000:.3f}",
        "x-tokenization-time": f"{t.tokenize_s * 1000:.3f}",
        "x-inference-time": f"{t.inference_s * 1000:.3f}",
    }


async def answer(
    services: Services, body: ClassifyRequest
) -> tuple[ClassifyResponse, dict[str, str]]:
    """The answer to a valid classify request: its JSON payload and its headers.

    Shared by the documented FastAPI route and the lean endpoint (app/api/lean.py).
    """
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
    return payload, headers


@router.post("/classify", response_model=ClassifyResponse, responses=ERRORS)
async def classify(body: ClassifyRequest, services: ServicesDep, request: Request) -> Response:
    """Classify one text (`text`) or several (`texts`) with a task's model or a named one."""
    payload, headers = await unless_client_leaves(answer(services, body), request.receive)
    # Serialized as the lean endpoint does, rather than through response_model (which would
    # validate the answer a second time).
    return Response(CLASSIFY_RESPONSE.dump_json(payload), media_type=JSON, headers=headers)
