"""Extractive answers quote the best passage; they never write text of their own."""

from __future__ import annotations

from app.knowledge.answer import extract_answer
from app.knowledge.vectors import SearchHit
from tests.support.hashing_embedder import HashingEmbedder


def hit(doc: str, text: str, score: float) -> SearchHit:
    return SearchHit(doc, f"{doc}#0", text, score, {})


PASSAGES = [
    hit(
        "warranty",
        "Thank you for shopping with us. Every product has a two year warranty. "
        "It covers manufacturing defects and parts. Accidental damage is not covered.",
        0.8,
    ),
    hit("hours", "The shop opens at nine. The shop closes at six.", 0.4),
]


def test_the_answer_is_the_best_sentence_of_the_best_passage() -> None:
    for embed in (None, HashingEmbedder().embed):
        answer = extract_answer("how long is the warranty on a product", PASSAGES, embed=embed)
        assert answer is not None
        assert answer.passage is PASSAGES[0]
        assert answer.sentences[0] == "Every product has a two year warranty."
        assert answer.text in PASSAGES[0].text  # quoted, never composed
        assert "Thank you" not in answer.text


def test_the_span_grows_only_to_a_next_sentence_that_also_matches() -> None:
    passage = hit("p", "Returns are free. Returns take five days to refund. Call us.", 0.9)
    answer = extract_answer("returns refund days", [passage], max_sentences=3, keep_ratio=0.3)
    assert answer is not None
    assert answer.text == "Returns take five days to refund."
    both = extract_answer("returns", [passage], max_sentences=2, keep_ratio=0.5)
    assert both is not None
    assert both.text == "Returns are free. Returns take five days to refund."


def test_no_passage_no_answer() -> None:
    assert extract_answer("anything", []) is None
    assert extract_answer("anything", [hit("p", "   ", 0.1)]) is None
