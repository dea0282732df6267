"""/reply's answers from a knowledge base: when a passage answers instead of the intents.

Searched only when the reply would be a template or a low-confidence handoff (the responder
decides); the best passage answers when its cosine similarity reaches ``min_score`` and the
intent model is unsure or matches less well than the passage (docs/knowledge-bases.md#reply).
The answer is quoted from the passage (``app.knowledge.answer``), never written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from app.knowledge.errors import KnowledgeBaseNotFound
from app.knowledge.service import Caller, KnowledgeBaseService
from app.knowledge.vectors import SearchHit

AnswerSource = Literal["template", "knowledge_base"]
# Passages an answer reads: the best is quoted, the others may be cited.
PASSAGES = 3


@dataclass(frozen=True)
class Citation:
    """A knowledge-base passage behind an answer (the first is the one quoted)."""

    document_id: str
    chunk_id: str
    score: float
    metadata: Mapping[str, object]


class KnowledgeAnswers:
    """The knowledge-base side of the responder. Service calls block (SQL, embedding,
    search), so they run on worker threads."""

    def __init__(self, service: KnowledgeBaseService | None, min_score: float) -> None:
        self._service = service
        self.min_score = min_score

    async def check(self, kb_id: str, caller: Caller) -> None:
        """``KnowledgeBaseNotFound`` (404) unless ``caller`` may read ``kb_id``."""
        await asyncio.to_thread(self._require().get, kb_id, caller)

    async def answer(
        self, kb_id: str, message: str, caller: Caller, *, confident: bool, confidence: float
    ) -> tuple[str, tuple[Citation, ...]] | None:
        """The quoted answer and its citations, or None when the best passage is below
        ``min_score`` or, for a ``confident`` intent, scores no higher than its
        ``confidence`` (a cosine against a probability: a confident intent keeps its
        vetted template unless a passage matches very closely)."""
        hits, answer = await asyncio.to_thread(
            self._require().answer, kb_id, message, caller, PASSAGES
        )
        if answer is None or not hits:
            return None
        best = hits[0].score
        if best < self.min_score or (confident and best <= confidence):
            return None
        cited = [hits[0], *(h for h in hits[1:] if h.score >= self.min_score)]
        return answer.text, tuple(_citation(h) for h in cited)

    def _require(self) -> KnowledgeBaseService:
        if self._service is None:
            raise KnowledgeBaseNotFound("this service has no knowledge bases")
        return self._service


def _citation(hit: SearchHit) -> Citation:
    return Citation(hit.document_id, hit.chunk_id, hit.score, dict(hit.metadata))
