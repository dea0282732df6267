"""Ranking scores in Python must agree with NumPy's argmax and stable argsort."""

from __future__ import annotations

import random

import numpy as np
import pytest

from app.serving.ranking import best, ranked


@pytest.mark.parametrize("seed", range(5))
def test_ranking_matches_numpy_on_random_rows(seed: int) -> None:
    rng = random.Random(seed)
    for size in (1, 2, 3, 7, 77, 300):
        # Few distinct values, so that ties are common and their order is checked too.
        row = [rng.choice([0.1, 0.25, 0.5, 0.9]) * rng.choice([1.0, 1.0, 2.0]) for _ in range(size)]
        arr = np.asarray(row)
        assert best(row) == int(arr.argmax())
        assert ranked(row) == np.argsort(-arr, kind="stable").tolist()
        assert ranked(row, 3) == np.argsort(-arr, kind="stable")[:3].tolist()


def test_equal_scores_rank_in_index_order() -> None:
    assert best([0.5, 0.5]) == 0
    assert ranked([0.2, 0.5, 0.5, 0.1]) == [1, 2, 0, 3]
