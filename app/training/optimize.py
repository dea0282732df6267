"""The GPU file of a version: a fused transformer graph in half precision, checked on the CPU.

ONNX Runtime's usual route for BERT-style encoders on CUDA: first its transformer optimizer
rewrites the traced graph into fused kernels (``Attention``, ``SkipLayerNormalization``,
``BiasGelu``, ``EmbedLayerNormalization``), whose CUDA versions read fp16 but accumulate the
sensitive sums (softmax, layer-norm statistics) in fp32; then the weights and the remaining
arithmetic go to fp16, with the ops that would still lose precision kept in fp32. Converting
the raw graph instead (the earlier route) ran LayerNorm and Softmax as plain fp16 ops and
left every kernel boundary a separate launch.

The fused graph uses contrib ops the CPU provider also implements, so the fp16 file is
checked here against fp32 (arg-max agreement and largest difference, recorded in the
manifest under the variant) before any GPU sees it.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.store.manifest import FP16_FILE, MODEL_FILE, Variant

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Op types that only exist once the optimizer has fused a block: their presence proves it ran.
FUSED_OPS = frozenset(
    {
        "Attention",
        "MultiHeadAttention",
        "SkipLayerNormalization",
        "EmbedLayerNormalization",
        "BiasGelu",
        "FastGelu",
        "Gelu",
        "GemmFastGelu",
    }
)
# Left in fp32 when the optimizer could not fuse them (another architecture, an unusual trace)
# and for the pooling and unit-length normalisation after the encoder: sums over many terms
# and divisions by small norms, where fp16's 10-bit mantissa visibly moves a cosine.
FP32_OPS = (
    "LayerNormalization",
    "Softmax",
    "ReduceSum",
    "ReduceMean",
    "ReduceL2",
    "Pow",
    "Sqrt",
    "Div",
)


def encoder_shape(model: torch.nn.Module) -> tuple[int, int]:
    """``(num_heads, hidden_size)`` from the first transformers config inside ``model``.

    The optimizer cannot always read them off the traced graph (reshapes to dynamic shapes),
    and guessing wrong fuses attention with the wrong head split: silently wrong numbers.
    ``(0, 0)`` (let the optimizer detect) only when no config is found.
    """
    for module in model.modules():
        config = getattr(module, "config", None)
        heads = getattr(config, "num_attention_heads", None)
        hidden = getattr(config, "hidden_size", None)
        if isinstance(heads, int) and isinstance(hidden, int):
            return heads, hidden
    return 0, 0


def build_fp16(onnx_path: Path, out_path: Path, *, num_heads: int, hidden_size: int) -> Path:
    """Fuse ``onnx_path`` with ORT's BERT optimizer and write it in fp16 to ``out_path``.

    Inputs and outputs stay int64 / float32 (``keep_io_types``): serving feeds and reads the
    file exactly like fp32. ``opt_level=0``: only the Python fusions, no provider-specific
    rewrites baked in, so the same file runs (and is checked) on the CPU provider.
    """
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Loaded here, not by path: the optimizer leaks its temporary folder when loading fails.
    model = onnx.load(str(onnx_path))
    optimized = optimize_model(
        model,
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        use_gpu=True,
    )
    optimized.convert_float_to_float16(keep_io_types=True, op_block_list=list(FP32_OPS))
    optimized.save_model_to_file(str(out_path))
    return out_path


def fused_ops(onnx_path: Path) -> dict[str, int]:
    """How many nodes of each fused op type the file holds."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    counts = Counter(node.op_type for node in graph.node if node.op_type in FUSED_OPS)
    return dict(sorted(counts.items()))


def fp16_parity(
    fp32_path: Path,
    fp16_path: Path,
    texts: Sequence[str],
    *,
    max_length: int,
    pad_id: int,
    outputs: list[str],
    argmax_output: str,
) -> dict[str, Any]:
    """Both files scored on ``texts`` by serving's CPU backend: the largest difference over
    every output, and the share of rows whose arg-max of ``argmax_output`` agrees."""
    from app.training.export import serving_outputs

    want = serving_outputs(fp32_path, texts, max_length=max_length, pad_id=pad_id, outputs=outputs)
    got = serving_outputs(fp16_path, texts, max_length=max_length, pad_id=pad_id, outputs=outputs)
    worst = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    at = outputs.index(argmax_output)
    agree = float((got[at].argmax(axis=1) == want[at].argmax(axis=1)).mean())
    return {"max_abs_diff": worst, "argmax_agreement": agree, "rows": len(texts)}


def fp16_variant(
    staging: Path,
    model: torch.nn.Module,
    texts: Sequence[str],
    *,
    max_length: int,
    pad_id: int,
    outputs: list[str],
    argmax_output: str,
) -> Variant | None:
    """Build ``staging/model.fp16.onnx`` from ``staging/model.onnx`` and check it.

    None (and no file) when ORT cannot convert it or the fp16 outputs are not finite: the
    version still publishes, served in fp32 on GPUs too.
    """
    heads, hidden = encoder_shape(model)
    out = staging / FP16_FILE
    try:
        build_fp16(staging / MODEL_FILE, out, num_heads=heads, hidden_size=hidden)
        parity = fp16_parity(
            staging / MODEL_FILE,
            out,
            texts,
            max_length=max_length,
            pad_id=pad_id,
            outputs=outputs,
            argmax_output=argmax_output,
        )
    except Exception as exc:
        log.warning("fp16 conversion failed; publishing without it: %s", exc)
        out.unlink(missing_ok=True)
        return None
    if not math.isfinite(parity["max_abs_diff"]):
        log.warning("fp16 outputs overflow (%s); publishing without fp16", parity)
        out.unlink(missing_ok=True)
        return None
    fused = fused_ops(out)
    if not fused:
        log.warning("the optimizer fused nothing in %s; fp16 is the unfused graph", out.name)
    return Variant(file=FP16_FILE, parity=parity, fused=fused)
