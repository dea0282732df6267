"""The answer of /classify with several tasks or models (``tasks``, ``models``, ``stream``).

Kept apart from app/api/routes/classify.py, whose single-model answer stays as lean as it is;
both the FastAPI route and the lean endpoint reach this through ``routes.classify.answer``.
"""

from __future__ import annotations

from typing import Any

from app.api.errors import InvalidInput
from app.api.inference import check_texts, timeout_seconds
from app.api.schemas import ClassifyRequest
from app.errors import InvalidModelName, ModelNotFound
from app.service import Services
from app.serving.monitor import StreamRefused
from app.serving.opinion import NoOpinionPair
from app.serving.refs import ModelRef


def requested_models(body: ClassifyRequest) -> dict[str, ModelRef]:
    """The models to run, by the key their answers carry: the task, or the model's name."""
    if body.tasks is not None:
        return {task: ModelRef(task) for task in body.tasks}
    if body.models is not None:
        refs = {}
        for ref in body.models:
            parsed = _parse(ref, "models")
            refs[parsed.name] = parsed
        return refs
    if body.model is not None:
        parsed = _parse(body.model, "model")
        return {parsed.name: parsed}
    return {str(body.task): ModelRef(str(body.task))}


def _parse(ref: str, field: str) -> ModelRef:
    try:
        return ModelRef.parse(ref)
    except InvalidModelName as exc:
        exc.param = field
        raise


async def answer_opinion(
    services: Services, body: ClassifyRequest
) -> tuple[dict[str, Any], dict[str, str]]:
    """Payload and headers of a multi-task (or streamed) classify request."""
    settings = services.settings
    texts = [body.text] if body.text is not None else (body.texts or [])
    check_texts(settings, texts, "text" if body.text is not None else "texts")
    refs = requested_models(body)
    try:
        answers = await services.opinion.classify(
            refs,
            texts,
            stream=body.stream,
            timeout_s=timeout_seconds(settings, body.timeout_ms),
            top_k=body.top_k,
            all_scores=body.return_all_scores,
        )
    except (StreamRefused, NoOpinionPair) as exc:
        raise InvalidInput("stream", str(exc).removeprefix("stream: ")) from None
    except ModelNotFound as exc:
        if body.models is not None:
            exc.param = "models"
        elif body.tasks is not None:
            exc.param = "tasks"
        raise
    results: list[dict[str, Any]] = [{} for _ in texts]
    for key, answer in answers.items():
        for item, p in zip(results, answer.predictions, strict=True):
            one: dict[str, Any] = {"label": p.label, "score": p.score, "truncated": p.truncated}
            if p.scores is not None:
                one["scores"] = p.scores
            item[key] = one
    payload = {
        "models": {k: {"model": a.model, "version": a.version} for k, a in answers.items()},
        "stream": body.stream,
        "results": results,
    }
    slowest = max(answers.values(), key=lambda a: a.timings.total_s).timings
    headers = {
        "x-total-time": f"{slowest.total_s * 1000:.3f}",
        "x-queue-time": f"{slowest.queue_s * 1000:.3f}",
        "x-inference-time": f"{slowest.inference_s * 1000:.3f}",
    }
    return payload, headers
