"""Class probabilities: the plain-Python path for small outputs agrees with NumPy's."""

from __future__ import annotations

import numpy as np
import pytest

from app.serving.classifier import SMALL_SOFTMAX, probabilities, softmax


@pytest.mark.parametrize("shape", [(1, 2), (1, 4), (3, 7), (16, 4), (32, 2), (40, 4), (1, 300)])
def test_matches_numpy_softmax_on_both_paths(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    logits = (rng.normal(size=shape) * 8).astype(np.float32)
    got = probabilities(logits)
    want = softmax(logits.astype(np.float64))
    assert isinstance(got, list) and all(isinstance(p, float) for row in got for p in row)
    np.testing.assert_allclose(np.array(got), want, rtol=1e-12, atol=1e-15)
    assert [max(range(len(r)), key=r.__getitem__) for r in got] == want.argmax(axis=1).tolist()


def test_extreme_logits_neither_overflow_nor_lose_the_winner() -> None:
    logits = np.array([[1e4, -1e4], [-80.0, 80.0], [0.0, 0.0]], dtype=np.float32)
    assert logits.size <= SMALL_SOFTMAX
    got = probabilities(logits)
    assert got == [[1.0, 0.0], pytest.approx([0.0, 1.0]), [0.5, 0.5]]
    assert all(abs(sum(row) - 1.0) < 1e-12 for row in got)
