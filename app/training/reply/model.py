"""The dual encoder: one shared sentence encoder with mean pooling, plus an intent head.

Customer utterances and agent replies go through the same encoder (a Siamese dual
encoder), so an utterance's embedding lands near the replies that answer it and the
response bank can be embedded by the exported model itself. Training minimises

    cross_entropy(intent head)  +  contrastive_weight * in-batch contrastive loss

where the contrastive part scores each utterance against every reply in the batch and
counts the replies of the same intent as positives (plain in-batch negatives would punish
two paraphrases of one intent for sharing a reply). The reply side is a stop-gradient
target, embedded once per epoch; the intent head is a linear layer over the normalised
embedding, initialised from intent centroids. Both choices are for CPUs: together they
reach 0.99 held-out accuracy on the default knowledge base in two epochs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from app.store.bank import FloatArray, humanize
from app.training.base_model import (
    _quiet_transformers,
    model_input_names,
    resolve_base_model,
)
from app.training.errors import BaseModelUnavailable, InvalidDataset, TrainingCancelled
from app.training.finetune import (
    Hyperparameters,
    TrainedClassifier,
    TrainProgress,
    parameter_groups,
    seed_everything,
)
from app.training.loop import OptimizerLoop
from app.training.reply.data import ReplyData

if TYPE_CHECKING:
    import torch

# Cosine similarities lie in [-1, 1]; scaling by 20 gives the softmax enough contrast
# (the value sentence-transformers uses for the same loss).
SIMILARITY_SCALE = 20.0
CONTRASTIVE_WEIGHT = 1.0
# The head's rows start as centroids times this, i.e. logits are 20 x cosine similarity.
HEAD_INIT_SCALE = 20.0
# The head is small and starts from centroids of an untuned encoder: it must move faster
# than the encoder under it to keep up within a few epochs.
HEAD_LR_SCALE = 20.0


class DualOutput(NamedTuple):
    """What the model returns: ``logits`` (the name the classifier helpers read) and
    ``embedding`` (L2-normalised mean-pooled token states)."""

    embedding: torch.Tensor
    logits: torch.Tensor


def _dual_encoder(encoder: torch.nn.Module, hidden: int, n_intents: int) -> torch.nn.Module:
    import torch
    from torch.nn import functional

    class DualEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            # A linear head over the *normalised* embedding: initialised from intent centroids
            # it starts as a nearest-centroid classifier (see ``init_head``).
            self.head = torch.nn.Linear(hidden, n_intents)

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> DualOutput:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            embedding = functional.normalize(pooled, p=2.0, dim=-1)
            return DualOutput(embedding, self.head(embedding))

    return DualEncoder()


def load_dual_encoder(spec: str, n_intents: int) -> tuple[torch.nn.Module, Any, list[str]]:
    """The base encoder under a fresh intent head, its tokenizer and the inputs to feed."""
    from transformers import AutoModel, AutoTokenizer

    source = resolve_base_model(spec)
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source)
            encoder = AutoModel.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise BaseModelUnavailable(f"cannot load base model {spec!r} ({source}): {exc}") from exc
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise BaseModelUnavailable(f"base model {spec!r} has no fast (Rust) tokenizer")
    if tokenizer.pad_token_id is None:
        raise BaseModelUnavailable(f"base model {spec!r} has no padding token")
    names = model_input_names(encoder, tokenizer)
    return _dual_encoder(encoder, int(encoder.config.hidden_size), n_intents), tokenizer, names


def contrastive_loss(
    queries: torch.Tensor, replies: torch.Tensor, intents: torch.Tensor
) -> torch.Tensor:
    """Multi-positive InfoNCE: every reply of the query's intent in the batch is a positive."""
    import torch

    scores = SIMILARITY_SCALE * queries @ replies.T
    positive = intents.unsqueeze(1) == intents.unsqueeze(0)
    pos_scores = scores.masked_fill(~positive, float("-inf"))
    loss = torch.logsumexp(scores, dim=1) - torch.logsumexp(pos_scores, dim=1)
    return loss.mean()


