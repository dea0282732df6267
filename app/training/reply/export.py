"""Export the dual encoder to ONNX (two outputs) and prove the export faithful."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from app.registry.bank import EMBEDDING_OUTPUT, INTENT_LOGITS_OUTPUT
from app.registry.manifest import MODEL_FILE
from app.training.errors import ParityError
from app.training.export import OPSET, _cpu_session, _serving_feeds, save_tokenizer

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
    import onnx
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(trained.input_names)
    sample = trained.encode(_SAMPLE)
    wrapper = _tuple_module(trained.model, names).eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch"} for name in OUTPUTS})
    with warnings.catch_warnings(), torch.no_grad():
        # The same expected notes as the classifier export (see app.training.export).
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing")
        torch.onnx.export(
            wrapper,
            tuple(sample[name] for name in names),
            str(out_dir / MODEL_FILE),
            input_names=names,
            output_names=list(OUTPUTS),
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    trained.model.eval()
    onnx.checker.check_model(str(out_dir / MODEL_FILE))
    save_tokenizer(trained, out_dir)
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
    session = _cpu_session(onnx_path)
    feeds = _serving_feeds(
        onnx_path.with_name("tokenizer.json"),
        texts,
        max_length=trained.max_length,
        pad_id=int(trained.tokenizer.pad_token_id),
        input_names=[i.name for i in session.get_inputs()],
    )
    got = [np.asarray(o, dtype=np.float32) for o in session.run(list(OUTPUTS), feeds)]
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
