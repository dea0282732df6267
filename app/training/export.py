"""Export a trained classifier to ONNX + ``tokenizer.json``, and prove the export is faithful."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import numpy.typing as npt

from app.store.manifest import MODEL_FILE
from app.training.errors import ParityError

if TYPE_CHECKING:
    import torch

    from app.training.finetune import TrainedClassifier

TOKENIZER_FILE = "tokenizer.json"
OPSET = 17
OUTPUT_NAME = "logits"
# Written by ``save_pretrained`` depending on the tokenizer class and transformers version;
# kept so a version folder can also be reopened with ``AutoTokenizer.from_pretrained``.
_TOKENIZER_EXTRAS = ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_EXPORT_SAMPLE = ("a short text", "a somewhat longer text, so that the sample batch has padding")


class ParityReport(TypedDict):
    max_abs_diff: float
    argmax_agree: bool
    rows: int
    tolerance: float


def export_onnx(trained: TrainedClassifier, out_dir: Path) -> list[str]:
    """Write ``model.onnx`` (opset 17, dynamic batch and sequence axes) and the tokenizer files.

    Returns the ONNX input names, in order: ``input_ids``, ``attention_mask`` and, only when
    the model takes it, ``token_type_ids``. The output is ``logits`` of shape (batch, labels),
    already divided by ``trained.temperature``: serving's soft-max then gives calibrated scores.
    """
    names = list(trained.input_names)
    wrapper = _logits_module(trained.model, names, trained.temperature)
    trace_to_onnx(trained, wrapper, _EXPORT_SAMPLE, [OUTPUT_NAME], out_dir)
    return names


def trace_to_onnx(
    trained: TrainedClassifier,
    wrapper: torch.nn.Module,
    sample_texts: Sequence[str],
    outputs: list[str],
    out_dir: Path,
) -> None:
    """Trace ``wrapper`` (positional inputs in ``trained.input_names`` order) into
    ``out_dir/model.onnx`` with dynamic batch and sequence axes, check the file, and write
    the tokenizer beside it. Every output's first axis is the batch."""
    import onnx
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(trained.input_names)
    sample = trained.encode(list(sample_texts))
    # The wrapper must be in eval mode itself: export restores the wrapper's own mode on
    # exit, which would otherwise switch the wrapped model back to training (dropout on).
    wrapper.eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch"} for name in outputs})
    path = out_dir / MODEL_FILE
    with warnings.catch_warnings(), torch.no_grad(), eager_attention(trained.model):
        # Expected while tracing a transformer: the TorchScript exporter is deprecated (the
        # dynamo one is not yet dependable for these models), and the tracer notes Python
        # branches on shapes, which are constant for a given model configuration.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing")
        torch.onnx.export(
            wrapper,
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    trained.model.eval()
    onnx.checker.check_model(str(path))
    save_tokenizer(trained, out_dir)


@contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Trace attention as transformers' plain ops (MatMul, Softmax) instead of its SDPA call:
    ORT's transformer optimizer recognises only that pattern and fuses it into ``Attention``
    for the GPU file (``app.training.optimize``). Same numbers; restored on exit."""
    changed: list[tuple[Callable[[str], object], str]] = []
    for module in model.modules():
        current = getattr(getattr(module, "config", None), "_attn_implementation", None)
        setter = getattr(module, "set_attn_implementation", None)
        if isinstance(current, str) and current != "eager" and callable(setter):
            setter("eager")
            changed.append((setter, current))
    try:
        yield
    finally:
        for setter, previous in reversed(changed):
            setter(previous)


def _logits_module(
    model: torch.nn.Module, names: list[str], temperature: float = 1.0
) -> torch.nn.Module:
    import torch

    class LogitsOnly(torch.nn.Module):
        """Positional inputs in ``names`` order in, bare logits out: what ONNX wants."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.model(**dict(zip(names, inputs, strict=True))).logits
            # One Div node in the graph; constant folding cannot merge it into the last
            # MatMul, but a scalar divide is noise next to the encoder.
            return logits if temperature == 1.0 else logits / temperature

    return LogitsOnly()


def save_tokenizer(trained: TrainedClassifier, out_dir: Path) -> None:
    """Write ``tokenizer.json`` (truncating at ``max_length``, unpadded) and its companions."""
    from tokenizers import Tokenizer

    with tempfile.TemporaryDirectory(prefix="textserve-tok-") as tmp:
        trained.tokenizer.save_pretrained(tmp)
        for name in _TOKENIZER_EXTRAS:
            if (Path(tmp) / name).is_file():
                shutil.copyfile(Path(tmp) / name, out_dir / name)
    # The Rust tokenizer carries truncation and padding state, changed by every transformers
    # call (and the packaged file pads everything to 128). Serving pads each batch itself,
    # so the saved file states exactly: truncate at max_length, no padding.
    backend = Tokenizer.from_str(trained.tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(trained.max_length)
    backend.save(str(out_dir / TOKENIZER_FILE))


def check_parity(
    trained: TrainedClassifier,
    onnx_path: Path,
    texts: Sequence[str],
    tolerance: float = 1e-3,
) -> ParityReport:
    """Compare torch logits (divided by ``trained.temperature``, as exported) with ONNX
    Runtime (CPU) logits on ``texts``.

    The ONNX side is fed the way serving feeds it: ``tokenizer.json`` next to ``onnx_path``,
    right padding with the pad id and zero token types, so a bad tokenizer file fails here
    too. Raises ``ParityError`` if the largest absolute difference exceeds ``tolerance`` or
    any row's arg-max differs.
    """
    import torch

    if not texts:
        raise ValueError("parity needs at least one text")
    with torch.no_grad():
        logits = trained.model(**trained.encode(texts)).logits.float()
        expected = (logits / trained.temperature).cpu().numpy()
    (got,) = serving_outputs(
        onnx_path,
        texts,
        max_length=trained.max_length,
        pad_id=int(trained.tokenizer.pad_token_id),
        outputs=[OUTPUT_NAME],
    )
    if got.shape != expected.shape:
        raise ParityError(f"ONNX logits have shape {got.shape}, torch {expected.shape}")
    report: ParityReport = {
        "max_abs_diff": float(np.abs(got - expected).max()),
        "argmax_agree": bool((got.argmax(axis=1) == expected.argmax(axis=1)).all()),
        "rows": len(texts),
        "tolerance": tolerance,
    }
    # Written as "not <=" so that a NaN difference fails too.
    if not report["max_abs_diff"] <= tolerance or not report["argmax_agree"]:
        raise ParityError(f"ONNX export does not match the trained model: {report}")
    return report


def serving_outputs(
    onnx_path: Path,
    texts: Sequence[str],
    *,
    max_length: int,
    pad_id: int,
    outputs: list[str],
) -> list[npt.NDArray[np.float32]]:
    """``outputs`` of the ONNX file on ``texts``, as serving computes them: its backend on the
    CPU, fed from the ``tokenizer.json`` beside the file (so a bad tokenizer file fails too)."""
    from app.runtime.backend import cpu_session, score_texts
    from app.runtime.tokenizer import TextTokenizer

    tokenizer_path = onnx_path.with_name(TOKENIZER_FILE)
    if not tokenizer_path.is_file():
        raise ParityError(f"no {TOKENIZER_FILE} next to the ONNX model at {tokenizer_path}")
    tokenizer = TextTokenizer(tokenizer_path, max_length, pad_id)
    got = score_texts(cpu_session(onnx_path), tokenizer, texts, outputs)
    return [np.asarray(o, dtype=np.float32) for o in got]


def quantize_dynamic_int8(onnx_path: Path, out_path: Path) -> Path:
    """Write a copy of ``onnx_path`` with int8 weights (dynamic quantization) to ``out_path``.

    About 4x smaller and about twice as fast on CPU; accuracy must be checked by the caller,
    as quantized logits differ from the float ones by far more than the parity tolerance.

    Options, as measured on MiniLM fine-tuned on SST-2 (dev set, 872 texts, batches of 32,
    2 cores with VNNI, ORT 1.32; fp32 81.65 % accurate). One scale per output channel
    (``per_channel``): 82.22 % and the fp32 arg-max on 98.1 % of texts, against 80.73 % and
    95.4 % with one scale per tensor, at the same speed (2.2-2.3x fp32 in ORT alone either
    way, 2.0x with tokenization in bench/quantize.py). The full 8-bit range: 7-bit weights
    (``reduce_range``, meant for CPUs without VNNI) cost 1.7 points and bought no speed.
    Every op type ORT quantizes by default, so the embedding table is int8 too (23 MB;
    MatMul only: 59 MB, same speed within noise). ORT's pre-processing (shape inference and
    graph optimisation before quantizing) changed nothing beyond run-to-run noise, and fusing
    the graph with ``onnxruntime.transformers`` first made int8 slower (1.8x).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path.parent.mkdir(parents=True, exist_ok=True)
    hint = _DropPreprocessingHint()
    root = logging.getLogger()
    root.addFilter(hint)  # the hint is logged on the root logger itself
    try:
        quantize_dynamic(
            onnx_path, out_path, weight_type=QuantType.QInt8, per_channel=True, reduce_range=False
        )
    finally:
        root.removeFilter(hint)
    return out_path


class _DropPreprocessingHint(logging.Filter):
    """ORT suggests pre-processing on every call; measured above, it gains nothing here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()
