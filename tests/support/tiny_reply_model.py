"""A real, tiny ONNX reply model (dual encoder + intent head + response bank), without torch.

Graph: token embeddings -> masked mean pooling -> L2 normalisation = ``embedding``;
``embedding`` x (scale * identity) = ``intent_logits``. Each keyword's embedding points
along its intent's axis and unknown words embed to zero, so "where is my order" is a
confident ``track_order`` and gibberish has no intent at all (the bank's out-of-scope
logit then makes its confidence low). The bank's template embeddings come from the same
computation in numpy, as training would embed them with the exported model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from app.store.bank import (
    EMBEDDING_OUTPUT,
    INTENT_LOGITS_OUTPUT,
    IntentInfo,
    ResponseBank,
    Template,
    humanize,
)
from app.store.manifest import MODEL_FILE, Manifest
from app.store.versions import ModelStore

SCALE = 10.0
OUT_OF_SCOPE_LOGIT = 5.0

# intent -> (category, handoff, keywords, templates)
INTENTS: dict[str, tuple[str, bool, tuple[str, ...], tuple[str, ...]]] = {
    "track_order": (
        "orders",
        False,
        ("where", "track", "order", "parcel", "package"),
        (
            "Your order {{order_number}} is on its way.",
            "You can follow every order on {{website_url}}.",
        ),
    ),
    "return_item": (
        "returns",
        False,
        ("return", "refund", "send", "back"),
        ("You can return any item within 30 days of delivery.",),
    ),
    "delivery_time": (
        "delivery",
        False,
        ("long", "arrive", "delivery", "days"),
        ("Delivery usually takes 3 to 5 business days.",),
    ),
    "complaint": (
        "complaints",
        False,
        ("awful", "terrible", "complain", "unacceptable"),
        ("I'm sorry to hear that. Your complaint is now with our care team.",),
    ),
    "human_agent": (
        "human",
        True,
        ("human", "agent", "person", "someone"),
        (
            "Of course, I'm transferring you to a human agent now.",
            "A human agent will join shortly; we are available {{support_hours}}.",
        ),
    ),
    "greeting": (
        "smalltalk",
        False,
        ("hi", "hello", "hey", "welcome"),
        ("Hello! How can I help you today?", "Hi {{customer_name}}, welcome back!"),
    ),
}
FILLER = (
    *("i", "want", "to", "my", "is", "the", "a", "an", "and", "how", "will", "that", "take"),
    *("it", "please", "can", "you", "with", "of", "what", "about", "on", "your", "we", "are"),
    *("all", "now", "for"),
)


def build_tokenizer(path: Path) -> Tokenizer:
    vocab = {"[PAD]": 0, "[UNK]": 1}
    words = [w for _, _, keys, temps in INTENTS.values() for w in keys]
    for word in [*words, *FILLER]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return tok


def embeddings(tok: Tokenizer, seed: int = 0) -> np.ndarray:
    names = list(INTENTS)
    rng = np.random.default_rng(seed)
    emb = rng.normal(0.0, 0.02, size=(tok.get_vocab_size(), len(names))).astype(np.float32)
    emb[0] = 0.0
    emb[1] = 0.0  # unknown words carry no meaning at all
    for axis, (_, _, keys, _) in enumerate(INTENTS.values()):
        for word in keys:
            emb[tok.token_to_id(word), axis] += 4.0
    return emb


def embed(tok: Tokenizer, emb: np.ndarray, text: str) -> np.ndarray:
    """What the graph's ``embedding`` output is for one unpadded text."""
    pooled = emb[np.asarray(tok.encode(text).ids)].mean(axis=0)
    out: np.ndarray = pooled / max(float(np.linalg.norm(pooled)), 1e-6)
    return out


def build_graph(emb: np.ndarray) -> onnx.ModelProto:
    n = emb.shape[1]
    head = (np.eye(n) * SCALE).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["safe_count"]),
        helper.make_node("Div", ["summed", "safe_count"], ["pooled"]),
        helper.make_node("Mul", ["pooled", "pooled"], ["squared"]),
        helper.make_node("ReduceSum", ["squared", "axis1"], ["sumsq"], keepdims=1),
        helper.make_node("Sqrt", ["sumsq"], ["norm"]),
        helper.make_node("Max", ["norm", "eps"], ["safe_norm"]),
        helper.make_node("Div", ["pooled", "safe_norm"], [EMBEDDING_OUTPUT]),
        helper.make_node("MatMul", [EMBEDDING_OUTPUT, "head"], [INTENT_LOGITS_OUTPUT]),
    ]
    inits = [
        numpy_helper.from_array(emb, "emb"),
        numpy_helper.from_array(head, "head"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([1e-6], dtype=np.float32), "eps"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_reply",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [
            helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch", n]),
            helper.make_tensor_value_info(INTENT_LOGITS_OUTPUT, TensorProto.FLOAT, ["batch", n]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def publish_tiny_reply_model(
    store: ModelStore,
    name: str = "reply",
    *,
    activate: bool = True,
    max_seq_length: int = 32,
    out_of_scope_logit: float | None = OUT_OF_SCOPE_LOGIT,
) -> Manifest:
    """Build the tiny reply model with its bank, publish it, maybe activate it."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        tok = build_tokenizer(staging / "tokenizer.json")
        emb = embeddings(tok)
        onnx.save(build_graph(emb), str(staging / MODEL_FILE))
        templates = [Template.of(i, t) for i, (_, _, _, ts) in INTENTS.items() for t in ts]
        ResponseBank(
            intents=[IntentInfo(i, c, h) for i, (c, h, _, _) in INTENTS.items()],
            templates=templates,
            embeddings=np.stack([embed(tok, emb, humanize(t.text)) for t in templates]),
            out_of_scope_logit=out_of_scope_logit,
        ).save(staging)
        manifest = store.publish(
            staging,
            Manifest(
                name=name,
                task="reply",
                labels=list(INTENTS),
                base_model="tiny-test-encoder",
                max_seq_length=max_seq_length,
                metrics={"eval": {"accuracy": 1.0}},
                recipe={"built_by": "tests.support.tiny_reply_model"},
            ),
        )
    if activate:
        store.set_active(name, manifest.version)
    return manifest
