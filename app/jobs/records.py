"""What the job store holds: uploaded files, fine-tune jobs and their events."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobState = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATES: tuple[JobState, ...] = (
    "validating_files", "queued", "running", "succeeded", "failed", "cancelled",
)  # fmt: skip
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
Promote = Literal["never", "if_better", "always"]


class FileRecord(BaseModel):
    """An uploaded, validated data set. Its rows live in ``<data_dir>/files/<id>.jsonl``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: float
    format: str
    has_header: bool
    columns: list[str]
    text_column: str
    label_column: str
    inferred: list[str]
    rows: int
    rows_read: int
    label_counts: dict[str, int]
    problems: list[dict[str, Any]]


class JobError(BaseModel):
    code: str
    message: str


class JobRecord(BaseModel):
    """A fine-tune job as stored; ``progress`` and ``result`` are filled in as it runs."""

    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: str
    model: str
    task: str
    training_file: str
    validation_file: str | None
    base_model: str
    hyperparameters: dict[str, Any]
    resources: dict[str, Any] = Field(default_factory=dict)
    promote: Promote
    state: JobState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: JobError | None = None
    progress: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] = Field(default_factory=dict)
    runner: str | None = None
    owner: str | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


class EventRecord(BaseModel):
    """One line of a job's log: a state change, a stage, progress, metrics or a message."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: str
    created_at: float
    level: Literal["info", "warning", "error"]
    type: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
