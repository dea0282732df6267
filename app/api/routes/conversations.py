"""/v1/conversations/{id}: read back or forget a conversation the service keeps for /reply.

What a human agent reads when a bot hands a customer over: every kept turn with the intent,
confidence and handoff decision of the reply. A conversation belongs to the API key that
started it: another key asking for the same id gets 404, as for an id never used.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from app.api.deps import ServicesDep
from app.api.schemas import ErrorResponse
from app.api.schemas_conversations import Conversation, ConversationDeleted, ConversationTurn
from app.api.schemas_reply import CONVERSATION_ID_PATTERN
from app.errors import ConversationNotFound
from app.serving.conversations import conversation_key

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No kept conversation with that id for this key."},
    422: {"model": ErrorResponse, "description": "The id does not match the conversation id rule."},
    503: {"model": ErrorResponse, "description": "The conversation store (Redis) is unreachable."},
}
ConversationId = Annotated[
    str, Path(pattern=CONVERSATION_ID_PATTERN, description="The id sent with /reply.")
]


def _key(request: Request, conversation_id: str) -> str:
    # Set by the key check when keys are configured; open services share one namespace.
    return conversation_key(getattr(request.state, "api_key", None), conversation_id)


def _not_found(conversation_id: str) -> ConversationNotFound:
    return ConversationNotFound(f"no kept conversation {conversation_id!r} (or it has expired)")


@router.get("/{conversation_id}", response_model=Conversation, responses=ERRORS)
async def get_conversation(
    conversation_id: ConversationId, services: ServicesDep, request: Request
) -> Conversation:
    """The conversation's kept turns, oldest first, with what the reply model made of each."""
    turns = await services.responder.conversations.read(_key(request, conversation_id))
    if not turns:
        raise _not_found(conversation_id)
    return Conversation(
        id=conversation_id,
        turns=[
            ConversationTurn(
                role=t.role,
                content=t.content,
                intent=t.intent,
                confidence=t.confidence,
                handoff=t.handoff,
                handoff_reason=t.handoff_reason,
                at=t.at,
            )
            for t in turns
        ],
    )


@router.delete("/{conversation_id}", response_model=ConversationDeleted, responses=ERRORS)
async def delete_conversation(
    conversation_id: ConversationId, services: ServicesDep, request: Request
) -> ConversationDeleted:
    """Forget the conversation: the next /reply with this id starts afresh."""
    if not await services.responder.conversations.delete(_key(request, conversation_id)):
        raise _not_found(conversation_id)
    return ConversationDeleted(id=conversation_id)
