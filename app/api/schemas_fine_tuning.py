"""Answers of OpenAI's fine-tuning API (``/v1/fine_tuning/jobs``) over textserve's jobs.

Shaped as the official ``openai`` package reads them (``FineTuningJob``,
``FineTuningJobEvent``, ``FineTuningJobCheckpoint``); the same jobs are served by
``/v1/fine-tunes`` with textserve's own fields. What OpenAI has and textserve has not is
listed in docs/api-fine-tuning-openai.md; the create body is in schemas_fine_tuning_create.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.errors import InvalidInput
from app.api.schemas_fine_tuning_create import BASE_LEARNING_RATE
from app.jobs.records import EventRecord, JobRecord, JobState
from app.training.finetune import Hyperparameters

ORGANIZATION = "textserve"


class FineTuningHyperparameters(BaseModel):
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float


class SupervisedMethodView(BaseModel):
    hyperparameters: FineTuningHyperparameters


class FineTuningMethodView(BaseModel):
    type: Literal["supervised"] = "supervised"
    supervised: SupervisedMethodView


class FineTuningError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningExtensionView(BaseModel):
    """Response extension ``textserve``: the job as /v1/fine-tunes shows it, in brief."""

    task: str
    base_model: str
    promote: str
    hyperparameters: dict[str, Any] = Field(description="All of textserve's, as trained.")
    version: int | None = Field(description="The version published, once done.")
    progress: dict[str, Any]
    result: dict[str, Any] = Field(description="metrics, comparison, promotion.")


class FineTuningJob(BaseModel):
    """OpenAI's ``fine_tuning.job`` for a textserve job (created by either API)."""

    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: FineTuningError | None
    fine_tuned_model: str | None = Field(description="`name@version`: a `model` to call.")
    finished_at: int | None
    hyperparameters: FineTuningHyperparameters
    model: str
    organization_id: str = ORGANIZATION
    result_files: list[str] = Field(default_factory=list)
    seed: int
    status: JobState
    trained_tokens: int | None = Field(None, description="Not counted: always null.")
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: FineTuningMethodView
    textserve: FineTuningExtensionView

    @classmethod
    def of(cls, r: JobRecord) -> FineTuningJob:
        defaults = Hyperparameters()
        hp = {**defaults.model_dump(), **r.hyperparameters}
        shown = FineTuningHyperparameters(
            n_epochs=hp["epochs"],
            batch_size=hp["batch_size"],
            learning_rate_multiplier=hp["learning_rate"] / BASE_LEARNING_RATE,
        )
        version = r.result.get("version")
        eta = r.progress.get("eta_seconds")
        return cls(
            id=r.id,
            created_at=int(r.created_at),
            error=FineTuningError(code=r.error.code, message=r.error.message) if r.error else None,
            fine_tuned_model=f"{r.model}@{version}" if version is not None else None,
            finished_at=None if r.finished_at is None else int(r.finished_at),
            hyperparameters=shown,
            model=r.model,
            seed=hp["seed"],
            status=r.state,
            training_file=r.training_file,
            validation_file=r.validation_file,
            estimated_finish=(
                int(time.time() + eta) if r.state == "running" and eta is not None else None
            ),
            method=FineTuningMethodView(supervised=SupervisedMethodView(hyperparameters=shown)),
            textserve=FineTuningExtensionView(
                task=r.task,
                base_model=r.base_model,
                promote=r.promote,
                hyperparameters=hp,
                version=version,
                progress=r.progress,
                result=r.result,
            ),
        )


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


EVENT_PREFIX = "ftevent-"


class FineTuningJobEvent(BaseModel):
    """OpenAI's ``fine_tuning.job.event``; ``data.textserve_type`` keeps textserve's type."""

    id: str = Field(description="`ftevent-<n>`; pass it as `after` for the next page.")
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict[str, Any]
    type: Literal["message", "metrics"]

    @classmethod
    def of(cls, e: EventRecord) -> FineTuningJobEvent:
        return cls(
            id=f"{EVENT_PREFIX}{e.id}",
            created_at=int(e.created_at),
            level="warn" if e.level == "warning" else e.level,
            message=e.message,
            data={**e.data, "textserve_type": e.type},
            type="metrics" if e.type in ("progress", "metrics") else "message",
        )


def event_cursor(after: str | None) -> int | None:
    """The event id in an ``after`` cursor (``ftevent-<n>``, or plain ``<n>``)."""
    if after is None:
        return None
    digits = after.removeprefix(EVENT_PREFIX)
    # Bounded: the store's ids are 64-bit integers.
    if not digits.isascii() or not digits.isdigit() or int(digits) > 2**63 - 1:
        raise InvalidInput("after", f"expected an event id such as {EVENT_PREFIX}12")
    return int(digits)


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class FineTuningCheckpointMetrics(BaseModel):
    """Only what a classification fine-tune measures on OpenAI's scale: step and loss."""

    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    """The version a job published: textserve keeps no intermediate checkpoints."""

    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str = Field(description="`name@version`: a `model` to call.")
    fine_tuning_job_id: str
    metrics: FineTuningCheckpointMetrics
    step_number: int

    @classmethod
    def of(cls, r: JobRecord) -> FineTuningJobCheckpoint | None:
        """The job's published version, or None before one is."""
        version = r.result.get("version")
        if version is None:
            return None
        step = r.progress.get("step") or r.progress.get("total_steps") or 0
        return cls(
            id=checkpoint_id(r.id),
            created_at=int(r.finished_at or r.created_at),
            fine_tuned_model_checkpoint=f"{r.model}@{version}",
            fine_tuning_job_id=r.id,
            metrics=FineTuningCheckpointMetrics(step=step, train_loss=r.progress.get("loss")),
            step_number=int(step),
        )


def checkpoint_id(job_id: str) -> str:
    return f"ftckpt-{job_id.removeprefix('ftjob-')}"


class FineTuningCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
