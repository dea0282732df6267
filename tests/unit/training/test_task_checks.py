"""What each task demands of its uploaded files, checked on the upload's recorded facts."""

from __future__ import annotations

import pytest

from app.jobs.records import FileRecord
from app.training.errors import UnfitFile
from app.training.reply.rows import missing_roles
from app.training.tasks import task_named


def check_files(task: str, train: FileRecord, validation: FileRecord | None) -> None:
    task_named(task).check_files(train, validation)


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
