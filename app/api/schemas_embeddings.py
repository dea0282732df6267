"""Bodies of /v1/embeddings (OpenAI's shape), /v1/rerank (Cohere's and Jina's) and
/v1/recommend."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODEL_DESCRIPTION = "An embedding model as `name` or `name@version` (default `embedding`)."
TIMEOUT_DESCRIPTION = "Deadline for this request, in milliseconds."


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    input: str | list[str] = Field(
        description="One text or a list of texts (at most `TEXTSERVE_MAX_TEXTS_PER_REQUEST`, "
        "256 by default); each non-empty."
    )
    model: str = Field("embedding", description=MODEL_DESCRIPTION)
    encoding_format: Literal["float", "base64"] = Field(
        "float",
        description="`float`: lists of numbers. `base64`: each vector's little-endian float32 "
        "bytes, base64-encoded (what the official OpenAI SDKs ask for by default).",
    )
    dimensions: int | None = Field(
        None, ge=1, description="Accepted only when equal to the model's dimension (400 else)."
    )
    user: str | None = Field(None, description="The end user, for the caller's records.")
    timeout_ms: int | None = Field(None, ge=1, description=TIMEOUT_DESCRIPTION)

    @field_validator("input", mode="before")
    @classmethod
    def _texts_only(cls, value: object) -> object:
        # Checked before the union, so an error names `input` rather than a union member;
        # token arrays (lists of integers) are not taken.
        text_list = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not isinstance(value, str) and not text_list:
            raise ValueError("give a string or a list of strings")
        return value


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingsUsage


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    text: str


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("embedding", description=MODEL_DESCRIPTION)
    query: str
    documents: list[str | RerankDocument] = Field(
        description="Texts, or `{id?, text}` objects (at most "
        "`TEXTSERVE_MAX_TEXTS_PER_REQUEST`, 256 by default)."
    )
    top_n: int | None = Field(None, ge=1, description="Answer only the n best documents.")
    return_documents: bool = Field(False, description="Echo each document in its result.")
    timeout_ms: int | None = Field(None, ge=1, description=TIMEOUT_DESCRIPTION)


class RerankResult(BaseModel):
    index: int = Field(description="The document's position in the request.")
    relevance_score: float = Field(description="Cosine of the query's and document's vectors.")
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    model: str
    results: list[RerankResult]
    usage: EmbeddingsUsage


class RecommendUser(BaseModel):
    """Exactly one of ``history`` (item texts, oldest first) or ``text``."""

    model_config = ConfigDict(extra="forbid")

    history: list[str] | None = Field(
        None, description="Texts of items the user chose, oldest first."
    )
    text: str | None = Field(None, description="A description of the user's interests.")

    @model_validator(mode="after")
    def _one_of(self) -> RecommendUser:
        if (self.history is None) == (self.text is None):
            raise ValueError("give exactly one of 'history' or 'text'")
        return self


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    text: str


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("embedding", description=MODEL_DESCRIPTION)
    user: RecommendUser
    candidates: list[Candidate] = Field(
        description="Items to rank (at most `TEXTSERVE_MAX_TEXTS_PER_REQUEST`, 256 by default)."
    )
    top_n: int | None = Field(None, ge=1, description="Answer only the n best candidates.")
    exclude: list[str] = Field(
        default_factory=list, description="Candidate ids to leave out (items already seen)."
    )
    timeout_ms: int | None = Field(None, ge=1, description=TIMEOUT_DESCRIPTION)


class Recommendation(BaseModel):
    id: str
    score: float = Field(description="Cosine of the candidate's vector with the user's.")


class RecommendResponse(BaseModel):
    model: str
    results: list[Recommendation]