def train_dual_encoder(
    base_model: str,
    data: ReplyData,
    hp: Hyperparameters,
    on_progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainedClassifier:
    """Fine-tune ``base_model`` as a dual encoder with an intent head on ``data.train``.

    The result is a ``TrainedClassifier`` whose model returns ``DualOutput`` (so the
    classifier helpers that read ``.logits`` work on it); its labels are the intents.
    ``should_stop`` is polled before every step and raises ``TrainingCancelled``.
    """
    import torch
    from torch.nn import functional

    if not data.train:
        raise InvalidDataset("no training utterances")
    if hp.method != "full":  # not silently ignored: the job fails saying so
        raise InvalidDataset(
            f"hyperparameters.method: reply models train with 'full' only so far, not {hp.method!r}"
        )
    seed_everything(hp.seed)
    intents = data.intent_names
    model, tokenizer, input_names = load_dual_encoder(base_model, len(intents))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    trained = TrainedClassifier(model, tokenizer, intents, hp.max_length, input_names)

    index = {name: i for i, name in enumerate(intents)}
    texts = [u.text for u in data.train]
    targets = torch.tensor([index[u.intent] for u in data.train], dtype=torch.long)
    init_head(trained, texts, targets)
    templates = {name: [humanize(t) for t in data.templates(name)] for name in intents}
    steps_per_epoch = math.ceil(len(texts) / hp.batch_size)
    total_steps = steps_per_epoch * hp.epochs
    head = model.get_submodule("head")
    groups = parameter_groups(model.get_submodule("encoder"), hp.weight_decay)
    # Decay would shrink the centroid-initialised head and with it every confidence.
    groups.append(
        {
            "params": list(head.parameters()),
            "weight_decay": 0.0,
            "lr": hp.learning_rate * HEAD_LR_SCALE,
        }
    )
    loop = OptimizerLoop(model, groups, hp, device, total_steps, on_progress)
    generator = torch.Generator().manual_seed(hp.seed)
    pick = random.Random(hp.seed)  # which template a row without its own reply is paired with

    for epoch in range(1, hp.epochs + 1):
        # Reply targets are stop-gradient, embedded once per epoch in eval mode: on a CPU a
        # forward pass over long replies every step would double the cost of a step, and
        # the shared encoder still moves both sides. The pool holds each distinct reply once.
        pairs = [
            humanize(u.response) if u.response else pick.choice(templates[u.intent])
            for u in data.train
        ]
        pool = list(dict.fromkeys(pairs))
        where = {t: i for i, t in enumerate(pool)}
        reply_bank = torch.from_numpy(predict(trained, pool)[0]).to(device)
        model.train()
        order = torch.randperm(len(texts), generator=generator)
        loop.start_epoch()
        for first in range(0, len(texts), hp.batch_size):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"training stopped at step {loop.step} of {total_steps}")
            rows = order[first : first + hp.batch_size].tolist()
            labels = targets[rows].to(device)
            with loop.autocast():
                query = model(**trained.encode([texts[i] for i in rows]))
            reply_embeddings = reply_bank[[where[pairs[i]] for i in rows]]
            loss = functional.cross_entropy(query.logits.float(), labels)
            loss = loss + CONTRASTIVE_WEIGHT * contrastive_loss(
                query.embedding.float(), reply_embeddings.float(), labels
            )
            loop.update(loss, len(rows), epoch)
    model.eval()
    return trained


def init_head(trained: TrainedClassifier, texts: list[str], targets: torch.Tensor) -> None:
    """Set the head to scaled, normalised intent centroids of the base model's embeddings.

    A random head needs many steps before its gradients say anything useful to the encoder;
    starting from nearest-centroid classification, the first step already does.
    """
    import torch

    embeddings, _ = predict(trained, texts)
    centroids = np.zeros((len(trained.labels), embeddings.shape[1]), dtype=np.float32)
    np.add.at(centroids, targets.numpy(), embeddings)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-9)
    head = trained.model.get_submodule("head")
    with torch.no_grad():
        head.get_parameter("weight").copy_(torch.from_numpy(HEAD_INIT_SCALE * centroids))
        head.get_parameter("bias").zero_()


def predict(
    trained: TrainedClassifier, texts: Sequence[str], batch_size: int = 64
) -> tuple[FloatArray, FloatArray]:
    """``(embeddings, logits)`` as float32 arrays, rows in the order of ``texts``."""
    import torch

    if not texts:
        raise ValueError("nothing to predict")
    # Texts of similar length batched together waste less compute on padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts: list[tuple[FloatArray, FloatArray]] = []
    trained.model.eval()
    with torch.no_grad():
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            out = trained.model(**trained.encode([texts[i] for i in rows]))
            parts.append((out.embedding.float().cpu().numpy(), out.logits.float().cpu().numpy()))
    inverse = np.argsort(np.asarray(order))
    embeddings = np.concatenate([p[0] for p in parts])[inverse]
    logits = np.concatenate([p[1] for p in parts])[inverse]
    return embeddings.astype(np.float32), logits.astype(np.float32)
