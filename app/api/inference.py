"""What every inference route checks and answers alike: the texts' limits, the deadline, the
per-stage timing headers and the documented error statuses."""

from __future__ import annotations

from typing import Any

from app.api.errors import InvalidInput
from app.api.schemas import ErrorResponse
from app.config import Settings
from app.serving.classifier import Timings
from app.serving.text import is_blank

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (404, 413, 422, 429, 503, 504)
}


def check_texts(settings: Settings, texts: list[str], field: str, single: bool = False) -> None:
    """Limits that depend on settings, each answered with the offending field named
    (``field.i`` for a list's i-th text; ``field`` alone for a ``single`` text)."""
    if not texts:
        raise InvalidInput(field, "give at least one text")
    if len(texts) > settings.max_texts_per_request:
        raise InvalidInput(
            field, f"{len(texts)} texts exceed the limit of {settings.max_texts_per_request}"
        )
    for i, text in enumerate(texts):
        where = field if single or field == "text" else f"{field}.{i}"
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
