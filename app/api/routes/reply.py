"""POST /reply: the reply to a customer message, its intent, confidence and handoff advice."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.deps import ServicesDep, caller_of
from app.api.disconnect import unless_client_leaves
from app.api.errors import InvalidInput
from app.api.inference import ERRORS, timeout_seconds, timing_headers
from app.api.schemas_reply import (
    CitationView,
    HistoryTurn,
    IntentScore,
    ReplyRequest,
    ReplyResponse,
    SentimentView,
    slot_strings,
)
from app.config import Settings
from app.serving.conversations import Turn
from app.serving.refs import ModelRef
from app.serving.responder import Reply
from app.serving.text import is_blank

router = APIRouter(tags=["inference"])
# On a /reply with a conversation_id whose kept turns could not be read or written.
CONVERSATION_STATE_HEADER = "X-Conversation-State"


def check_message(settings: Settings, text: str, field: str) -> None:
    """The customer's message: not blank, not longer than ``max_text_chars``."""
    if is_blank(text):
        raise InvalidInput(field, "text is empty")
    if len(text) > settings.max_text_chars:
        raise InvalidInput(
            field, f"text has {len(text)} characters; the limit is {settings.max_text_chars}"
        )


def check_history(settings: Settings, history: list[HistoryTurn], field: str) -> list[Turn]:
    for i, turn in enumerate(history):
        if len(turn.content) > settings.max_text_chars:
            raise InvalidInput(
                f"{field}.{i}.content",
                f"text has {len(turn.content)} characters; the limit is {settings.max_text_chars}",
            )
    return [Turn(t.role, t.content) for t in history]


def reply_view(reply: Reply) -> dict[str, Any]:
    """The fields ``ReplyResponse`` and the chat extension (``ChatExtensionView``) share, as
    keyword arguments for either model."""
    sentiment = reply.sentiment
    return {
        "intent": reply.intent,
        "confidence": reply.confidence,
        "handoff": reply.handoff,
        "handoff_reason": reply.handoff_reason,
        "missing_slots": reply.missing_slots,
        "alternatives": [IntentScore(intent=a.intent, score=a.score) for a in reply.alternatives],
        "sentiment": None
        if sentiment is None
        else SentimentView(label=sentiment.label, score=sentiment.score, model=sentiment.model),
        "context_used": reply.context_used,
        "answer_source": reply.answer_source,
        "citations": [
            CitationView(
                document_id=c.document_id,
                chunk_id=c.chunk_id,
                score=c.score,
                metadata=dict(c.metadata),
            )
            for c in reply.citations
        ],
    }


def json_response(body: BaseModel, headers: dict[str, str]) -> Response:
    """``body`` serialized once by its own model, with ``headers``: FastAPI's response_model
    path would validate it a second time first."""
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)


@router.post("/reply", response_model=ReplyResponse, responses=ERRORS)
async def reply(body: ReplyRequest, services: ServicesDep, request: Request) -> Response:
    """Answer a customer message with a vetted reply, and say whether a human should take over."""
    settings = services.settings
    check_message(settings, body.message, "message")
    history = None if body.history is None else check_history(settings, body.history, "history")
    work = services.responder.reply(
        body.message,
        # `is not None`: an empty name is refused as sent, as on /classify.
        model=ModelRef.parse(body.model) if body.model is not None else None,
        history=history,
        conversation_id=body.conversation_id,
        # Set by the key check when keys are configured; open services share one namespace.
        owner=getattr(request.state, "api_key", None),
        slots=slot_strings(body.slots),
        knowledge_base=body.knowledge_base,
        caller=caller_of(request),
        timeout_s=timeout_seconds(settings, body.timeout_ms),
    )
    # A client gone before its answer: no model run, and no turn added to its conversation.
    result = await unless_client_leaves(work, request.receive)
    answer = ReplyResponse(
        reply=result.reply,
        **reply_view(result),
        template=result.template,
        conversation_id=result.conversation_id,
        model=result.model,
        version=result.version,
    )
    headers = timing_headers(result.timings)
    if result.stateless:  # the conversation store was unreachable (docs/scale-out.md)
        headers[CONVERSATION_STATE_HEADER] = "stateless"
    return json_response(answer, headers)
