"""The fine-tune job entry for task ``reply``, and the task object the registry lists."""

from __future__ import annotations

from pathlib import Path

from app.training.errors import InvalidDataset
from app.training.finetune import Hyperparameters
from app.training.reply.checks import check_files
from app.training.reply.data import read_templates
from app.training.reply.pipeline import build_reply_model
from app.training.reply.rows import missing_roles, rows_from_upload
from app.training.task import TaskContext, TaskResult, UploadFacts

# job_meta key under which the job API passes a separate template file (JSON or CSV).
TEMPLATES_KEY = "templates_path"


def train_reply_job(ctx: TaskContext) -> TaskResult:
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


class ReplyTask:
    """Fine-tune a dual encoder that answers with a response template (``/v1/reply``)."""

    def check_files(self, train: UploadFacts, validation: UploadFacts | None) -> None:
        check_files(train, validation)

    def run(self, ctx: TaskContext) -> TaskResult:
        return train_reply_job(ctx)


TASK = ReplyTask()
