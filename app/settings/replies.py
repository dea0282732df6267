"""Replies (/reply, /v1/chat/completions) and the conversations they keep.

One section of ``app.config.Settings``, which composes the sections; fields read
``TEXTSERVE_<FIELD>`` there.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ReplySettings(BaseSettings):
    """Replies (/reply, /v1/chat/completions) and the conversations they keep."""

    # -- replies (/reply, /v1/chat/completions) ---------------------------------------------
    reply_model: str = Field("reply", description="Reply model used when a request names none.")
    reply_low_confidence: float = Field(
        0.5, ge=0, le=1, description="Hand off to a human below this intent confidence."
    )
    reply_negative_sentiment: float = Field(
        0.9, ge=0, le=1, description="Hand off when the sentiment model's P(negative) reaches this."
    )
    reply_sentiment_model: str = Field(
        "sentiment", description="Classifier with a `negative` label for handoffs ('' turns off)."
    )
    reply_context_confidence: float = Field(
        0.7, ge=0, le=1, description="Below this, read a message together with the last turn."
    )
    reply_alternatives: int = Field(3, ge=0, le=20, description="Runner-up intents returned.")
    reply_kb_min_score: float = Field(
        0.45,
        ge=-1,
        le=1,
        description="/reply with a `knowledge_base`: least cosine similarity of the best "
        "passage to answer from it (below: hand off as without one). Tune it for the "
        "embedding model; see docs/knowledge-bases.md.",
    )
    reply_slots: dict[str, str] = Field(
        default_factory=dict,
        description='Slot values for every reply, as JSON (e.g. {"website_url": "shop.example"}).',
    )
    conversation_max_turns: int = Field(20, ge=1, description="Turns kept per conversation.")
    conversation_ttl_s: float = Field(
        1800.0, gt=0, description="Turns older than this are forgotten."
    )
    conversation_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Memory for all kept conversations (default 64 MiB; the least recently "
        "used are dropped beyond).",
    )
    conversation_max_count: int = Field(100_000, ge=1, description="Most conversations kept.")
