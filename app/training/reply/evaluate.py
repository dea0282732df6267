"""Reply-model metrics on held-out utterances (pure numpy, so they are tested without torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from app.training.evaluate import classification_metrics


def reply_metrics(
    y_true: Sequence[int],
    probs: npt.NDArray[np.floating[Any]],
    intents: list[str],
    handoff_intents: set[str],
    low_confidence: float,
    retrieved: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Intent accuracy, macro-F1 (and the rest of ``classification_metrics``), top-3 accuracy,
    and the handoff rate at ``low_confidence``. ``probs`` are the served intent probabilities
    (``app.store.bank.intent_probabilities``: rows may sum to less than one).

    ``handoff_rate`` is the share of utterances the served model would hand to a person on its
    own (top intent below ``low_confidence``, or a handoff intent predicted);
    ``low_confidence_rate`` counts the first reason alone. ``retrieved`` (intent indices of the
    nearest bank template) adds ``retrieval_accuracy``: how well the embedding alone ranks.
    """
    true = np.asarray(y_true, dtype=np.int64)
    predicted = probs.argmax(axis=1)
    metrics: dict[str, Any] = dict(
        classification_metrics(true.tolist(), predicted.tolist(), intents)
    )
    k = min(3, len(intents))
    top_k = np.argsort(-probs, axis=1)[:, :k]
    confidence = probs.max(axis=1)
    low = confidence < low_confidence
    asks_human = np.array([intents[i] in handoff_intents for i in predicted], dtype=bool)
    metrics["top3_accuracy"] = float((top_k == true[:, None]).any(axis=1).mean())
    metrics["low_confidence_rate"] = float(low.mean())
    metrics["handoff_rate"] = float((low | asks_human).mean())
    metrics["handoff_threshold"] = low_confidence
    metrics["mean_confidence"] = float(confidence.mean())
    if retrieved is not None:
        metrics["retrieval_accuracy"] = float((np.asarray(retrieved) == true).mean())
    return metrics


def nearest_template_intents(
    embeddings: npt.NDArray[np.float32],
    bank: npt.NDArray[np.float32],
    template_intents: Sequence[int],
) -> list[int]:
    """For each embedding, the intent index of its most similar bank template."""
    best = (embeddings @ bank.T).argmax(axis=1)
    lookup = np.asarray(template_intents, dtype=np.int64)
    return [int(i) for i in lookup[best]]
