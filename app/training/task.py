"""The one shape every fine-tune task has, as the job service sees it.

A task (``classification/``, ``reply/``, ...) is an object with two methods:

- ``check_files(train, validation)``: refuse uploads that cannot train it. Cheap: it reads
  only what was recorded when the files were uploaded. Runs when a job is created and again
  when its files are validated.
- ``run(ctx)``: the job entry, inside the worker process. It trains, evaluates, exports,
  publishes a version (never activating it: promotion is the job service's decision) and
  returns a ``TaskResult``. It reports through ``ctx`` and polls ``ctx.should_stop``.

The job service knows tasks only through the dict in ``app.training.tasks``. Modules that
define task objects must import cheaply (torch and transformers inside the functions that
train): the serving process imports them and its image has no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Protocol, TypedDict

from app.store.versions import ModelStore
from app.training.data import Example
from app.training.finetune import TrainProgress

# What a task may report while it runs; the worker turns each into one event of the job.
ReportKind = Literal["stage", "progress", "message", "comparison"]
Report = Callable[[ReportKind, str, dict[str, Any]], None]


class TaskSpec(Protocol):
    """The job as a task sees it (the worker's spec has more: paths, resources)."""

    @property
    def job_id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def base_model(self) -> str: ...
    @property
    def hyperparameters(self) -> dict[str, Any]: ...
    @property
    def eval_fraction(self) -> float: ...
    @property
    def compare_with_active(self) -> bool: ...
    @property
    def train_source_path(self) -> str | None: ...
    @property
    def job_meta(self) -> dict[str, Any]: ...


class UploadFacts(Protocol):
    """What was recorded about an uploaded file when it was parsed: all a data check reads."""

    @property
    def id(self) -> str: ...
    @property
    def rows(self) -> int: ...
    @property
    def has_header(self) -> bool: ...
    @property
    def columns(self) -> list[str]: ...
    @property
    def label_column(self) -> str: ...
    @property
    def label_counts(self) -> dict[str, int]: ...


@dataclass
class TaskContext:
    """What a task's job entry gets: the job, the store, its rows and the ways to report."""

    spec: TaskSpec
    store: ModelStore
    train: list[Example]
    validation: list[Example] | None  # None: the task holds some of ``train`` out itself
    report: Report
    should_stop: Callable[[], bool]

    def stage(self, name: str) -> None:
        self.report("stage", name, {"stage": name})

    def progress(self, p: TrainProgress) -> None:
        self.report(
            "progress",
            "",
            {
                "step": p.step,
                "total_steps": p.total_steps,
                "epoch": p.epoch,
                "loss": p.loss,
                "samples_per_second": p.samples_per_second,
                "eta_seconds": p.eta_seconds,
            },
        )

    def message(self, text: str, **data: Any) -> None:
        self.report("message", text, data)

    def comparison(self, data: dict[str, Any]) -> None:
        """The candidate and the active version scored on the same rows (or why not)."""
        self.report("comparison", "", data)


class TaskResult(TypedDict):
    """What ``run`` returns: the published version and its metrics.

    ``comparison`` (when the task scored the active version on the same validation rows)
    is what ``promote: if_better`` decides on: ``{"metric", "candidate": {...}, "active":
    {...}}``, or ``{"metric", "labels_differ": {...}}`` when the two cannot be compared.
    """

    version: int
    metrics: dict[str, Any]
    validation_rows: int
    comparison: NotRequired[dict[str, Any]]
    # The manifest's ``training``: method, trainable_parameters, samples_per_second, peak memory.
    training: NotRequired[dict[str, Any]]


class Task(Protocol):
    """One kind of model a fine-tune job can train."""

    def check_files(self, train: UploadFacts, validation: UploadFacts | None) -> None:
        """Raise ``UnfitFile`` (naming the request field) unless the files can train this."""
        ...

    def run(self, ctx: TaskContext) -> TaskResult:
        """Train, evaluate, export and publish one version (inactive); return the result."""
        ...
