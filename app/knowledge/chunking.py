"""Sentence-aware chunking with overlap.

Sizes are in characters (after whitespace is collapsed), not tokens: a character budget is
known before any tokenizer is loaded and is stable across embedding model versions, so a
knowledge base re-indexed with a new model keeps the same chunk ids. The defaults (800
characters, 160 of overlap) stay under the 256 word pieces all-MiniLM-L6-v2 reads for English
text (about 4.5 characters a word piece), so no chunk is silently truncated by the encoder.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# A sentence ends at . ! ? (or their CJK forms, or an ellipsis), optionally followed by
# closing quotes/brackets, then whitespace. CJK full stops need no space after them.
_SENTENCE_END = re.compile(
    r"([.!?\u2026]+[\"'\u201d\u2019)\]]*)\s+"  # . ! ? … then closing quotes, then a space
    r"|([\u3002\uff01\uff1f]+[\u300d\u300f\u201d\u2019)]*)\s*"  # CJK full stops need no space
)
_PARAGRAPH = re.compile(r"\n\s*\n")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are cut: chunks of at most ``max_chars``, each starting with up to
    ``overlap_chars`` of whole sentences from the end of the chunk before it."""

    max_chars: int = 800
    overlap_chars: int = 160

    def __post_init__(self) -> None:
        if self.max_chars < 16:
            raise ValueError("max_chars must be at least 16")
        if not 0 <= self.overlap_chars < self.max_chars // 2 + 1:
            raise ValueError("overlap_chars must be between 0 and half of max_chars")


@dataclass(frozen=True)
class Chunk:
    """One piece of a document: ``chunk_id`` is ``<document_id>#<n>``, n counting from 0."""

    chunk_id: str
    index: int
    text: str


def normalize(text: str) -> str:
    """NFC-normalize and collapse runs of whitespace inside paragraphs; keep paragraph breaks.

    NFC makes the same visible text (composed or decomposed accents) produce the same chunks,
    hence the same ids and vectors.
    """
    text = unicodedata.normalize("NFC", text)
    paragraphs = (_SPACE.sub(" ", p).strip() for p in _PARAGRAPH.split(text))
    return "\n\n".join(p for p in paragraphs if p)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (normalized first); a paragraph break always ends a sentence."""
    sentences: list[str] = []
    for paragraph in normalize(text).split("\n\n"):
        start = 0
        for end in _SENTENCE_END.finditer(paragraph):
            # The end mark and closing quotes stay with their sentence; the space goes.
            stop = end.end(1) if end.group(1) is not None else end.end(2)
            sentences.append(paragraph[start:stop])
            start = end.end()
        sentences.append(paragraph[start:])
    return [s.strip() for s in sentences if s.strip()]


def _split_long(sentence: str, limit: int) -> list[str]:
    """Cut a sentence longer than ``limit`` at spaces; hard cuts only for a run without one
    (a URL, CJK text), so words stay whole wherever the text has word boundaries."""
    pieces: list[str] = []
    rest = sentence
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _units(text: str, limit: int) -> list[str]:
    units: list[str] = []
    for sentence in split_sentences(text):
        units.extend(_split_long(sentence, limit) if len(sentence) > limit else [sentence])
    return units


def chunk_text(document_id: str, text: str, config: ChunkingConfig | None = None) -> list[Chunk]:
    """Cut ``text`` into chunks of whole sentences, each at most ``config.max_chars`` long.

    Each chunk after the first starts with the last sentences of the chunk before it, as many
    as fit in ``overlap_chars``, so a fact stated across a sentence boundary is found whole in
    one chunk. Deterministic: the same text and config always give the same chunks and ids.
    A text with no visible characters gives no chunk.
    """
    config = config or ChunkingConfig()
    units = _units(text, config.max_chars)
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0  # characters of " ".join(current)
    fresh = 0  # units in `current` that no earlier chunk holds
    for unit in units:
        added = len(unit) + (1 if current else 0)
        if current and size + added > config.max_chars:
            chunks.append(current)
            current = _overlap(current, config.overlap_chars, config.max_chars - len(unit) - 1)
            size = len(" ".join(current))
            fresh = 0
            added = len(unit) + (1 if current else 0)
        current.append(unit)
        size += added
        fresh += 1
    if current and fresh:
        chunks.append(current)
    return [
        Chunk(chunk_id=f"{document_id}#{n}", index=n, text=" ".join(parts))
        for n, parts in enumerate(chunks)
    ]


def _overlap(previous: list[str], budget: int, room: int) -> list[str]:
    """The trailing sentences of ``previous`` that fit in ``budget`` (and in ``room``, what the
    next unit leaves of the chunk)."""
    limit = min(budget, room)
    tail: list[str] = []
    size = 0
    for unit in reversed(previous):
        added = len(unit) + (1 if tail else 0)
        if size + added > limit:
            break
        tail.insert(0, unit)
        size += added
    # Never carry the whole previous chunk: the next one would repeat it and add little.
    return tail if len(tail) < len(previous) else tail[1:]
