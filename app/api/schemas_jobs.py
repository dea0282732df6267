"""Wire types of the admin API: files, fine-tune jobs and their events, promote/rollback.

Shaped after the best-known public fine-tuning API (``object`` tags, ``status``,
``fine_tuned_model``, cursor pagination with ``after`` / ``has_more``), with textserve's
own fields beside the standard ones.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.records import EventRecord, FileRecord, JobRecord
from app.training.finetune import Hyperparameters


class FileProblem(BaseModel):
    kind: str = Field(description="empty_text, empty_label, few_rows_for_label, ...")
    message: str
    count: int
    lines: list[int] = Field(description="First lines where it occurs (1-based), if per row.")


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    format: str = Field(description="csv, tsv or jsonl")
    has_header: bool
    columns: list[str]
    text_column: str
    label_column: str
    inferred_columns: list[str] = Field(description="Which of the two columns were inferred.")
    rows: int = Field(description="Usable rows kept.")
    rows_read: int
    rows_dropped: int
    label_counts: dict[str, int]
    problems: list[FileProblem]

    @classmethod
    def of(cls, r: FileRecord) -> FileObject:
        return cls(
            id=r.id,
            bytes=r.bytes,
            created_at=int(r.created_at),
            filename=r.filename,
            purpose=r.purpose,
            format=r.format,
            has_header=r.has_header,
            columns=r.columns,
            text_column=r.text_column,
            label_column=r.label_column,
            inferred_columns=r.inferred,
            rows=r.rows,
            rows_read=r.rows_read,
            rows_dropped=r.rows_read - r.rows,
            label_counts=r.label_counts,
            problems=[FileProblem(**p) for p in r.problems],
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class StrictHyperparameters(Hyperparameters):
    """``Hyperparameters`` as a request reads them: ``"epochs": "3"`` is refused (422 naming
    the field), not coerced. The training code keeps its own lax reading of stored specs."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, title="Hyperparameters")


class Resources(BaseModel):
    """What a job asks of the Ray cluster (the local runner runs one job per process)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cpus: float = Field(1.0, gt=0, le=256)
    gpus: float = Field(0.0, ge=0, le=16)


class FineTuneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)

    model: str = Field(description="Name to publish under; a new name creates a new model.")
    task: Literal["classification", "reply"] | None = Field(
        None,
        description="What to train: default the existing model's task, else classification; "
        "another task than the existing model's is refused (409).",
    )
    training_file: str = Field(description="Id of an uploaded file.")
    validation_file: str | None = Field(
        None, description="Id of an uploaded file; else 10 % of training rows, stratified."
    )
    base_model: str = Field(
        "packaged", description="'packaged' (all-MiniLM-L6-v2), a local folder or a hub id."
    )
    hyperparameters: StrictHyperparameters = Field(default_factory=StrictHyperparameters)
    promote: Literal["never", "if_better", "always"] = "if_better"
    resources: Resources = Field(default_factory=Resources)


class JobProgress(BaseModel):
    stage: str | None = None
    step: int | None = None
    total_steps: int | None = None
    epoch: int | None = None
    loss: float | None = None
    samples_per_second: float | None = None
    eta_seconds: float | None = None
    worker_id: str | None = Field(None, description="`pid:N` (local) or `ray:<task id>`.")


class JobErrorBody(BaseModel):
    code: str
    message: str


class FineTuneJob(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    model: str
    task: str
    status: str
    created_at: int
    started_at: int | None
    finished_at: int | None
    training_file: str
    validation_file: str | None
    base_model: str
    hyperparameters: dict[str, Any]
    promote: str
    resources: dict[str, Any]
    fine_tuned_model: str | None = Field(description="`name@version` once published.")
    progress: JobProgress
    result: dict[str, Any] = Field(description="version, metrics, comparison, promotion.")
    error: JobErrorBody | None
    runner: str | None
    cancel_requested: bool

    @classmethod
    def of(cls, r: JobRecord) -> FineTuneJob:
        version = r.result.get("version")
        return cls(
            id=r.id,
            model=r.model,
            task=r.task,
            status=r.state,
            created_at=int(r.created_at),
            started_at=None if r.started_at is None else int(r.started_at),
            finished_at=None if r.finished_at is None else int(r.finished_at),
            training_file=r.training_file,
            validation_file=r.validation_file,
            base_model=r.base_model,
            hyperparameters=r.hyperparameters,
            promote=r.promote,
            resources=r.resources,
            fine_tuned_model=f"{r.model}@{version}" if version is not None else None,
            progress=JobProgress.model_validate(
                {k: v for k, v in r.progress.items() if k in JobProgress.model_fields}
            ),
            result=r.result,
            error=JobErrorBody(**r.error.model_dump()) if r.error else None,
            runner=r.runner,
            cancel_requested=r.cancel_requested,
        )


class FineTuneList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuneJob]
    has_more: bool


class FineTuneEvent(BaseModel):
    id: int
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: float
    level: str
    type: str = Field(description="state, stage, progress, metrics or message")
    message: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: EventRecord) -> FineTuneEvent:
        return cls(
            id=e.id,
            created_at=e.created_at,
            level=e.level,
            type=e.type,
            message=e.message,
            data=e.data,
        )


class FineTuneEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuneEvent]
    has_more: bool


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: int = Field(ge=1)


class Activation(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    active_version: int
    previous_version: int | None
    loaded_version: int | None = Field(description="What this replica serves now.")
