"""The optimisation step shared by every fine-tune loop: AdamW, schedule, AMP, progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from app.training.finetune import (
    MAX_GRAD_NORM,
    Hyperparameters,
    TrainProgress,
    linear_schedule,
)

if TYPE_CHECKING:
    import torch


class OptimizerLoop:
    """Owns the optimizer, LR schedule, mixed precision and progress of one training run.

    A loop computes its own loss; ``update`` does the rest (scaled backward, clipping, the
    optimizer and scheduler steps) and reports progress, so each task's loop stays about
    its loss alone.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        groups: list[dict[str, Any]],
        hp: Hyperparameters,
        device: torch.device,
        total_steps: int,
        on_progress: Callable[[TrainProgress], None] | None = None,
        *,
        fused: bool = False,
    ) -> None:
        import torch

        warmup_steps = round(total_steps * hp.warmup_ratio)
        self.model = model
        self.total_steps = total_steps
        self.optimizer = torch.optim.AdamW(groups, lr=hp.learning_rate, fused=fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: linear_schedule(step, warmup_steps, total_steps)
        )
        self.device = device
        self.use_amp = device.type == "cuda"
        bf16 = self.use_amp and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        # Only float16 needs loss scaling; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.use_amp and self.amp_dtype == torch.float16
        )
        self._on_progress = on_progress
        self.step = 0
        self._seen = 0
        self._epoch_loss = 0.0
        self._epoch_steps = 0
        self._start = time.perf_counter()

    def autocast(self) -> AbstractContextManager[Any]:
        import torch

        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def start_epoch(self) -> None:
        self._epoch_loss = 0.0
        self._epoch_steps = 0

    def update(self, loss: torch.Tensor, rows: int, epoch: int) -> None:
        """Backward, clip, step, and report progress for one batch of ``rows`` examples."""
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(self.scaler.scale(loss))
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), MAX_GRAD_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self._seen += rows
        self._epoch_steps += 1
        self._epoch_loss += float(loss.item())
        if self._on_progress is not None:
            elapsed = max(time.perf_counter() - self._start, 1e-9)
            self._on_progress(
                TrainProgress(
                    step=self.step,
                    total_steps=self.total_steps,
                    epoch=epoch,
                    loss=self._epoch_loss / self._epoch_steps,
                    samples_per_second=self._seen / elapsed,
                    eta_seconds=elapsed / self.step * (self.total_steps - self.step),
                )
            )
