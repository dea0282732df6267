"""The parameter-efficient methods a fine-tune can use, shared by every task's loop.

``lora`` wraps the encoder's linear layers with low-rank adapters (the ``peft`` library)
and merges them back before export, so the ONNX graph is the plain architecture and
serving costs nothing extra. ``head`` freezes the encoder (see ``classification/head.py``).
Torch and peft are imported inside the functions: the serving process imports none.
"""

from __future__ import annotations

import resource
import sys
from typing import TYPE_CHECKING, Any

from app.training.errors import InvalidDataset

if TYPE_CHECKING:
    import torch

    from app.training.finetune import Hyperparameters


def add_lora(model: torch.nn.Module, hp: Hyperparameters, keep: list[str]) -> torch.nn.Module:
    """``model`` with LoRA adapters on ``hp.lora_targets``; only the adapters and the
    modules named in ``keep`` (the task's fresh head) train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=list(hp.lora_targets),
        modules_to_save=keep,
    )
    try:
        wrapped: torch.nn.Module = get_peft_model(model, config)
    except ValueError as exc:  # peft's message names the modules it could not find
        raise InvalidDataset(f"hyperparameters.lora_targets: {exc}") from exc
    return wrapped


def merge_lora(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model with every adapter folded into its base weights (W + B·A·scale)."""
    merged: torch.nn.Module = model.merge_and_unload()  # type: ignore[operator]
    return merged


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def peak_memory_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def training_record(
    hp: Hyperparameters, trainable: int, samples_per_second: float | None
) -> dict[str, Any]:
    """The manifest's ``training`` field: how the weights were fitted and at what cost."""
    return {
        "method": hp.method,
        "trainable_parameters": trainable,
        "samples_per_second": round(samples_per_second, 2) if samples_per_second else None,
        "peak_memory_mb": peak_memory_mb(),
    }
