"""The fine-tune job entry for task ``classification``, and the task object the registry lists."""

from __future__ import annotations

import logging
from typing import Any

from app.training.classification.checks import check_files
from app.training.classification.compare import score_version
from app.training.classification.pipeline import build_classifier
from app.training.data import stratified_split
from app.training.finetune import Hyperparameters
from app.training.task import TaskContext, TaskResult, UploadFacts

log = logging.getLogger(__name__)


def train_classification(ctx: TaskContext) -> TaskResult:
    """Fine-tune a classifier, publish it inactive, and score the active version alike."""
    spec = ctx.spec
    hp = Hyperparameters(**spec.hyperparameters)
    train, validation = ctx.train, ctx.validation
    if validation is None:
        train, validation = stratified_split(train, spec.eval_fraction, hp.seed)
        ctx.message(
            f"held out {len(validation)} of {len(ctx.train)} rows for validation "
            "(stratified by label)",
            train_rows=len(train),
            validation_rows=len(validation),
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
    result: TaskResult = {
        "version": manifest.version,
        "metrics": manifest.metrics,
        "validation_rows": len(validation),
    }
    training = manifest.model_dump().get("training")
    if training is not None:
        result["training"] = training
    active = ctx.store.active_version(spec.model)
    if not spec.compare_with_active or active is None:
        return result
    serving = ctx.store.read_manifest(spec.model, active).labels
    comparison: dict[str, Any] | None = None
    if serving != labels:
        # Another label set is another contract for every client: no score decides that.
        comparison = {
            "metric": "accuracy",
            "labels_differ": {"active": serving, "candidate": labels},
        }
    elif validation:
        ctx.stage("comparing with the active version")
        try:
            baseline = score_version(ctx.store, spec.model, active, validation, labels)
        except Exception as exc:  # a broken old version must not sink a good new one
            log.warning("could not score %s@%s: %s", spec.model, active, exc)
            baseline = {"version": active, "error": str(exc)}
        candidate = manifest.metrics.get("eval") or {}
        comparison = {
            "metric": "accuracy",
            "candidate": {
                "version": manifest.version,
                "accuracy": candidate.get("accuracy"),
                "macro_f1": candidate.get("macro_f1"),
            },
            "active": baseline,
        }
    if comparison is not None:
        result["comparison"] = comparison
        ctx.comparison(comparison)
    return result


class ClassificationTask:
    """Fine-tune an encoder to pick one label per text (``/v1/classify``)."""

    def check_files(self, train: UploadFacts, validation: UploadFacts | None) -> None:
        check_files(train, validation)

    def run(self, ctx: TaskContext) -> TaskResult:
        return train_classification(ctx)


TASK = ClassificationTask()
