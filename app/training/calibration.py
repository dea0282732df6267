"""Temperature scaling: make a classifier's ``score`` mean probability.

A fine-tuned encoder is usually over-confident: its soft-max says 0.99 where it is right
nine times in ten. One scalar ``T`` fitted on held-out rows (logits divided by ``T`` before
the soft-max) fixes most of that without moving any arg-max, so accuracy is unchanged. The
export folds ``T`` into the graph, so serving pays nothing for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt

ECE_BINS = 15
# Search range for T: below 0.05 or above 20 the model was broken, not mis-calibrated.
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))
_SEARCH_STEPS = 60  # golden-section steps: the bracket shrinks to ~1e-12 of its width


class Calibration(TypedDict):
    temperature: float
    ece_before: float
    ece_after: float
    rows: int


def softmax(logits: npt.NDArray[np.floating], temperature: float = 1.0) -> npt.NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def expected_calibration_error(
    probs: npt.NDArray[np.floating], truth: Sequence[int], bins: int = ECE_BINS
) -> float:
    """ECE: over ``bins`` equal-width confidence bins, the row-weighted mean gap between the
    top score and the accuracy of the rows whose top score falls in the bin."""
    p = np.asarray(probs, dtype=np.float64)
    if len(p) == 0:
        return 0.0
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(truth)).astype(np.float64)
    # Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 cannot occur.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(p))


def _nll(logits: npt.NDArray[np.float64], truth: npt.NDArray[np.int64], t: float) -> float:
    z = logits / t
    top = z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
    return float((log_norm - z[np.arange(len(z)), truth]).mean())


def fit_temperature(logits: npt.NDArray[np.floating], truth: Sequence[int]) -> float:
    """The ``T > 0`` minimising the mean negative log-likelihood of ``truth`` under
    ``softmax(logits / T)``. The NLL is convex in ``1/T``, hence unimodal in ``log T``, so a
    golden-section search finds it deterministically without gradients."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(truth, dtype=np.int64)
    if len(z) == 0:
        return 1.0
    lo, hi = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll(z, y, math.exp(a)), _nll(z, y, math.exp(b))
    for _ in range(_SEARCH_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _nll(z, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll(z, y, math.exp(b))
    return math.exp((lo + hi) / 2)


def calibrate(logits: npt.NDArray[np.floating], truth: Sequence[int]) -> Calibration:
    """Fit ``T`` on held-out ``logits`` and report the ECE before and after, for the manifest.

    With no rows there is nothing to fit: ``T`` stays 1."""
    t = fit_temperature(logits, truth)
    return {
        "temperature": round(t, 6),
        "ece_before": round(expected_calibration_error(softmax(logits), truth), 6),
        "ece_after": round(expected_calibration_error(softmax(logits, t), truth), 6),
        "rows": len(truth),
    }
