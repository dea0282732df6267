"""Request and response bodies of ``POST /reply``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
MAX_SLOTS = 64
MAX_SLOT_CHARS = 1000
MAX_HISTORY = 200


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant", "system"] = Field(
        description="`user` is the customer, `assistant` the bot or agent."
    )
    content: str


SlotValue = str | int | float
Slots = dict[str, SlotValue]


def check_slots(value: object) -> object:
    """Before parsing: at most ``MAX_SLOTS`` values, each a string or number of bounded
    length (a JSON ``true`` would otherwise become the number 1)."""
    if not isinstance(value, dict):
        return value  # pydantic reports the type error
    if len(value) > MAX_SLOTS:
        raise ValueError(f"at most {MAX_SLOTS} slots")
    for key, slot in value.items():
        if isinstance(slot, bool) or not isinstance(slot, str | int | float):
            raise ValueError(f"slot {key!r} must be a string or a number")
        if len(str(slot)) > MAX_SLOT_CHARS:
            raise ValueError(f"slot {key!r} is longer than {MAX_SLOT_CHARS} characters")
    return value


def slot_strings(value: Slots | None) -> dict[str, str]:
    return {k: str(v) for k, v in (value or {}).items()}


class ReplyRequest(BaseModel):
    """One customer message, with optional context and placeholder values."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    message: str = Field(description="The customer's message to answer.")
    conversation_id: str | None = Field(
        None,
        pattern=CONVERSATION_ID_PATTERN,
        description="Your id for the conversation. Without `history`, the service keeps its "
        "last turns and reads short follow-ups in their light.",
    )
    history: list[HistoryTurn] | None = Field(
        None,
        max_length=MAX_HISTORY,
        description="The conversation so far, oldest first, without `message`. When given, "
        "the service keeps nothing.",
    )
    slots: Slots | None = Field(
        None, description='Placeholder values, e.g. {"order_number": "A123"}.'
    )
    model: str | None = Field(None, description="A reply model as `name` or `name@version`.")
    timeout_ms: int | None = Field(None, ge=1, description="Deadline for this request.")

    @field_validator("slots", mode="before")
    @classmethod
    def _small_slots(cls, value: object) -> object:
        return check_slots(value)


class IntentScore(BaseModel):
    intent: str
    score: float


class SentimentView(BaseModel):
    label: str
    score: float
    model: str


HandoffReason = Literal["customer_asked_for_human", "low_confidence", "negative_sentiment"]


class ReplyResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    reply: str = Field(description="The text to send: never holds an unfilled placeholder.")
    intent: str
    confidence: float
    handoff: bool = Field(description="Whether a human agent should take over.")
    handoff_reason: HandoffReason | None
    alternatives: list[IntentScore] = Field(description="The next best intents.")
    sentiment: SentimentView | None = Field(description="When a sentiment model is active.")
    missing_slots: list[str] = Field(
        description="Placeholders of the chosen template that no slot filled; `reply` then "
        "asks the customer for them."
    )
    template: str = Field(description="The vetted template the reply comes from.")
    context_used: bool = Field(description="Whether the previous customer turn was read too.")
    conversation_id: str | None
    model: str
    version: int
