"""Extractive answers: the best sentence(s) of the best passage, quoted, never written.

For /reply's knowledge-base answers: the text returned is always a contiguous span of one
retrieved passage (its sentences as the chunker split them), so an answer cannot state what
the documents do not. Which sentence wins is decided by the query's embedding when an
embedder is given (cosine similarity), otherwise by word overlap weighted by rarity among the
passages; the span then grows to the next sentence while that one also matches the query
nearly as well, up to ``max_sentences``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.knowledge.chunking import split_sentences
from app.knowledge.vectors import SearchHit

_WORD = re.compile(r"\w+")
EmbedFn = Callable[[Sequence[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class ExtractiveAnswer:
    """The quoted ``text``, the passage it comes from, and how well each part matched."""

    text: str
    passage: SearchHit
    sentence_score: float
    sentences: tuple[str, ...]


def extract_answer(
    query: str,
    passages: Sequence[SearchHit],
    embed: EmbedFn | None = None,
    max_sentences: int = 2,
    keep_ratio: float = 0.8,
) -> ExtractiveAnswer | None:
    """The best span of the best passage (``passages[0]``: search results come best first);
    None when there is no passage or no sentence in it."""
    if not passages:
        return None
    best = passages[0]
    sentences = split_sentences(best.text)
    if not sentences:
        return None
    scores = _scores(query, sentences, passages, embed)
    top = int(np.argmax(scores))
    end = top + 1
    while (
        end < len(sentences)
        and end - top < max_sentences
        and scores[end] > 0
        and scores[end] >= keep_ratio * scores[top]
    ):
        end += 1
    chosen = tuple(sentences[top:end])
    return ExtractiveAnswer(
        text=" ".join(chosen), passage=best, sentence_score=float(scores[top]), sentences=chosen
    )


def _scores(
    query: str, sentences: list[str], passages: Sequence[SearchHit], embed: EmbedFn | None
) -> npt.NDArray[np.float64]:
    if embed is not None:
        vectors = np.asarray(embed([query, *sentences]), dtype=np.float64)
        cosine: npt.NDArray[np.float64] = vectors[1:] @ vectors[0]
        return cosine
    # Rarity among the retrieved passages: a word every passage has says little.
    documents = [set(_words(p.text)) for p in passages]
    weight = {
        w: math.log(1 + len(documents) / (1 + sum(w in d for d in documents)))
        for w in set(_words(query))
    }
    scores = []
    for sentence in sentences:
        counts = Counter(_words(sentence))
        hit = sum(weight[w] for w in weight if counts[w])
        # Divided by length's square root: a short sentence with the words beats a long one.
        scores.append(hit / math.sqrt(max(1, sum(counts.values()))))
    return np.asarray(scores, dtype=np.float64)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())
