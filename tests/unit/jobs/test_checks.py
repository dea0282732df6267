"""The task a fine-tune trains: resolved once from the model it names, then guarded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.jobs.checks import TaskMismatch, check_model_task, model_task, resolve_task
from app.jobs.spec import WorkerEvent, WorkerSpec
from app.jobs.worker import EXIT_FAILED, execute
from app.store.versions import ModelStore
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model


def test_the_active_version_decides_a_models_task_else_the_newest(store: ModelStore) -> None:
    assert model_task(store, "nothing") is None
    publish_tiny_reply_model(store, "mixed", activate=False)
    assert model_task(store, "mixed") == "reply"
    # A classifier published under the same name later (the defect this guards against)
    # is the newest; once the reply version is active again, that decides.
    publish_tiny_classifier(store, "mixed")
    assert model_task(store, "mixed") == "classification"
    store.set_active("mixed", 1)
    assert model_task(store, "mixed") == "reply"


def test_resolve_task_takes_the_models_task_and_refuses_another(store: ModelStore) -> None:
    publish_tiny_reply_model(store)
    assert resolve_task(store, "reply", None) == "reply"
    assert resolve_task(store, "reply", "reply") == "reply"
    assert resolve_task(store, "new", None) == "classification"
    assert resolve_task(store, "new", "reply") == "reply"
    with pytest.raises(TaskMismatch, match=r"model 'reply' is a reply model.*not classification"):
        resolve_task(store, "reply", "classification")


def test_the_guard_accepts_the_recorded_task_or_a_model_not_yet_published(
    store: ModelStore,
) -> None:
    publish_tiny_reply_model(store)
    check_model_task(store, "reply", "reply")
    check_model_task(store, "new", "classification")
    with pytest.raises(TaskMismatch, match=r"model 'reply' is a reply model"):
        check_model_task(store, "reply", "classification")


def test_the_worker_refuses_to_train_a_model_of_another_task(
    store: ModelStore, tmp_path: Path
) -> None:
    """The last guard: a job queued while another published its name as the other task."""
    publish_tiny_reply_model(store, "late")
    spec = WorkerSpec(
        job_id="ftjob-x",
        task="classification",
        model="late",
        base_model="packaged",
        hyperparameters={},
        model_store=str(store.root),
        work_dir=str(tmp_path / "work"),
        train_rows=[("good", "pos"), ("bad", "neg")],
    )
    events: list[WorkerEvent] = []
    assert execute(spec, events.append, lambda: False) == EXIT_FAILED
    last: dict[str, Any] = events[-1].model_dump()
    assert (last["type"], last["data"]["code"]) == ("error", "task_mismatch")
    assert store.versions("late") == [1]
