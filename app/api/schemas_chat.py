"""OpenAI chat-completions wire types, as far as a response-selection model can honour them.

Requests accept every OpenAI field (unknown ones are ignored, so existing clients work);
sampling knobs (`temperature`, `max_tokens`, ...) do not apply to vetted replies. Answers
carry textserve's view of the message in the extension field ``textserve``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.schemas_reply import (
    ANSWER_SOURCE_DESCRIPTION,
    KNOWLEDGE_BASE_FIELD,
    AnswerSource,
    CitationView,
    HandoffReason,
    IntentScore,
    SentimentView,
    Slots,
    check_slots,
)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: object) -> object:
        # Checked before the union, which would otherwise answer an image part with
        # "Input should be a valid string" at `messages.0.content.str`.
        if isinstance(value, list):
            for i, part in enumerate(value):
                if not isinstance(part, dict):
                    raise ValueError(f"only text content parts are supported; part {i} is not one")
                if part.get("type") != "text":
                    raise ValueError(
                        f"only text content parts are supported; part {i} has type "
                        f"{part.get('type')!r}"
                    )
        return value

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    include_usage: bool = False


class ChatExtension(BaseModel):
    """Request extension: ``{"textserve": {"slots": {...}, "timeout_ms": N}}`` (``extra_body``
    in the client)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    slots: Slots | None = None
    knowledge_base: str | None = KNOWLEDGE_BASE_FIELD
    timeout_ms: int | None = Field(None, ge=1, description="Deadline for this request.")

    @field_validator("slots", mode="before")
    @classmethod
    def _small_slots(cls, value: object) -> object:
        return check_slots(value)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=(), strict=True)

    model: str = Field(description="A reply model as `name` or `name@version`.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256, description="Accepted; logged nowhere.")
    n: int | None = Field(1, description="Only 1 is supported.")
    textserve: ChatExtension | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only n=1 is supported: a vetted reply has no alternative samples")
        return value


class ChatExtensionView(BaseModel):
    """Response extension ``textserve``: what the model made of the last user message."""

    intent: str
    confidence: float
    handoff: bool
    handoff_reason: HandoffReason | None
    missing_slots: list[str]
    alternatives: list[IntentScore]
    sentiment: SentimentView | None
    context_used: bool
    answer_source: AnswerSource = Field(description=ANSWER_SOURCE_DESCRIPTION)
    citations: list[CitationView]
    version: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    """The non-streaming answer (``object: chat.completion``)."""

    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str = Field(description="`name@version` of the model that answered.")
    choices: list[Choice]
    usage: Usage
    textserve: ChatExtensionView


class ChunkDelta(BaseModel):
    """What a chunk adds to the message: the role first, then pieces of the content."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer (``object: chat.completion.chunk``).

    Sent with only the fields set when it was built (``model_dump_json(exclude_unset=True)``,
    as ``chunk`` builds them): ``textserve`` on the first chunk, ``usage`` only when the
    request asked for it (``null`` on every chunk but the last, as OpenAI sends it).
    """

    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChunkChoice] = Field(description="Empty in the final usage-only chunk.")
    usage: Usage | None = None
    textserve: ChatExtensionView | None = None


def chunk(
    base: dict[str, Any],
    delta: ChunkDelta | None,
    finish_reason: Literal["stop"] | None = None,
    **extra: Any,
) -> str:
    """One chunk as JSON: ``base`` (id, created, model, system_fingerprint), a choice with
    ``delta`` (``None`` makes the usage-only chunk), and ``extra`` fields (usage, textserve)."""
    choices = (
        []
        if delta is None
        else [ChunkChoice(index=0, delta=delta, finish_reason=finish_reason, logprobs=None)]
    )
    body = ChatCompletionChunk(**base, object="chat.completion.chunk", choices=choices, **extra)
    return body.model_dump_json(exclude_unset=True)
