"""textserve's jobs, events and versions, read back through the official openai types."""

from __future__ import annotations

import time

import pytest
from openai.types.fine_tuning import FineTuningJob as SdkJob
from openai.types.fine_tuning import FineTuningJobEvent as SdkEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint as SdkCheckpoint

from app.api.errors import InvalidInput
from app.api.schemas_fine_tuning import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    event_cursor,
)
from app.jobs.records import EventRecord, JobError, JobRecord


def job(**fields: object) -> JobRecord:
    base: dict[str, object] = {
        "id": "ftjob-abc",
        "model": "sentiment",
        "task": "classification",
        "training_file": "file-1",
        "validation_file": None,
        "base_model": "packaged",
        "hyperparameters": {"epochs": 2, "learning_rate": 1e-4, "batch_size": 8, "seed": 7},
        "promote": "if_better",
        "state": "running",
        "created_at": 1_700_000_000.5,
    }
    return JobRecord.model_validate({**base, **fields})


def test_a_running_job_reads_as_openai_s_job_with_an_estimated_finish() -> None:
    record = job(progress={"step": 1, "total_steps": 4, "eta_seconds": 30.0})
    sdk = SdkJob.model_validate(FineTuningJob.of(record).model_dump(mode="json"))
    assert (sdk.status, sdk.model, sdk.seed, sdk.fine_tuned_model) == (
        "running", "sentiment", 7, None,
    )  # fmt: skip
    assert (sdk.hyperparameters.n_epochs, sdk.hyperparameters.batch_size) == (2, 8)
    assert sdk.hyperparameters.learning_rate_multiplier == pytest.approx(2.0)
    assert sdk.estimated_finish is not None
    assert abs(sdk.estimated_finish - (time.time() + 30)) < 5
    assert sdk.created_at == 1_700_000_000


def test_ended_jobs_carry_their_model_name_or_their_error() -> None:
    done = job(state="succeeded", finished_at=1_700_000_100.0, result={"version": 3})
    sdk = SdkJob.model_validate(FineTuningJob.of(done).model_dump(mode="json"))
    assert (sdk.fine_tuned_model, sdk.finished_at, sdk.estimated_finish) == (
        "sentiment@3", 1_700_000_100, None,
    )  # fmt: skip
    failed = job(state="failed", error=JobError(code="worker_crashed", message="exit 1"))
    sdk = SdkJob.model_validate(FineTuningJob.of(failed).model_dump(mode="json"))
    assert sdk.error is not None
    assert (sdk.error.code, sdk.error.message) == ("worker_crashed", "exit 1")


def test_events_use_openai_s_levels_and_types() -> None:
    progress = EventRecord(
        id=12, job_id="ftjob-abc", created_at=5.9, level="warning", type="progress",
        message="step 1/4", data={"step": 1},
    )  # fmt: skip
    sdk = SdkEvent.model_validate(FineTuningJobEvent.of(progress).model_dump(mode="json"))
    assert (sdk.id, sdk.level, sdk.type, sdk.created_at) == ("ftevent-12", "warn", "metrics", 5)
    assert sdk.data == {"step": 1, "textserve_type": "progress"}
    state = progress.model_copy(update={"type": "state", "level": "info"})
    assert FineTuningJobEvent.of(state).type == "message"
    assert event_cursor(sdk.id) == event_cursor("12") == 12


@pytest.mark.parametrize("cursor", ["ftevent-", "ftevent--1", "x12", "١٢", str(2**63)])
def test_an_event_cursor_is_a_bounded_event_id(cursor: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        event_cursor(cursor)
    assert refused.value.param == "after"


def test_the_published_version_is_the_one_checkpoint() -> None:
    assert FineTuningJobCheckpoint.of(job()) is None
    done = job(
        state="succeeded",
        finished_at=1_700_000_100.0,
        result={"version": 3},
        progress={"step": 4, "total_steps": 4, "loss": 0.25},
    )
    checkpoint = FineTuningJobCheckpoint.of(done)
    assert checkpoint is not None
    sdk = SdkCheckpoint.model_validate(checkpoint.model_dump(mode="json"))
    assert (sdk.fine_tuned_model_checkpoint, sdk.fine_tuning_job_id) == ("sentiment@3", done.id)
    assert (sdk.step_number, sdk.metrics.train_loss, sdk.created_at) == (4, 0.25, 1_700_000_100)
