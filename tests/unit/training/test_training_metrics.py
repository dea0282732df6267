"""Classification metrics against hand-computed values."""

from __future__ import annotations

import pytest

from app.training.evaluate import classification_metrics

LABELS = ["a", "b", "c"]


def test_hand_computed_case() -> None:
    # confusion (rows true, cols predicted): a: [1 1 0], b: [0 2 0], c: [1 0 1]
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], LABELS)

    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    a, b, c = (m["per_label"][k] for k in LABELS)
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == pytest.approx((0.5, 0.5, 0.5, 2))
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx((2 / 3, 1, 0.8, 2))
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((1, 0.5, 2 / 3, 2))
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_perfect_predictions() -> None:
    m = classification_metrics([2, 0, 1, 0], [2, 0, 1, 0], LABELS)

    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == 1.0
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_never_predicted_label_scores_zero_without_dividing_by_zero() -> None:
    m = classification_metrics([0, 1], [0, 0], LABELS)

    assert m["per_label"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_label"]["a"]["precision"] == 0.5
    # "c" occurs in neither list, so it does not drag the macro average down.
    assert m["per_label"]["c"]["support"] == 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [([0, 1], [0]), ([], []), ([0, 3], [0, 1]), ([0, -1], [0, 1])],
    ids=["length-mismatch", "empty", "index-too-large", "negative-index"],
)
def test_bad_input_is_refused(y_true: list[int], y_pred: list[int]) -> None:
    with pytest.raises(ValueError, match=r"."):
        classification_metrics(y_true, y_pred, LABELS)
