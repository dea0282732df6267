"""The fine-tune job API's entry point for task ``reply`` (``train_reply_job``).

The worker calls it with its ``TrainContext`` (``app.jobs.tasks``); it is typed here by
the few attributes it reads, so training does not import the jobs package.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from app.store.versions import ModelStore
from app.training.data import Example
from app.training.errors import InvalidDataset
from app.training.finetune import Hyperparameters, TrainProgress
from app.training.reply.data import read_templates
from app.training.reply.pipeline import build_reply_model
from app.training.reply.rows import missing_roles, rows_from_upload

# job_meta key under which the job API passes a separate template file (JSON or CSV).
TEMPLATES_KEY = "templates_path"


class JobSpec(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def base_model(self) -> str: ...
    @property
    def hyperparameters(self) -> dict[str, Any]: ...
    @property
    def eval_fraction(self) -> float: ...
    @property
    def train_source_path(self) -> str | None: ...
    @property
    def job_meta(self) -> dict[str, Any]: ...


class JobContext(Protocol):
    @property
    def spec(self) -> JobSpec: ...
    @property
    def store(self) -> ModelStore: ...
    @property
    def train(self) -> list[Example]: ...
    @property
    def validation(self) -> list[Example] | None: ...
    @property
    def should_stop(self) -> Callable[[], bool]: ...
    def stage(self, name: str) -> None: ...
    def progress(self, progress: TrainProgress) -> None: ...


def train_reply_job(ctx: JobContext) -> dict[str, Any]:
    """Train a reply model from the job's upload, publish it inactive, return the result.

    Rows come from the upload as it came when it has utterance, intent and response columns
    (Bitext's ``instruction,intent,response``); otherwise from its parsed (text, label) rows,
    with the templates from ``job_meta["templates_path"]``.
    """
    spec = ctx.spec
    hp = Hyperparameters(**spec.hyperparameters)
    templates_path = spec.job_meta.get(TEMPLATES_KEY)
    rows = _upload_rows(spec.train_source_path)
    if rows is None:
        if not templates_path:
            raise InvalidDataset(
                "a reply data set needs a response column (e.g. Bitext's "
                "instruction,intent,response) or a separate template file"
            )
        rows = [{"utterance": e.text, "intent": e.label} for e in ctx.train]
    eval_rows = (
        None
        if ctx.validation is None
        else [{"utterance": e.text, "intent": e.label} for e in ctx.validation]
    )
    manifest = build_reply_model(
        ctx.store,
        name=spec.model,
        rows=rows,
        templates=read_templates(Path(templates_path)) if templates_path else None,
        eval_rows=eval_rows,
        eval_fraction=spec.eval_fraction,
        base_model=spec.base_model,
        hp=hp,
        recipe={"source": "fine-tune", **spec.job_meta, "hyperparameters": hp.model_dump()},
        on_progress=ctx.progress,
        should_stop=ctx.should_stop,
        on_stage=ctx.stage,
        activate=False,
    )
    return {
        "version": manifest.version,
        "metrics": manifest.metrics,
        "validation_rows": manifest.metrics.get("eval_rows", 0),
    }


def _upload_rows(path: str | None) -> list[dict[str, str]] | None:
    """The upload's rows when it carries utterance, intent and response columns, else None."""
    if not path or not Path(path).is_file():
        return None
    rows = rows_from_upload(Path(path).read_bytes())
    return rows if rows and not missing_roles(rows[0]) else None
