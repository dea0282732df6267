"""A fine-tune's pre-flight checks: the task an existing model fixes, files fit for the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.jobs.checks import (
    TaskMismatch,
    UnfitFile,
    check_files,
    model_task,
    resolve_task,
)
from app.jobs.records import FileRecord
from app.jobs.spec import WorkerEvent, WorkerSpec
from app.jobs.worker import EXIT_FAILED, execute
from app.store.versions import ModelStore
from app.training.reply.rows import missing_roles
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model


def record(columns: list[str], labels: dict[str, int], has_header: bool = True) -> FileRecord:
    rows = sum(labels.values())
    return FileRecord(
        id="file-x",
        filename="x.csv",
        purpose="fine-tune",
        bytes=1,
        created_at=0.0,
        format="csv",
        has_header=has_header,
        columns=columns,
        text_column=columns[0],
        label_column=columns[1],
        inferred=[],
        rows=rows,
        rows_read=rows,
        label_counts=labels,
        problems=[],
    )


TWO = {"a": 3, "b": 3}


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


def test_a_reply_file_needs_utterance_intent_and_response_columns() -> None:
    assert missing_roles(["Instruction", "intent", "category", " response "]) == []
    assert missing_roles(["text", "label"]) == ["response"]
    assert missing_roles(["utterance", "response"]) == ["intent"]
    check_files("reply", record(["instruction", "intent", "response"], TWO), None)
    check_files("classification", record(["text", "label"], TWO), None)
    with pytest.raises(UnfitFile, match=r"missing: response \(") as caught:
        check_files("reply", record(["text", "label"], TWO), None)
    assert caught.value.param == "training_file"
    assert caught.value.code == "invalid_dataset"
    # Columns named by the header only: without one, nothing says which column is which.
    with pytest.raises(UnfitFile, match="no header"):
        check_files("reply", record(["column_1", "column_2", "column_3"], TWO, False), None)


def test_labels_and_rows_are_checked_for_every_task() -> None:
    bitext = ["instruction", "intent", "response"]
    with pytest.raises(UnfitFile, match="a reply model needs two intents"):
        check_files("reply", record(bitext, {"track_order": 6}), None)
    with pytest.raises(UnfitFile, match="a classifier needs two"):
        check_files("classification", record(["text", "label"], {"a": 6}), None)
    with pytest.raises(UnfitFile, match="too few rows"):
        check_files("classification", record(["text", "label"], {"a": 1, "b": 1}), None)
    # A validation file for the other task names labels the training file does not have.
    intents = record(bitext, {"track_order": 3, "get_refund": 3})
    sentiment = record(["text", "label"], {"positive": 3, "negative": 3})
    for task, train, valid in (
        ("reply", intents, sentiment),
        ("classification", sentiment, intents),
    ):
        with pytest.raises(UnfitFile, match="labels the training file lacks") as caught:
            check_files(task, train, valid)
        assert caught.value.param == "validation_file"


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
