"""Classification metrics (pure numpy) and batched prediction with a trained or exported model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from app.training.finetune import TrainedClassifier


class LabelMetrics(TypedDict):
    precision: float
    recall: float
    f1: float
    support: int


class ClassificationMetrics(TypedDict):
    accuracy: float
    macro_f1: float
    per_label: dict[str, LabelMetrics]
    confusion_matrix: list[list[int]]  # rows: true label, columns: predicted label
    n: int


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: list[str]
) -> ClassificationMetrics:
    """Accuracy, macro F1, per-label precision/recall/F1/support and the confusion matrix.

    ``y_true`` and ``y_pred`` are indices into ``labels``. A ratio with a zero denominator
    counts as 0. Macro F1 averages over the labels that occur in ``y_true`` or ``y_pred``
    (as scikit-learn does by default): a label absent from both says nothing about the model.
    """
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.ndim != 1 or true.shape != pred.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D and equal in length: {true.shape}, {pred.shape}"
        )
    if true.size == 0:
        raise ValueError("no predictions to score")
    k = len(labels)
    if min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= k:
        raise ValueError(f"label indices must lie in [0, {k})")

    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = (support + predicted) > 0

    return {
        "accuracy": float(tp.sum() / true.size),
        "macro_f1": float(f1[present].mean()),
        "per_label": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion.tolist(),
        "n": int(true.size),
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def predict_logits(
    trained: TrainedClassifier, texts: Sequence[str], batch_size: int = 64
) -> np.ndarray:
    """Logits of shape ``(len(texts), len(labels))`` as float32, in the order of ``texts``."""
    import torch

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    out = np.zeros((len(texts), len(trained.labels)), dtype=np.float32)
    # Batching texts of similar length wastes less compute on padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    trained.model.eval()
    with torch.no_grad():
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            logits = trained.model(**trained.encode([texts[i] for i in rows])).logits
            out[rows] = logits.float().cpu().numpy()
    return out


def onnx_logits(
    model_path: Path,
    tokenizer_path: Path,
    texts: Sequence[str],
    *,
    max_length: int,
    pad_token_id: int,
    batch_size: int = 64,
) -> np.ndarray:
    """Logits of an exported ONNX file on ``texts``, computed the way serving computes them.

    Same runtime, tokenizer file, truncation and padding as ``InferenceEngine``, on the CPU:
    what a variant scores here is what it will score when served.
    """
    from app.runtime.backend import cpu_session, score_texts
    from app.runtime.tokenizer import TextTokenizer

    loaded = cpu_session(model_path)
    tokenizer = TextTokenizer(tokenizer_path, max_length, pad_token_id)
    (logits,) = score_texts(loaded, tokenizer, texts, loaded.output_names[:1], batch_size)
    return np.asarray(logits, dtype=np.float32)
