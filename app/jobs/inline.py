"""A fine-tune in this process, for the CLI: the same trainer and promotion rules as a job,
without the job store, the dispatcher or a worker process."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.jobs.promotion import Decision, decide
from app.jobs.records import Promote
from app.jobs.spec import WorkerEvent, WorkerSpec, report_to
from app.store.versions import ModelStore
from app.training.datasets import ParsedDataset, parse_dataset
from app.training.errors import InvalidDataset
from app.training.finetune import Hyperparameters
from app.training.task import TaskContext
from app.training.tasks import task_named


@dataclass
class InlineResult:
    version: int
    result: dict[str, Any]
    decision: Decision


def read_dataset(path: Path, text_column: str | None, label_column: str | None) -> ParsedDataset:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidDataset(f"cannot read {path}: {exc}") from exc
    return parse_dataset(
        data, filename=path.name, text_column=text_column, label_column=label_column
    )


def run_inline(
    store: ModelStore,
    *,
    model: str,
    train: ParsedDataset,
    validation: ParsedDataset | None,
    base_model: str,
    hp: Hyperparameters,
    promote: Promote,
    task: str = "classification",
    emit: Callable[[WorkerEvent], None] = lambda _event: None,
) -> InlineResult:
    """Train, publish, compare and (by ``promote``) activate, reporting through ``emit``."""
    entry = task_named(task)
    with tempfile.TemporaryDirectory(prefix="textserve-finetune-") as work:
        spec = WorkerSpec(
            job_id=f"cli-{uuid.uuid4().hex[:12]}",
            task=task,
            model=model,
            base_model=base_model,
            hyperparameters=hp.model_dump(),
            model_store=str(store.root),
            work_dir=work,
            compare_with_active=promote == "if_better",
            job_meta={"job": "cli"},
        )
        ctx = TaskContext(
            spec,
            store,
            train.examples,
            validation.examples if validation is not None else None,
            report_to(emit),
            lambda: False,
        )
        outcome = entry.run(ctx)
    version = outcome["version"]
    active = store.active_version(model)
    decision = decide(promote, active, outcome.get("comparison"))
    if decision.promote:
        store.set_active(model, version, reason="fine-tune (cli)")
    return InlineResult(version, dict(outcome), decision)
