"""A real, tiny ONNX embedding model built in milliseconds, without torch.

Graph: token embeddings -> attention-masked mean pooling -> L2 normalisation, the same
output (``embedding``, batch x dimension) the exported sentence encoders give. Words of one
topic share a direction, so rankings are meaningful ("parcel" is near "delivery"), and every
vector can be recomputed exactly in numpy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.store.manifest import MODEL_FILE, Manifest
from app.store.versions import ModelStore
from tests.support.tiny_model import build_tokenizer

DIMENSION = 16
TOPICS = {
    "delivery": "delivery parcel arrived late week day",
    "billing": "bill invoice charge card refund price",
    "account": "account password login app",
}


def embedding_table(tok_vocab: dict[str, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    emb = rng.normal(0.0, 0.05, size=(len(tok_vocab), DIMENSION)).astype(np.float32)
    for axis, words in enumerate(TOPICS.values()):
        for word in words.split():
            emb[tok_vocab[word], axis] += 1.0
    return emb


def build_embedding_graph(emb: np.ndarray) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["safe_count"]),
        helper.make_node("Div", ["summed", "safe_count"], ["pooled"]),
        helper.make_node("ReduceL2", ["pooled"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["safe_norm"]),
        helper.make_node("Div", ["pooled", "safe_norm"], ["embedding"]),
    ]
    inits = [
        numpy_helper.from_array(emb, "emb"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([1e-12], dtype=np.float32), "eps"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_embedding",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIMENSION])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference_vector(emb: np.ndarray, ids: list[int]) -> np.ndarray:
    """What the graph computes for one unpadded row, in numpy."""
    pooled = emb[np.asarray(ids)].mean(axis=0)
    out: np.ndarray = pooled / np.linalg.norm(pooled)
    return out


def publish_tiny_embedding(
    store: ModelStore, name: str = "embedding", *, max_seq_length: int = 16, seed: int = 0
) -> tuple[Manifest, np.ndarray]:
    """Publish and activate the tiny embedding model; returns its manifest and table."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        tok = build_tokenizer(staging / "tokenizer.json")
        emb = embedding_table(tok.get_vocab(), seed)
        onnx.save(build_embedding_graph(emb), str(staging / MODEL_FILE))
        manifest = store.publish(
            staging,
            Manifest(
                name=name,
                task="embedding",
                labels=[],
                base_model="tiny-test-encoder",
                max_seq_length=max_seq_length,
                dimension=DIMENSION,
                pooling="mean",
                recipe={"built_by": "tests.support.tiny_embedding", "seed": seed},
            ),
        )
    store.set_active(name, manifest.version)
    return manifest, emb
