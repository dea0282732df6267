"""Export a sentence encoder to ONNX with mean pooling and L2 normalisation in the graph.

Serving then needs no pooling code of its own: the model's one output, ``embedding``
(batch, dimension), is already what sentence-transformers computes for all-MiniLM-L6-v2
(its modules are the transformer, mean pooling over the attention mask, and normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from app.training.base_model import _quiet_transformers, model_input_names, resolve_base_model
from app.training.errors import BaseModelUnavailable, ParityError
from app.training.export import serving_outputs, trace_to_onnx
from app.training.finetune import TrainedClassifier

if TYPE_CHECKING:
    import torch

OUTPUT_NAME = "embedding"
POOLING = "mean"
_SAMPLE = ("a short text", "a somewhat longer text, so that the sample batch has padding")


def load_encoder(spec: str, max_length: int) -> TrainedClassifier:
    """The base encoder without any head, with its tokenizer, ready to export.

    Wrapped as a ``TrainedClassifier`` with no labels: the export and parity code read the
    model, tokenizer, input names and maximum length from it, which is all an encoder needs.
    """
    from transformers import AutoModel, AutoTokenizer

    source = resolve_base_model(spec)
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModel.from_pretrained(source)
    except (OSError, ValueError, ImportError) as exc:
        raise BaseModelUnavailable(f"cannot load base model {spec!r} ({source}): {exc}") from exc
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise BaseModelUnavailable(f"base model {spec!r} has no fast (Rust) tokenizer")
    model.eval()
    return TrainedClassifier(
        model=model,
        tokenizer=tokenizer,
        labels=[],
        max_length=max_length,
        input_names=model_input_names(model, tokenizer),
    )


def pooled_module(model: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    """Positional inputs in ``names`` order in; unit-length mean-pooled vectors out."""
    import torch

    class MeanPooledNormalised(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            feeds = dict(zip(names, inputs, strict=True))
            hidden: torch.Tensor = self.model(**feeds).last_hidden_state
            return mean_pool_normalise(hidden, feeds["attention_mask"])

    return MeanPooledNormalised()


def mean_pool_normalise(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens' vectors, scaled to unit length (padding counts for nothing)."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    # A row of all padding cannot reach the model (serving refuses empty texts), but the
    # clamp keeps the graph free of a division by zero either way.
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)


def export_embedding(encoder: TrainedClassifier, out_dir: Path) -> int:
    """Write ``model.onnx`` (output ``embedding``) and the tokenizer; returns the dimension."""
    wrapper = pooled_module(encoder.model, list(encoder.input_names))
    trace_to_onnx(encoder, wrapper, _SAMPLE, [OUTPUT_NAME], out_dir)
    config: Any = getattr(encoder.model, "config", None)
    return int(config.hidden_size)


def torch_embeddings(encoder: TrainedClassifier, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The reference vectors: the encoder in torch, mean-pooled and normalised."""
    import torch

    with torch.no_grad():
        feeds = encoder.encode(list(texts))
        hidden = encoder.model(**feeds).last_hidden_state
        pooled = mean_pool_normalise(hidden, feeds["attention_mask"])
    return np.asarray(pooled.float().cpu().numpy(), dtype=np.float32)


def onnx_embeddings(
    onnx_path: Path, texts: Sequence[str], *, max_length: int, pad_id: int
) -> npt.NDArray[np.float32]:
    """The vectors of an exported file, as serving computes them."""
    (got,) = serving_outputs(
        onnx_path, texts, max_length=max_length, pad_id=pad_id, outputs=[OUTPUT_NAME]
    )
    return got


def row_cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Cosine similarity of each row of ``a`` with the same row of ``b``."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    out: npt.NDArray[np.float64] = (a64 * b64).sum(axis=1) / np.maximum(norms, 1e-12)
    return out


def check_cosine(
    got: npt.NDArray[np.float32], expected: npt.NDArray[np.float32], floor: float, what: str
) -> float:
    """The smallest row cosine of ``got`` against ``expected``; ``ParityError`` below ``floor``."""
    if got.shape != expected.shape:
        raise ParityError(f"{what}: vectors have shape {got.shape}, expected {expected.shape}")
    worst = float(row_cosines(got, expected).min())
    # Written as "not >=" so that a NaN fails too.
    if not worst >= floor:
        raise ParityError(f"{what}: cosine {worst:.6f} is below {floor}")
    return worst
