"""The GPU file: the exported encoder fused by ORT's optimizer, in fp16, agreeing with fp32."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import transformers

from app.runtime.backend import cpu_session
from app.store.manifest import FP16_FILE, MODEL_FILE
from app.training.export import TOKENIZER_FILE, eager_attention
from app.training.optimize import encoder_shape, fp16_variant, fused_ops
from tests.support.tiny_model import WORDS, build_tokenizer

HEADS, HIDDEN = 2, 32
TEXTS = [
    "great film",
    "awful delivery never arrived",
    "my order was late and the parcel broken",
    " ".join(WORDS[:40]),
]


def _tiny_bert(folder: Path) -> torch.nn.Module:
    """A two-layer BERT classifier, exported the way ``trace_to_onnx`` does, beside its
    tokenizer; loaded with transformers' default attention, as training loads it."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(WORDS) + 8,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    config.num_labels = 3
    model: torch.nn.Module = transformers.BertForSequenceClassification(config)
    model.eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.model(input_ids=ids, attention_mask=mask).logits
            return out

    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    names = ["input_ids", "attention_mask"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad(), eager_attention(model):
        warnings.simplefilter("ignore")  # the tracer's notes on a model it handles fine
        torch.onnx.export(
            Logits().eval(),
            (ids, (ids > 0).long()),
            str(folder / MODEL_FILE),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    build_tokenizer(folder / TOKENIZER_FILE)
    return model


def test_fp16_file_is_fused_and_agrees_with_fp32(tmp_path: Path) -> None:
    model = _tiny_bert(tmp_path)
    assert encoder_shape(model) == (HEADS, HIDDEN)

    variant = fp16_variant(
        tmp_path, model, TEXTS, max_length=48, pad_id=0, outputs=["logits"], argmax_output="logits"
    )

    assert variant is not None and variant.file == FP16_FILE
    fused = fused_ops(tmp_path / FP16_FILE)
    assert fused.get("Attention", 0) + fused.get("MultiHeadAttention", 0) == 2  # one per layer
    assert fused.get("SkipLayerNormalization", 0) >= 2
    extra = variant.model_extra or {}
    assert extra["fused"] == fused
    parity = extra["parity"]
    assert parity["argmax_agreement"] == 1.0 and parity["rows"] == len(TEXTS)
    assert 0 < parity["max_abs_diff"] < 1e-2  # really fp16, and close
    # Serving feeds and reads it like the fp32 file; the weights really are half precision.
    loaded = cpu_session(tmp_path / FP16_FILE)
    assert [i.type for i in loaded.session.get_inputs()] == ["tensor(int64)"] * 2
    assert loaded.session.get_outputs()[0].type == "tensor(float)"
    graph = onnx.load(str(tmp_path / FP16_FILE)).graph
    kinds = {np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)) for t in graph.initializer}
    assert np.dtype(np.float16) in kinds


def test_unconvertible_model_publishes_without_fp16(tmp_path: Path) -> None:
    """A broken file is no reason to lose the version: no fp16 variant, no stray file."""
    (tmp_path / MODEL_FILE).write_bytes(b"not onnx")
    build_tokenizer(tmp_path / TOKENIZER_FILE)
    variant = fp16_variant(
        tmp_path,
        torch.nn.Linear(2, 2),
        TEXTS,
        max_length=48,
        pad_id=0,
        outputs=["logits"],
        argmax_output="logits",
    )
    assert variant is None
    assert not (tmp_path / FP16_FILE).exists()
