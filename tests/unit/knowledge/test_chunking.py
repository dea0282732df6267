"""Chunking: sizes, overlap, ids, long sentences, whitespace and unicode."""

from __future__ import annotations

import itertools
import unicodedata

import pytest

from app.knowledge.chunking import ChunkingConfig, chunk_text, split_sentences


def sentences(n: int) -> str:
    return " ".join(f"Fact number {i} is stated here." for i in range(n))


def test_short_text_is_one_chunk_with_a_stable_id() -> None:
    [chunk] = chunk_text("faq-1", "  Opening hours:\tnine to five.\n Closed on Sunday.  ")
    assert (chunk.chunk_id, chunk.index) == ("faq-1#0", 0)
    assert chunk.text == "Opening hours: nine to five. Closed on Sunday."


def test_chunks_respect_the_size_and_keep_sentences_whole() -> None:
    config = ChunkingConfig(max_chars=200, overlap_chars=60)
    text = sentences(40)
    chunks = chunk_text("d", text, config)
    assert [c.chunk_id for c in chunks] == [f"d#{n}" for n in range(len(chunks))]
    whole = set(split_sentences(text))
    for chunk in chunks:
        assert len(chunk.text) <= 200
        assert set(split_sentences(chunk.text)) <= whole  # no sentence cut in two
    covered = set().union(*(split_sentences(c.text) for c in chunks))
    assert covered == whole  # nothing lost


def test_each_chunk_starts_with_the_end_of_the_previous_one() -> None:
    config = ChunkingConfig(max_chars=200, overlap_chars=70)
    chunks = chunk_text("d", sentences(30), config)
    assert len(chunks) > 3
    for before, after in itertools.pairwise(chunks):
        previous = split_sentences(before.text)
        carried = [s for s in split_sentences(after.text) if s in previous]
        assert carried
        assert after.text.startswith(" ".join(carried))
        assert before.text.endswith(" ".join(carried))
        assert len(" ".join(carried)) <= 70


def test_no_overlap_when_asked_for_none() -> None:
    chunks = chunk_text("d", sentences(30), ChunkingConfig(max_chars=200, overlap_chars=0))
    parts = [s for c in chunks for s in split_sentences(c.text)]
    assert parts == split_sentences(sentences(30))


def test_a_sentence_longer_than_a_chunk_is_cut_at_spaces() -> None:
    long = " ".join(["word"] * 100) + "."  # 500 characters, one sentence
    chunks = chunk_text("d", long, ChunkingConfig(max_chars=120, overlap_chars=0))
    assert all(len(c.text) <= 120 for c in chunks)
    assert all(not c.text.startswith(" ") and "wor " not in c.text for c in chunks)
    assert " ".join(c.text for c in chunks) == long


def test_text_without_spaces_is_cut_hard() -> None:
    cjk = "这是一个没有空格的很长的句子" * 20  # 280 characters, no space, no full stop
    chunks = chunk_text("d", cjk, ChunkingConfig(max_chars=100, overlap_chars=0))
    assert "".join(c.text for c in chunks) == cjk
    assert [len(c.text) for c in chunks] == [100, 100, 80]


def test_unicode_forms_give_the_same_chunks() -> None:
    composed = "Café crème. Über alles! 東京は晴れ。明日は雨\uff1f"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert chunk_text("d", composed) == chunk_text("d", decomposed)
    assert split_sentences(composed) == [
        "Café crème.",
        "Über alles!",
        "東京は晴れ。",
        "明日は雨\uff1f",
    ]


def test_quotes_stay_with_their_sentence_and_paragraphs_end_sentences() -> None:
    text = 'He said "stop." Then he left\n\nNew paragraph without a full stop'
    assert split_sentences(text) == [
        'He said "stop."',
        "Then he left",
        "New paragraph without a full stop",
    ]


def test_blank_text_gives_no_chunk_and_chunking_is_deterministic() -> None:
    assert chunk_text("d", " \n\t ") == []
    assert chunk_text("d", sentences(50)) == chunk_text("d", sentences(50))


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        ChunkingConfig(max_chars=4)
    with pytest.raises(ValueError, match="overlap_chars"):
        ChunkingConfig(max_chars=100, overlap_chars=90)
