"""POST /v1/embeddings: OpenAI-compatible sentence vectors from an embedding model."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Response

from app.api.deps import ServicesDep
from app.api.errors import InvalidInput
from app.api.inference import ERRORS, check_texts, timeout_seconds, timing_headers
from app.api.middleware import model_headers
from app.api.schemas import ErrorResponse
from app.api.schemas_embeddings import (
    EmbeddingItem,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
)
from app.serving.refs import ModelRef

router = APIRouter(tags=["embeddings"])
# 400: `dimensions` the model cannot give (OpenAI answers this with a 400 too).
EMBEDDING_ERRORS = {**ERRORS, 400: {"model": ErrorResponse}}


def encode_base64(vector: np.ndarray) -> str:
    """A vector as OpenAI's ``base64`` encoding sends it: little-endian float32 bytes."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


@router.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=EMBEDDING_ERRORS)
async def embeddings(
    body: EmbeddingsRequest, services: ServicesDep, response: Response
) -> EmbeddingsResponse:
    """One vector per input, in order; large inputs are split across batches server-side."""
    settings = services.settings
    texts = [body.input] if isinstance(body.input, str) else body.input
    check_texts(settings, texts, "input", single=isinstance(body.input, str))
    ref = ModelRef.parse(body.model)
    if body.dimensions is not None:
        dimension = services.embedder.dimension(ref)
        if body.dimensions != dimension:
            raise InvalidInput(
                "dimensions",
                f"model {ref.name!r} answers {dimension} dimensions only; "
                f"leave `dimensions` out or send {dimension}",
                status=400,
            )
    got = await services.embedder.embed(ref, texts, timeout_seconds(settings, body.timeout_ms))
    response.headers.update(
        {**timing_headers(got.timings), **model_headers(got.model, got.version)}
    )
    if body.encoding_format == "base64":
        data = [
            EmbeddingItem(index=i, embedding=encode_base64(v)) for i, v in enumerate(got.vectors)
        ]
    else:
        data = [EmbeddingItem(index=i, embedding=v) for i, v in enumerate(got.vectors.tolist())]
    return EmbeddingsResponse(
        data=data,
        model=got.model,
        usage=EmbeddingsUsage(prompt_tokens=got.tokens, total_tokens=got.tokens),
    )
