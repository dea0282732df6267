"""Response bodies of ``GET`` and ``DELETE /v1/conversations/{conversation_id}``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas_reply import HandoffReason


class ConversationTurn(BaseModel):
    role: Literal["user", "assistant", "system"] = Field(
        description="`user` is the customer, `assistant` the reply sent."
    )
    content: str
    intent: str | None = Field(
        description="The intent the reply model read in the customer's message (on both turns "
        "of an exchange)."
    )
    confidence: float | None = Field(description="The model's confidence in that intent.")
    handoff: bool | None = Field(
        description="On the assistant's turn: whether the reply handed the customer to a person."
    )
    handoff_reason: HandoffReason | None = Field(description="Why, when it did.")
    at: float = Field(description="When the turn was recorded, in Unix seconds.")


class Conversation(BaseModel):
    id: str = Field(description="The conversation id the client sent with /reply.")
    turns: list[ConversationTurn] = Field(
        description="The kept turns, oldest first: the last TEXTSERVE_CONVERSATION_MAX_TURNS "
        "of those younger than TEXTSERVE_CONVERSATION_TTL_S."
    )


class ConversationDeleted(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    deleted: bool = True
