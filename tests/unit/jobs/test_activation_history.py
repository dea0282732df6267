"""The store's activation history and the rollback target it gives."""

from __future__ import annotations

from app.store.versions import ModelStore
from tests.support.tiny_model import publish_tiny_classifier


def test_rollback_steps_back_through_history_not_back_and_forth(store: ModelStore) -> None:
    for seed in range(3):
        publish_tiny_classifier(store, seed=seed, activate=False)
    assert store.rollback_target("sentiment") is None
    store.set_active("sentiment", 1)
    store.set_active("sentiment", 2, reason="promote")
    store.set_active("sentiment", 3, reason="fine-tune ftjob-x")
    assert [e["version"] for e in store.history("sentiment")] == [1, 2, 3]
    assert store.rollback_target("sentiment") == 2
    store.set_active("sentiment", 2, reason="rollback")
    assert store.rollback_target("sentiment") == 1
    store.set_active("sentiment", 1, reason="rollback")
    assert store.rollback_target("sentiment") is None


def test_a_pointer_set_before_history_was_kept_still_rolls_back(store: ModelStore) -> None:
    publish_tiny_classifier(store, seed=1)  # activates v1 (recorded)
    publish_tiny_classifier(store, seed=2, activate=False)
    (store.root / "sentiment" / "active").write_text("2\n")  # moved by hand
    assert store.rollback_target("sentiment") == 1


def test_a_torn_history_line_is_skipped(store: ModelStore) -> None:
    publish_tiny_classifier(store, seed=1)
    with (store.root / "sentiment" / "history.jsonl").open("a") as fh:
        fh.write('{"version": 2, "at"')
    assert [e["version"] for e in store.history("sentiment")] == [1]
