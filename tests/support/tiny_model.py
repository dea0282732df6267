"""A real, tiny ONNX text classifier built in milliseconds, without torch.

Graph: token embeddings -> attention-masked mean pooling -> linear layer -> logits. Chosen
keywords get embeddings that point at a label, so predictions are meaningful ("great" is
positive), and every output can be recomputed exactly in numpy to check batching.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from app.store.manifest import FP32, INT8, INT8_FILE, MODEL_FILE, Manifest, Variant
from app.store.versions import ModelStore

WORDS = (
    "the a an and or but is was it this that i you we they my your our order refund "
    "delivery parcel arrived late never great awful good bad love hate terrible excellent "
    "fine okay thanks please help account password login bill invoice charge card app "
    "crash error broken question size colour available price how what when where why "
    "very really not so too happy sad angry slow fast quick week day today yesterday"
).split()


def build_tokenizer(path: Path) -> Tokenizer:
    """A word-level tokenizer over a small vocabulary; unknown words map to [UNK]."""
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return tok


def tiny_weights(
    vocab_size: int, labels: list[str], keywords: dict[str, str], tok: Tokenizer, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dim = max(8, len(labels))
    emb = rng.normal(0.0, 0.05, size=(vocab_size, dim)).astype(np.float32)
    for word, label in keywords.items():
        token_id = tok.token_to_id(word)
        assert token_id is not None, word
        emb[token_id, labels.index(label)] += 4.0
    weight = np.zeros((dim, len(labels)), dtype=np.float32)
    weight[: len(labels), :] = np.eye(len(labels), dtype=np.float32) * 2.0
    weight += rng.normal(0.0, 0.01, size=weight.shape).astype(np.float32)
    bias = rng.normal(0.0, 0.01, size=(len(labels),)).astype(np.float32)
    return emb, weight, bias


def build_graph(emb: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["safe_count"]),
        helper.make_node("Div", ["summed", "safe_count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "weight"], ["proj"]),
        helper.make_node("Add", ["proj", "bias"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(emb, "emb"),
        numpy_helper.from_array(weight, "weight"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(bias)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference_logits(
    emb: np.ndarray, weight: np.ndarray, bias: np.ndarray, ids: list[int]
) -> np.ndarray:
    """What the graph computes for one unpadded row, in numpy."""
    pooled = emb[np.asarray(ids)].mean(axis=0)
    out: np.ndarray = pooled @ weight + bias
    return out


def publish_tiny_classifier(
    store: ModelStore,
    name: str = "sentiment",
    labels: tuple[str, ...] = ("negative", "neutral", "positive"),
    keywords: dict[str, str] | None = None,
    *,
    max_seq_length: int = 16,
    seed: int = 0,
    activate: bool = True,
    int8: bool = False,
    variant_accuracy: dict[str, float] | None = None,
) -> Manifest:
    """Build the tiny model, publish it as the next version of ``name``, maybe activate it.

    With ``int8`` the version also carries ``model.int8.onnx``, quantized by the training
    code's own function, and a ``variants`` entry per file; ``variant_accuracy`` is what
    those entries record as held-out accuracy (a variant left out records none). Without
    ``int8`` the manifest lists no variants at all, like versions published before them.
    """
    labels_l = list(labels)
    keywords = keywords if keywords is not None else default_keywords(labels_l)
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        tok = build_tokenizer(staging / "tokenizer.json")
        emb, weight, bias = tiny_weights(tok.get_vocab_size(), labels_l, keywords, tok, seed)
        onnx.save(build_graph(emb, weight, bias), str(staging / MODEL_FILE))
        variants: dict[str, Variant] = {}
        if int8:
            from app.training.export import quantize_dynamic_int8

            quantize_dynamic_int8(staging / MODEL_FILE, staging / INT8_FILE)
            accuracy = variant_accuracy or {}
            for variant, file in ((FP32, MODEL_FILE), (INT8, INT8_FILE)):
                scored = {"accuracy": accuracy[variant], "n": 200} if variant in accuracy else {}
                variants[variant] = Variant(file=file, eval=scored)
        manifest = store.publish(
            staging,
            Manifest(
                name=name,
                labels=labels_l,
                base_model="tiny-test-encoder",
                max_seq_length=max_seq_length,
                inputs=["input_ids", "attention_mask"],
                pad_token_id=0,
                metrics={"eval": {"accuracy": 0.5 + 0.01 * seed}},
                recipe={"built_by": "tests.support.tiny_model", "seed": seed},
                variants=variants,
            ),
        )
    if activate:
        store.set_active(name, manifest.version)
    return manifest


def default_keywords(labels: list[str]) -> dict[str, str]:
    if labels == ["negative", "neutral", "positive"]:
        return {
            "great": "positive", "love": "positive", "excellent": "positive",
            "good": "positive", "thanks": "positive", "awful": "negative",
            "terrible": "negative", "hate": "negative", "bad": "negative",
            "broken": "negative", "question": "neutral", "what": "neutral",
            "when": "neutral", "how": "neutral",
        }  # fmt: skip
    return {WORDS[10 + i]: label for i, label in enumerate(labels)}
