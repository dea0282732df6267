"""Build, check and publish an embedding model from a base encoder (no training)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from app.store.manifest import FP32, INT8, INT8_FILE, MODEL_FILE, Manifest, Variant
from app.store.versions import ModelStore

log = logging.getLogger(__name__)

# Publishing refuses an export whose vectors drift from torch's below this cosine.
PARITY_COSINE = 0.999
# The int8 file is kept only if every parity text's vector stays this close to fp32's.
INT8_COSINE = 0.99
# Texts of several lengths and topics, punctuation and casing included, for both checks.
PARITY_TEXTS = (
    "Where is my parcel? It was due yesterday.",
    "I would like a refund for the broken headphones I received last week.",
    "How do I reset my password?",
    "The quick brown fox jumps over the lazy dog.",
    "Opening hours: Monday to Friday, 9am to 5pm; closed on public holidays.",
    "Stock markets fell sharply after the central bank raised interest rates again.",
    "ok",
    "Can I change the delivery address after the order has shipped, or is it too late "
    "for that? The courier's tracking page still says the parcel is in the depot.",
)


def build_embedding(
    store: ModelStore,
    *,
    name: str = "embedding",
    base_model: str = "packaged",
    max_length: int = 256,
    int8: bool = True,
    activate: bool = True,
    recipe: dict[str, Any] | None = None,
) -> Manifest:
    """Export ``base_model`` with pooling in the graph, check it against torch, publish it.

    fp32 must match torch's mean-pooled, normalised vectors with cosine >= ``PARITY_COSINE``
    on every parity text (``ParityError`` otherwise, and nothing is published). The int8 file
    is published beside it only when its vectors stay within ``INT8_COSINE`` of fp32's.
    """
    from app.training.embedding.export import (
        POOLING,
        check_cosine,
        export_embedding,
        load_encoder,
        onnx_embeddings,
        torch_embeddings,
    )
    from app.training.errors import ParityError
    from app.training.export import quantize_dynamic_int8

    encoder = load_encoder(base_model, max_length)
    pad_id = int(encoder.tokenizer.pad_token_id or 0)
    texts = list(PARITY_TEXTS)
    with tempfile.TemporaryDirectory(prefix="textserve-embed-") as tmp:
        staging = Path(tmp)
        dimension = export_embedding(encoder, staging)
        fp32 = onnx_embeddings(staging / MODEL_FILE, texts, max_length=max_length, pad_id=pad_id)
        cosine = check_cosine(fp32, torch_embeddings(encoder, texts), PARITY_COSINE, "fp32 export")
        variants = {FP32: Variant(file=MODEL_FILE, eval={"min_cosine_to_torch": cosine})}
        if int8:
            quantize_dynamic_int8(staging / MODEL_FILE, staging / INT8_FILE)
            quantized = onnx_embeddings(
                staging / INT8_FILE, texts, max_length=max_length, pad_id=pad_id
            )
            try:
                close = check_cosine(quantized, fp32, INT8_COSINE, "int8")
                variants[INT8] = Variant(file=INT8_FILE, eval={"min_cosine_to_fp32": close})
            except ParityError as exc:
                log.warning("%s: int8 left out: %s", name, exc)
                (staging / INT8_FILE).unlink()
        manifest = store.publish(
            staging,
            Manifest(
                name=name,
                task="embedding",
                labels=[],
                base_model=base_model,
                max_seq_length=max_length,
                inputs=list(encoder.input_names),
                pad_token_id=pad_id,
                dimension=dimension,
                pooling=POOLING,
                parity={
                    "min_cosine": cosine,
                    "floor": PARITY_COSINE,
                    "rows": len(texts),
                    "reference": "torch encoder, attention-masked mean pooling, L2 normalised",
                },
                recipe=recipe or {"built_by": "app.training.embedding"},
                variants=variants,
            ),
        )
    if activate:
        store.set_active(name, manifest.version)
    return manifest
