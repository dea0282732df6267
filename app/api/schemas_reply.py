"""Request and response bodies of ``POST /reply``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
KNOWLEDGE_BASE_FIELD = Field(
    None,
    min_length=1,
    max_length=64,
    description="A knowledge base's `id`: a message the intents do not cover is answered "
    "from its documents when a passage matches well enough (`answer_source`).",
)
MAX_SLOTS = 64
MAX_SLOT_CHARS = 1000
MAX_HISTORY = 200


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["user", "assistant", "system"] = Field(
        description="`user` is the customer, `assistant` the bot or agent."
    )
    content: str


def check_slot(value: object) -> object:
    """Before parsing one slot value: a string or number (a JSON ``true`` would otherwise
    become the number 1) of bounded length, without braces. Checked per value so that the
    error names the slot (``slots.order_number``)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("a slot value must be a string or a number")
    text = str(value)
    if len(text) > MAX_SLOT_CHARS:
        raise ValueError(f"a slot value is at most {MAX_SLOT_CHARS} characters")
    # A reply is never sent with braces (README): a value like "{{website_url}}" would put
    # them in the text sent to the customer.
    if "{" in text or "}" in text:
        raise ValueError("a slot value cannot contain '{' or '}'")
    return value


SlotValue = Annotated[str | int | float, BeforeValidator(check_slot)]
Slots = dict[str, SlotValue]


def check_slots(value: object) -> object:
    """Before parsing: at most ``MAX_SLOTS`` values (each then checked by ``check_slot``)."""
    if isinstance(value, dict) and len(value) > MAX_SLOTS:
        raise ValueError(f"at most {MAX_SLOTS} slots")
    return value  # not a dict: pydantic reports the type error


def slot_strings(value: Slots | None) -> dict[str, str]:
    return {k: str(v) for k, v in (value or {}).items()}


class ReplyRequest(BaseModel):
    """One customer message, with optional context and placeholder values."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)

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
    knowledge_base: str | None = KNOWLEDGE_BASE_FIELD
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
AnswerSource = Literal["template", "knowledge_base"]


class CitationView(BaseModel):
    """A knowledge-base passage behind the answer; the first is the one quoted."""

    document_id: str
    chunk_id: str
    score: float = Field(description="Cosine similarity of the passage to the message.")
    metadata: dict[str, Any]


ANSWER_SOURCE_DESCRIPTION = (
    "`template`: a vetted reply (or handoff message); `knowledge_base`: sentences quoted "
    "from a knowledge-base passage (`citations`), while `intent` and `confidence` still "
    "report the intent model's best guess."
)


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
    answer_source: AnswerSource = Field(description=ANSWER_SOURCE_DESCRIPTION)
    citations: list[CitationView] = Field(
        description="The passages a knowledge-base answer comes from; empty otherwise."
    )
    conversation_id: str | None
    model: str
    version: int
