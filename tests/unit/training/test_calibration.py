"""Temperature scaling: an over-confident model's scores become honest, and the exported
graph applies the temperature itself, so serving's soft-max gives the calibrated score."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from app.store.manifest import MODEL_FILE
from app.training.calibration import (
    calibrate,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from app.training.classification.train import train_classifier
from app.training.export import check_parity, export_onnx, serving_outputs
from app.training.finetune import TrainedClassifier
from tests.unit.training.test_training_pipeline import EXAMPLES, HP, LABELS


@pytest.fixture(scope="module")
def trained() -> TrainedClassifier:
    return train_classifier("packaged", EXAMPLES, LABELS, HP)


def _calibrated_rows(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Logits whose soft-max is the true label distribution: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, size=(n, 3))
    probs = softmax(logits)
    truth = [int(rng.choice(3, p=row)) for row in probs]
    return logits, truth


def test_ece_of_known_cases() -> None:
    # Two rows, both 0.9 confident, one right: one bin, gap |0.5 - 0.9| = 0.4.
    probs = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(probs, [0, 1]) == pytest.approx(0.4)
    # Right every time at confidence 1: perfectly calibrated.
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 4), [0] * 4) == 0.0


def test_temperature_undoes_over_confidence() -> None:
    logits, truth = _calibrated_rows(4000, seed=1)
    # The calibrated generator needs no temperature ...
    assert fit_temperature(logits, truth) == pytest.approx(1.0, abs=0.1)
    # ... and the same logits scaled x5 (over-confident) need about 5.
    report = calibrate(logits * 5, truth)
    assert report["temperature"] == pytest.approx(5.0, rel=0.1)
    assert report["ece_before"] > 0.1
    assert report["ece_after"] < report["ece_before"] / 3
    assert report["rows"] == 4000


def test_fit_is_deterministic_and_keeps_the_argmax() -> None:
    logits, truth = _calibrated_rows(500, seed=2)
    assert fit_temperature(logits * 3, truth) == fit_temperature(logits * 3, truth)
    t = fit_temperature(logits * 3, truth)
    assert (softmax(logits * 3, t).argmax(1) == (logits * 3).argmax(1)).all()


def test_exported_scores_are_softmax_of_logits_over_t(
    trained: TrainedClassifier, tmp_path: Path
) -> None:
    texts = [e.text for e in EXAMPLES[:6]]
    scaled = dataclasses.replace(trained, temperature=2.5)
    export_onnx(scaled, tmp_path)
    check_parity(scaled, tmp_path / MODEL_FILE, texts)  # compares against logits / T
    (got,) = serving_outputs(
        tmp_path / MODEL_FILE,
        texts,
        max_length=trained.max_length,
        pad_id=int(trained.tokenizer.pad_token_id),
        outputs=["logits"],
    )
    with torch.no_grad():
        raw = trained.model(**trained.encode(texts)).logits.numpy()
    np.testing.assert_allclose(softmax(got), softmax(raw, 2.5), atol=1e-4)
    assert not np.allclose(softmax(got), softmax(raw), atol=1e-3)
