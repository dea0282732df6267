"""Errors of knowledge bases and vector stores (``app.api.errors`` maps them to HTTP)."""

from __future__ import annotations

from app.errors import Conflict, PayloadTooLarge, TextserveError


class KnowledgeBaseNotFound(TextserveError):
    """No knowledge base with that id visible to the caller (404: another key's is not shown)."""

    code = "knowledge_base_not_found"
    param = "knowledge_base"


class DocumentNotFound(TextserveError):
    """No document with that id in the knowledge base (404)."""

    code = "document_not_found"
    param = "document_id"


class CollectionNotFound(TextserveError):
    """No vector collection of that name: a knowledge base whose vectors are gone (404)."""

    code = "collection_not_found"


class InvalidVectors(TextserveError):
    """Vectors that do not fit the collection: wrong dimension, not finite, count mismatch.

    Raised before anything is written, so a failed add leaves the collection as it was (422).
    """

    code = "invalid_vectors"


class InvalidDocument(TextserveError):
    """A document without an id or text, or with metadata that is not a JSON object (422)."""

    code = "invalid_document"

    def __init__(self, message: str, param: str = "documents") -> None:
        super().__init__(message)
        self.param = param


class DocumentTooLarge(PayloadTooLarge):
    """A document or an upload above the synchronous ingestion limits (413)."""

    code = "document_too_large"

    def __init__(self, message: str, param: str = "documents") -> None:
        super().__init__(message)
        self.param = param


class ReindexRequired(Conflict):
    """The knowledge base's vectors come from an embedding version that can no longer embed
    queries; re-index it with the active version (409)."""

    code = "reindex_required"
