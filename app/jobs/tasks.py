"""What each fine-tune ``task`` trains, behind one small hook.

A task is a function ``(TrainContext) -> dict`` run inside the worker process: it trains,
publishes a version (never activating it: promotion is the service's decision) and returns
the result, at least ``{"version": N, "metrics": {...}}``, plus ``comparison`` when it
scored the active version on the same validation rows.

``classification`` is built in. ``reply`` plugs in when ``app.training.reply`` exists and
defines ``train_reply_job(ctx: TrainContext) -> dict``; until then the API answers 422.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import TaskNotAvailable
from app.jobs.spec import WorkerEvent, WorkerSpec
from app.store.versions import ModelStore
from app.training.data import Example
from app.training.finetune import TrainProgress

log = logging.getLogger(__name__)

TASKS = ("classification", "reply")
REPLY_MODULE = "app.training.reply"
REPLY_ENTRY = "train_reply_job"


@dataclass
class TrainContext:
    """What a task trainer gets: the job, the store, its rows and the ways to report."""

    spec: WorkerSpec
    store: ModelStore
    train: list[Example]
    validation: list[Example] | None  # None: the trainer splits ``train`` itself
    emit: Callable[[WorkerEvent], None]
    should_stop: Callable[[], bool]

    def stage(self, name: str) -> None:
        self.emit(WorkerEvent(type="stage", message=name, data={"stage": name}))

    def progress(self, p: TrainProgress) -> None:
        """Report training progress (trainers outside this package, e.g. reply, call it)."""
        self.emit(
            WorkerEvent(
                type="progress",
                data={
                    "step": p.step,
                    "total_steps": p.total_steps,
                    "epoch": p.epoch,
                    "loss": p.loss,
                    "samples_per_second": p.samples_per_second,
                    "eta_seconds": p.eta_seconds,
                },
            )
        )


Trainer = Callable[[TrainContext], dict[str, Any]]


def check_task(task: str) -> None:
    """Raise ``TaskNotAvailable`` unless this installation can train ``task``."""
    if task == "classification":
        return
    if task == "reply":
        if _reply_entry() is None:
            raise TaskNotAvailable("task 'reply' is not available yet in this installation")
        return
    raise TaskNotAvailable(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")


def _reply_entry() -> Trainer | None:
    # The package imports torch lazily, so looking for the entry point stays cheap.
    if importlib.util.find_spec(REPLY_MODULE) is None:
        return None
    entry: Trainer | None = getattr(importlib.import_module(REPLY_MODULE), REPLY_ENTRY, None)
    return entry


def trainer_for(task: str) -> Trainer:
    check_task(task)
    if task == "reply":
        entry = _reply_entry()
        assert entry is not None  # check_task said so
        return entry
    return train_classification


def train_classification(ctx: TrainContext) -> dict[str, Any]:
    """Fine-tune a classifier, publish it inactive, and score the active version alike."""
    from app.jobs.compare import score_version
    from app.training.data import stratified_split
    from app.training.finetune import Hyperparameters
    from app.training.pipeline import build_classifier

    spec = ctx.spec
    hp = Hyperparameters(**spec.hyperparameters)
    train, validation = ctx.train, ctx.validation
    if validation is None:
        train, validation = stratified_split(train, spec.eval_fraction, hp.seed)
        ctx.emit(
            WorkerEvent(
                type="message",
                message=f"held out {len(validation)} of {len(ctx.train)} rows for validation "
                "(stratified by label)",
                data={"train_rows": len(train), "validation_rows": len(validation)},
            )
        )
    labels = sorted({e.label for e in train})

    manifest = build_classifier(
        ctx.store,
        name=spec.model,
        labels=labels,
        train=train,
        eval=validation,
        base_model=spec.base_model,
        hp=hp,
        recipe={"source": "fine-tune", **spec.job_meta, "hyperparameters": hp.model_dump()},
        on_progress=ctx.progress,
        should_stop=ctx.should_stop,
        on_stage=ctx.stage,
        activate=False,
    )
    result: dict[str, Any] = {
        "version": manifest.version,
        "metrics": manifest.metrics,
        "validation_rows": len(validation),
    }
    active = ctx.store.active_version(spec.model)
    serving = None if active is None else ctx.store.read_manifest(spec.model, active).labels
    if spec.compare_with_active and active is not None and serving != labels:
        # Another label set is another contract for every client: no score decides that.
        result["comparison"] = {
            "metric": "accuracy",
            "labels_differ": {"active": serving, "candidate": labels},
        }
        ctx.emit(WorkerEvent(type="comparison", data=result["comparison"]))
    elif spec.compare_with_active and active is not None and validation:
        ctx.stage("comparing with the active version")
        try:
            baseline = score_version(ctx.store, spec.model, active, validation, labels)
        except Exception as exc:  # a broken old version must not sink a good new one
            log.warning("could not score %s@%s: %s", spec.model, active, exc)
            baseline = {"version": active, "error": str(exc)}
        candidate = manifest.metrics.get("eval") or {}
        result["comparison"] = {
            "metric": "accuracy",
            "candidate": {
                "version": manifest.version,
                "accuracy": candidate.get("accuracy"),
                "macro_f1": candidate.get("macro_f1"),
            },
            "active": baseline,
        }
        ctx.emit(WorkerEvent(type="comparison", data=result["comparison"]))
    return result
