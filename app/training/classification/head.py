"""Method ``head``: the encoder frozen, its features computed once, only the head trains.

Seconds instead of minutes, for a quick baseline: the encoder runs once per text (no grad,
eval mode), the head's inputs are cached, and every epoch after that is a few matrix
products. The exported model is the whole classifier, so serving is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.training.errors import InvalidDataset, TrainingCancelled
from app.training.finetune import (
    Hyperparameters,
    TrainedClassifier,
    TrainProgress,
    parameter_groups,
)
from app.training.loop import OptimizerLoop

if TYPE_CHECKING:
    import torch

FEATURE_BATCH = 64


def train_head(
    trained: TrainedClassifier,
    texts: list[str],
    targets: torch.Tensor,
    hp: Hyperparameters,
    on_progress: Callable[[TrainProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    """Train ``trained.model.classifier`` in place on cached encoder features of ``texts``."""
    import torch
    from torch.nn import functional

    model = trained.model
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Module):
        raise InvalidDataset("hyperparameters.method: 'head' needs a model with a classifier")
    model.requires_grad_(False)
    head.requires_grad_(True)
    features = _head_inputs(trained, head, texts)
    device = trained.device
    total_steps = math.ceil(len(texts) / hp.batch_size) * hp.epochs
    loop = OptimizerLoop(
        head, parameter_groups(head, hp.weight_decay), hp, device, total_steps, on_progress
    )
    generator = torch.Generator().manual_seed(hp.seed)
    head.train()
    for epoch in range(1, hp.epochs + 1):
        order = torch.randperm(len(texts), generator=generator)
        loop.start_epoch()
        for first in range(0, len(texts), hp.batch_size):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"training stopped at step {loop.step} of {total_steps}")
            rows = order[first : first + hp.batch_size]
            logits = head(features[rows])
            loss = functional.cross_entropy(logits.float(), targets[rows].to(device))
            loop.update(loss, len(rows), epoch)
    model.eval()


def _head_inputs(
    trained: TrainedClassifier, head: torch.nn.Module, texts: list[str]
) -> torch.Tensor:
    """What the head receives for each text, computed once with the encoder in eval mode."""
    import torch

    seen: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(args[0].detach())

    hook = head.register_forward_pre_hook(keep)
    trained.model.eval()
    try:
        with torch.no_grad():
            for first in range(0, len(texts), FEATURE_BATCH):
                trained.model(**trained.encode(texts[first : first + FEATURE_BATCH]))
    finally:
        hook.remove()
    if any(f.ndim != 2 for f in seen):  # a head over token states: lengths differ by batch
        raise InvalidDataset("hyperparameters.method: 'head' needs a pooled-output classifier")
    return torch.cat(seen)
