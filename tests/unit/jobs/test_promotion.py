"""Promotion rules."""

from __future__ import annotations

from typing import Any

from app.jobs.promotion import decide


def comparison(mine: float, theirs: float) -> dict[str, Any]:
    return {
        "metric": "accuracy",
        "candidate": {"version": 2, "accuracy": mine},
        "active": {"version": 1, "accuracy": theirs},
    }


def test_never_and_always_ignore_the_scores() -> None:
    assert not decide("never", 1, comparison(0.9, 0.1)).promote
    assert decide("always", 1, comparison(0.1, 0.9)).promote


def test_if_better_needs_a_strictly_higher_score() -> None:
    assert decide("if_better", 1, comparison(0.81, 0.80)).promote
    tie = decide("if_better", 1, comparison(0.80, 0.80))
    assert not tie.promote
    assert "does not beat" in tie.reason
    assert not decide("if_better", 1, comparison(0.70, 0.80)).promote


def test_if_better_with_nothing_active_promotes() -> None:
    assert decide("if_better", None, None).promote


def test_if_better_without_a_comparison_keeps_the_active_version() -> None:
    assert not decide("if_better", 1, None).promote


def test_an_active_version_that_cannot_be_scored_is_replaced() -> None:
    broken = {"metric": "accuracy", "candidate": {"accuracy": 0.5}, "active": {"error": "corrupt"}}
    assert decide("if_better", 1, broken).promote


def test_if_better_never_promotes_another_label_set() -> None:
    differ = {"metric": "accuracy", "labels_differ": {"active": ["neg", "pos"], "candidate": ["0"]}}
    decision = decide("if_better", 1, differ)
    assert not decision.promote
    assert "promote it explicitly" in decision.reason
    assert decide("always", 1, differ).promote  # asked for in so many words
