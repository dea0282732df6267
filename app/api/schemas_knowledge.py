"""Request and response bodies of ``/v1/knowledge_bases`` (docs/knowledge-bases.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.knowledge.vectors import MAX_TOP_K


class KnowledgeBaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)

    name: str = Field(min_length=1, max_length=255, description="A name for people to read.")
    model: str | None = Field(
        None,
        min_length=1,
        description="The embedding model (default `embedding`); the knowledge base is pinned "
        "to its active version.",
    )


class KnowledgeBaseView(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["knowledge_base"] = "knowledge_base"
    name: str
    model: str
    model_version: str = Field(description="The embedding model version its vectors come from.")
    dimension: int
    documents: int
    chunks: int
    created_at: int
    updated_at: int


class IndexStatusView(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    object: Literal["knowledge_base.index"] = "knowledge_base.index"
    knowledge_base: str
    model: str
    pinned_version: str = Field(description="The version that embedded the stored vectors.")
    active_version: str | None = Field(description="The version served now (null: none).")
    reindex_needed: bool = Field(
        description="The versions differ: POST .../reindex re-embeds every document with the "
        "active one; until then queries use the pinned one while it is served (409 after)."
    )


class KnowledgeBaseList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KnowledgeBaseView]


class DocumentBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(description="Unique in the knowledge base; re-adding an id replaces it.")
    text: str
    metadata: dict[str, Any] | None = Field(
        None, description="Plain JSON, returned with each hit and usable in a search filter."
    )


class DocumentsAdd(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # Counted and sized by the service, so that too many is a 413 naming the limit.
    documents: list[DocumentBody] = Field(
        description="At most 256 documents, 200,000 characters each and 1,000,000 in all "
        "per request (413 above), and within the request body limit."
    )


class DocumentsAdded(BaseModel):
    object: Literal["knowledge_base.documents"] = "knowledge_base.documents"
    knowledge_base: str
    documents: int = Field(description="Documents added or replaced.")
    chunks: int = Field(description="Chunks they were cut into and embedded.")


class Deleted(BaseModel):
    id: str
    object: str
    deleted: Literal[True] = True


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(description="The text to find passages for.")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="How many passages, best first.")
    filter: dict[str, str | int | float | bool] | None = Field(
        None, description='Equality on document metadata keys, e.g. {"lang": "fr"}.'
    )


class SearchResult(BaseModel):
    document_id: str
    chunk_id: str
    text: str
    score: float = Field(description="Cosine similarity to the query.")
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    object: Literal["list"] = "list"
    results: list[SearchResult]
