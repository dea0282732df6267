"""Embedding export: pooling and normalisation inside the ONNX graph, checked against torch
on a tiny random BERT (the packaged model: tests/integration/test_embeddings_packaged.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.store.manifest import MODEL_FILE
from app.store.versions import ModelStore
from app.training.embedding import build_embedding
from app.training.embedding.export import onnx_embeddings
from tests.support.tiny_model import WORDS


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with a word-piece tokenizer, saved as a folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(WORDS)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def test_export_puts_pooling_in_the_graph_and_publishes_an_embedding_model(
    tiny_bert: Path, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "store")

    manifest = build_embedding(store, name="tinyembed", base_model=str(tiny_bert), max_length=32)

    assert (manifest.task, manifest.dimension, manifest.pooling) == ("embedding", 32, "mean")
    assert manifest.labels == []
    assert manifest.parity["min_cosine"] >= 0.999
    assert store.active_version("tinyembed") == 1
    folder = store.root / "tinyembed" / "1"
    texts = ["the parcel arrived late", "refund", "how do i login to my account please"]
    vectors = onnx_embeddings(folder / MODEL_FILE, texts, max_length=32, pad_id=0)
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batched with padding or alone, a text gets the same vector: the mask reaches the pooling.
    alone = onnx_embeddings(folder / MODEL_FILE, texts[1:2], max_length=32, pad_id=0)
    np.testing.assert_allclose(alone[0], vectors[1], atol=1e-5)
