"""What every task's fine-tune shares: its hyperparameters, the progress it reports, the
fine-tuned encoder it hands to export, and the loop's seeding, schedule and parameter groups.

Each task's own training loop lives in its folder (``classification/train.py``,
``reply/model.py``) and imports this module and ``loop.py``; neither of those two imports a
task, so the shared pieces have no cycle to fall into.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import torch

Method = Literal["full", "lora", "head"]
# The peak learning rate when the request gives none: adapters and a bare head start from
# zero or random weights and need larger steps than the pre-trained encoder does.
DEFAULT_LEARNING_RATE: dict[str, float] = {"full": 5e-5, "lora": 5e-4, "head": 1e-3}
# BERT-style module names (MiniLM is one): attention projections and the feed-forward layers.
DEFAULT_LORA_TARGETS = ["query", "key", "value", "dense"]

# Clipping keeps the first steps (fresh, random head) from knocking the encoder off course.
MAX_GRAD_NORM = 1.0


class Hyperparameters(BaseModel):
    """Knobs of one fine-tune; unknown keys are refused so a typo in a recipe is not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        "full",
        description="'full' trains every weight; 'lora' trains low-rank adapters (merged into "
        "the weights before export); 'head' freezes the encoder and trains the head alone.",
    )
    epochs: int = Field(4, ge=1, le=100, description="Passes over the training set.")
    learning_rate: float = Field(
        5e-5,
        gt=0,
        le=1,
        description="Peak AdamW learning rate; unset: 5e-5 (full), 5e-4 (lora), 1e-3 (head).",
    )
    batch_size: int = Field(16, ge=1, le=1024, description="Examples per optimizer step.")
    max_length: int = Field(128, ge=8, le=512, description="Tokens kept per text.")
    seed: int = Field(13, ge=0, le=2**32 - 1, description="Seeds head init and shuffling.")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Share of steps warming up.")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW decoupled weight decay.")
    lora_r: int = Field(16, ge=1, le=256, description="LoRA rank (method 'lora').")
    lora_alpha: int = Field(32, ge=1, le=1024, description="LoRA scaling numerator.")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_targets: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        min_length=1,
        description="Module names LoRA adapts (BERT-style by default).",
    )

    @model_validator(mode="before")
    @classmethod
    def _learning_rate_for_method(cls, data: Any) -> Any:
        # Resolved here, not at training time, so the stored spec shows the rate used.
        if isinstance(data, dict) and "learning_rate" not in data:
            method = data.get("method", "full")
            if method in DEFAULT_LEARNING_RATE:
                return {**data, "learning_rate": DEFAULT_LEARNING_RATE[method]}
        return data


@dataclass(frozen=True, slots=True)
class TrainProgress:
    """Where a fine-tune stands after ``step`` optimizer steps."""

    step: int
    total_steps: int
    epoch: int  # 1-based
    loss: float  # mean training loss over the current epoch so far
    samples_per_second: float
    eta_seconds: float


@dataclass
class TrainedClassifier:
    """A fine-tuned model (in eval mode) with what is needed to feed it."""

    model: torch.nn.Module
    tokenizer: Any  # a transformers fast tokenizer
    labels: list[str]
    max_length: int
    input_names: list[str]
    # Divides the logits in the exported graph (temperature scaling, see calibration.py);
    # 1 until the pipeline fits it on held-out rows.
    temperature: float = 1.0
    trainable_parameters: int = 0  # counted while training (before any LoRA merge)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize ``texts`` into one right-padded batch on the model's device."""
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        device = self.device
        return {name: batch[name].to(device) for name in self.input_names}


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def linear_schedule(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up to 1, then linear decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # Decaying biases and LayerNorm gains only shrinks them towards zero for no benefit:
    # the usual BERT recipe exempts them, i.e. every parameter with fewer than 2 dimensions.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
