"""Export the dual encoder to ONNX (two outputs) and prove the export faithful."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from app.store.bank import EMBEDDING_OUTPUT, INTENT_LOGITS_OUTPUT
from app.store.manifest import FP16, FP32, MODEL_FILE, Variant
from app.training.errors import ParityError
from app.training.export import serving_outputs, trace_to_onnx
from app.training.optimize import fp16_variant

if TYPE_CHECKING:
    import torch

    from app.training.finetune import TrainedClassifier

OUTPUTS = (EMBEDDING_OUTPUT, INTENT_LOGITS_OUTPUT)
_SAMPLE = ("a short text", "a somewhat longer text, so that the sample batch has padding")


class ReplyParityReport(TypedDict):
    max_abs_diff_embedding: float
    max_abs_diff_logits: float
    argmax_agree: bool
    rows: int
    tolerance: float


def export_reply_onnx(trained: TrainedClassifier, out_dir: Path) -> list[str]:
    """Write ``model.onnx`` with outputs ``embedding`` (batch, hidden; unit length) and
    ``intent_logits`` (batch, intents), plus the tokenizer files. Returns the input names."""
    names = list(trained.input_names)
    trace_to_onnx(trained, _tuple_module(trained.model, names), _SAMPLE, list(OUTPUTS), out_dir)
    return names


def _tuple_module(model: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    import torch

    class BothOutputs(torch.nn.Module):
        """Positional inputs in ``names`` order in, ``(embedding, logits)`` out."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.model(**dict(zip(names, inputs, strict=True)))
            return out.embedding, out.logits

    return BothOutputs()


def check_reply_parity(
    trained: TrainedClassifier, onnx_path: Path, texts: Sequence[str], tolerance: float = 1e-3
) -> ReplyParityReport:
    """Compare both outputs of torch and ONNX Runtime (fed as serving feeds it) on ``texts``."""
    import torch

    if not texts:
        raise ValueError("parity needs at least one text")
    with torch.no_grad():
        out = trained.model(**trained.encode(texts))
        want = [out.embedding.float().cpu().numpy(), out.logits.float().cpu().numpy()]
    got = serving_outputs(
        onnx_path,
        texts,
        max_length=trained.max_length,
        pad_id=int(trained.tokenizer.pad_token_id),
        outputs=list(OUTPUTS),
    )
    for name, g, w in zip(OUTPUTS, got, want, strict=True):
        if g.shape != w.shape:
            raise ParityError(f"ONNX {name} has shape {g.shape}, torch {w.shape}")
    report: ReplyParityReport = {
        "max_abs_diff_embedding": float(np.abs(got[0] - want[0]).max()),
        "max_abs_diff_logits": float(np.abs(got[1] - want[1]).max()),
        "argmax_agree": bool((got[1].argmax(axis=1) == want[1].argmax(axis=1)).all()),
        "rows": len(texts),
        "tolerance": tolerance,
    }
    # Written as "not <=" so that a NaN difference fails too.
    worst = max(report["max_abs_diff_embedding"], report["max_abs_diff_logits"])
    if not worst <= tolerance or not report["argmax_agree"]:
        raise ParityError(f"ONNX export does not match the trained model: {report}")
    return report


def reply_variants(
    staging: Path, trained: TrainedClassifier, texts: Sequence[str]
) -> dict[str, Variant]:
    """fp32 and, for GPUs, the fused fp16 file (``app.training.optimize``), checked against
    fp32 on ``texts``: both outputs' largest difference, the intents' arg-max agreement."""
    variants = {FP32: Variant(file=MODEL_FILE)}
    half = fp16_variant(
        staging,
        trained.model,
        texts,
        max_length=trained.max_length,
        pad_id=int(trained.tokenizer.pad_token_id),
        outputs=list(OUTPUTS),
        argmax_output=INTENT_LOGITS_OUTPUT,
    )
    if half is not None:
        variants[FP16] = half
    return variants
