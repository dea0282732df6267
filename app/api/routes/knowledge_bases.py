"""/v1/knowledge_bases: documents chunked, embedded and searched (docs/knowledge-bases.md).

A knowledge base belongs to the API key that made it; another key's answers 404, as if it
did not exist, and admin keys see all. The service's calls block (SQL, embedding, vector
writes), so each runs on a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from app.api.deps import ServicesDep, caller_of
from app.api.inference import ERRORS
from app.api.schemas_knowledge import (
    Deleted,
    DocumentsAdd,
    DocumentsAdded,
    IndexStatusView,
    KnowledgeBaseCreate,
    KnowledgeBaseList,
    KnowledgeBaseView,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from app.knowledge.ingest import DocumentIn
from app.knowledge.records import KnowledgeBase
from app.knowledge.service import IndexStatus

router = APIRouter(prefix="/v1/knowledge_bases", tags=["knowledge bases"])
WRITE_ERRORS = {**ERRORS, 409: ERRORS[404]}


def view(kb: KnowledgeBase) -> KnowledgeBaseView:
    return KnowledgeBaseView(
        id=kb.id,
        name=kb.name,
        model=kb.model,
        model_version=kb.model_version,
        dimension=kb.dimension,
        documents=kb.documents,
        chunks=kb.chunks,
        created_at=int(kb.created_at),
        updated_at=int(kb.updated_at),
    )


@router.post("", response_model=KnowledgeBaseView, responses=ERRORS)
async def create(
    body: KnowledgeBaseCreate, services: ServicesDep, request: Request
) -> KnowledgeBaseView:
    """Create an empty knowledge base pinned to the embedding model's active version."""
    kb = await asyncio.to_thread(
        services.knowledge.create, body.name, caller_of(request), body.model
    )
    return view(kb)


@router.get("", response_model=KnowledgeBaseList)
async def list_all(services: ServicesDep, request: Request) -> KnowledgeBaseList:
    """The caller's knowledge bases (every one for an admin key), oldest first."""
    found = await asyncio.to_thread(services.knowledge.list_knowledge_bases, caller_of(request))
    return KnowledgeBaseList(data=[view(kb) for kb in found])


@router.get("/{knowledge_base_id}", response_model=KnowledgeBaseView, responses=ERRORS)
async def get(knowledge_base_id: str, services: ServicesDep, request: Request) -> KnowledgeBaseView:
    kb = await asyncio.to_thread(services.knowledge.get, knowledge_base_id, caller_of(request))
    return view(kb)


@router.delete("/{knowledge_base_id}", response_model=Deleted, responses=ERRORS)
async def delete(knowledge_base_id: str, services: ServicesDep, request: Request) -> Deleted:
    """Delete the knowledge base, its documents and every vector."""
    await asyncio.to_thread(services.knowledge.delete, knowledge_base_id, caller_of(request))
    return Deleted(id=knowledge_base_id, object="knowledge_base")


def index_view(kb_id: str, status: IndexStatus) -> IndexStatusView:
    return IndexStatusView(
        knowledge_base=kb_id,
        model=status.model,
        pinned_version=status.pinned_version,
        active_version=status.active_version,
        reindex_needed=status.reindex_needed,
    )


@router.get("/{knowledge_base_id}/index", response_model=IndexStatusView, responses=ERRORS)
async def index_status(
    knowledge_base_id: str, services: ServicesDep, request: Request
) -> IndexStatusView:
    """The embedding version the vectors come from, the active one, and whether they differ."""
    status = await asyncio.to_thread(
        services.knowledge.index_status, knowledge_base_id, caller_of(request)
    )
    return index_view(knowledge_base_id, status)


@router.post("/{knowledge_base_id}/reindex", response_model=KnowledgeBaseView, responses=ERRORS)
async def reindex(
    knowledge_base_id: str, services: ServicesDep, request: Request
) -> KnowledgeBaseView:
    """Re-chunk and re-embed every document with the active embedding version, then swap;
    searches use the old vectors until the swap. Synchronous: it takes as long as embedding
    every document."""
    kb = await asyncio.to_thread(services.knowledge.reindex, knowledge_base_id, caller_of(request))
    return view(kb)


@router.post(
    "/{knowledge_base_id}/documents", response_model=DocumentsAdded, responses=WRITE_ERRORS
)
async def add_documents(
    knowledge_base_id: str, body: DocumentsAdd, services: ServicesDep, request: Request
) -> DocumentsAdded:
    """Chunk, embed and store documents, replacing those whose ids exist: all or none."""
    documents = [DocumentIn(d.id, d.text, d.metadata or {}) for d in body.documents]
    added = await asyncio.to_thread(
        services.knowledge.add_documents, knowledge_base_id, documents, caller_of(request)
    )
    return DocumentsAdded(
        knowledge_base=knowledge_base_id, documents=added.documents, chunks=added.chunks
    )


@router.delete(
    "/{knowledge_base_id}/documents/{document_id}", response_model=Deleted, responses=ERRORS
)
async def delete_document(
    knowledge_base_id: str, document_id: str, services: ServicesDep, request: Request
) -> Deleted:
    await asyncio.to_thread(
        services.knowledge.delete_document, knowledge_base_id, document_id, caller_of(request)
    )
    return Deleted(id=document_id, object="knowledge_base.document")


@router.post("/{knowledge_base_id}/search", response_model=SearchResponse, responses=WRITE_ERRORS)
async def search(
    knowledge_base_id: str, body: SearchRequest, services: ServicesDep, request: Request
) -> SearchResponse:
    """The `top_k` passages closest to `query`, best first (cosine similarity)."""
    hits = await asyncio.to_thread(
        services.knowledge.search,
        knowledge_base_id,
        body.query,
        caller_of(request),
        body.top_k,
        body.filter,
    )
    return SearchResponse(
        results=[
            SearchResult(
                document_id=h.document_id,
                chunk_id=h.chunk_id,
                text=h.text,
                score=h.score,
                metadata=dict(h.metadata),
            )
            for h in hits
        ]
    )
