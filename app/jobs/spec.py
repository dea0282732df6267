"""What a runner hands to a worker, and what a worker reports back.

Both sides of the process (or Ray) boundary speak these types, serialised as JSON, so the
local runner and the Ray runner produce exactly the same events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.training.data import Example
from app.training.task import Report, ReportKind


class WorkerSpec(BaseModel):
    """Everything a worker needs to run one job, without access to the job database."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: str
    task: str
    model: str
    base_model: str
    hyperparameters: dict[str, Any]
    model_store: str  # the store root the worker publishes into (a shared volume on a cluster)
    work_dir: str  # scratch space; removed by the runner when the job ends
    train_path: str | None = None  # JSON lines of {"text", "label"} (local runner)
    validation_path: str | None = None
    # The upload as it came (all its columns), for trainers that need more than text and
    # label; readable where the data folder is (local runner, shared volume).
    train_source_path: str | None = None
    # The Ray runner ships the rows themselves: a remote node may not see the data folder.
    train_rows: list[tuple[str, str]] | None = None
    validation_rows: list[tuple[str, str]] | None = None
    eval_fraction: float = Field(0.1, gt=0, lt=1)
    compare_with_active: bool = True
    resources: dict[str, Any] = Field(default_factory=dict)  # {"cpus": 1, "gpus": 0} for Ray
    job_meta: dict[str, Any] = Field(default_factory=dict)


EventType = Literal["stage", "progress", "message", "comparison", "result", "error"]


class WorkerEvent(BaseModel):
    """One report from a worker. ``result`` and ``error`` are the last event of a run."""

    type: EventType
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


def examples_from_rows(rows: list[tuple[str, str]]) -> list[Example]:
    return [Example(text=t, label=lab) for t, lab in rows]


def report_to(emit: Callable[[WorkerEvent], None]) -> Report:
    """A task's ``report`` that sends each report on as a ``WorkerEvent``."""

    def report(kind: ReportKind, message: str, data: dict[str, Any]) -> None:
        emit(WorkerEvent(type=kind, message=message, data=data))

    return report
