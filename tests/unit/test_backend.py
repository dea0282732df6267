"""The ONNX Runtime backend: provider options, padding, the IO-binding run path, scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.runtime.backend import (
    SessionOptions,
    cpu_session,
    create_session,
    cuda_options,
    pad_batch,
    run_bound,
    score_batch,
    score_texts,
)
from app.runtime.tokenizer import TextTokenizer
from app.store.versions import ModelStore
from tests.support.tiny_model import publish_tiny_classifier


def test_io_binding_gives_what_run_gives(tmp_path: Path) -> None:
    """The GPU's run path, exercised on the CPU: same feeds, same outputs, same order."""
    store = ModelStore(tmp_path / "store")
    manifest = publish_tiny_classifier(store)
    folder = store.version_dir(manifest.name, manifest.version)
    loaded = create_session(folder / "model.onnx", SessionOptions(("CPUExecutionProvider",)))
    rows = [np.asarray(r, dtype=np.int64) for r in ([5, 6, 7], [8], [9, 10, 11, 12, 13])]
    feeds = pad_batch(rows, 0, loaded.input_names)
    plain = loaded.session.run(loaded.output_names, feeds)
    bound = run_bound(loaded.session, feeds, loaded.output_names, "cpu")
    assert len(bound) == len(plain)
    for a, b in zip(plain, bound, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cuda_options_name_the_device_and_cap_memory_only_when_asked() -> None:
    options = cuda_options(SessionOptions(("CUDAExecutionProvider",), cuda_device_id=3))
    assert options["device_id"] == "3"
    assert options["arena_extend_strategy"] == "kSameAsRequested"
    assert "gpu_mem_limit" not in options
    capped = cuda_options(
        SessionOptions(("CUDAExecutionProvider",), cuda_mem_limit_bytes=8 * 1024**3)
    )
    assert capped["gpu_mem_limit"] == str(8 * 1024**3)


def test_a_missing_cuda_provider_falls_back_to_the_cpu_and_says_so(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    manifest = publish_tiny_classifier(store)
    folder = store.version_dir(manifest.name, manifest.version)
    loaded = create_session(
        folder / "model.onnx",
        SessionOptions(("CUDAExecutionProvider", "CPUExecutionProvider")),
    )
    assert loaded.provider == "CPUExecutionProvider"
    assert "CUDAExecutionProvider" in loaded.unavailable


def test_pad_batch_pads_right_masks_real_tokens_and_feeds_only_named_inputs() -> None:
    rows = [np.asarray(r, dtype=np.int64) for r in ([5, 6, 7], [8])]
    feeds = pad_batch(rows, 1, ["input_ids", "attention_mask", "token_type_ids"])
    assert feeds["input_ids"].tolist() == [[5, 6, 7], [8, 1, 1]]
    assert feeds["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert feeds["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert set(pad_batch(rows, 1, ["input_ids", "attention_mask"])) == {
        "input_ids",
        "attention_mask",
    }


def test_scoring_texts_in_length_batches_gives_each_text_its_own_rows(tmp_path: Path) -> None:
    """Offline scoring (parity, evaluation, comparison) sorts texts by length into batches:
    every text still gets back what it scores alone, in the order it was given."""
    store = ModelStore(tmp_path / "store")
    manifest = publish_tiny_classifier(store)
    folder = store.version_dir(manifest.name, manifest.version)
    loaded = cpu_session(folder / "model.onnx")
    tokenizer = TextTokenizer(folder / manifest.tokenizer_file, manifest.max_seq_length, 0)
    texts = ["a much longer text than the others, by far", "short", "a middling text", "x"]

    (batched,) = score_texts(loaded, tokenizer, texts, loaded.output_names[:1], batch_size=2)

    assert batched.shape[0] == len(texts)
    for i, text in enumerate(texts):
        ids = tokenizer.encode([text])[0].ids
        (alone,) = score_batch(loaded, [ids], 0, loaded.output_names[:1])
        np.testing.assert_allclose(batched[i], alone[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no texts"):
        score_texts(loaded, tokenizer, [])
