"""Train, evaluate, export, check and publish one classifier: the whole way to a model version."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.store.manifest import (
    FP16,
    FP16_FILE,
    FP32,
    INT8,
    INT8_FILE,
    MODEL_FILE,
    Manifest,
    Variant,
    check_name,
)
from app.store.versions import ModelStore
from app.training.calibration import calibrate
from app.training.classification.train import train_classifier
from app.training.data import Example, check_labels, parity_texts
from app.training.errors import TrainingCancelled
from app.training.evaluate import classification_metrics, onnx_logits, predict_logits
from app.training.export import (
    TOKENIZER_FILE,
    check_parity,
    convert_fp16,
    export_onnx,
    quantize_dynamic_int8,
)
from app.training.finetune import Hyperparameters, TrainProgress
from app.training.methods import training_record

log = logging.getLogger(__name__)


def build_classifier(
    store: ModelStore,
    *,
    name: str,
    labels: list[str],
    train: list[Example],
    eval: list[Example],
    base_model: str,
    hp: Hyperparameters,
    recipe: dict[str, Any],
    on_progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_stage: Callable[[str], None] | None = None,
    activate: bool = True,
) -> Manifest:
    """Fine-tune, evaluate on ``eval``, export to ONNX, check parity, publish (and activate).

    The version carries three variants: ``model.onnx`` (fp32), ``model.int8.onnx`` (int8
    weights, dynamic quantization, for CPUs) and ``model.fp16.onnx`` (half precision, for
    GPUs), each scored on ``eval`` through ONNX Runtime so that serving picks a faster file
    only where it costs no accuracy. ``on_stage`` hears "training",
    "evaluating", "exporting", "checking parity", "quantizing" and "publishing".
    ``should_stop`` is polled between training steps and between stages; a stop raises
    ``TrainingCancelled`` and leaves the store untouched. Returns the published manifest,
    with its version number and file checksums.
    """
    check_name(name)  # fail before minutes of training, not at publish time
    check_labels([*train, *eval], labels)
    stage = on_stage or (lambda _stage: None)
    last: list[TrainProgress] = []

    def progress(p: TrainProgress) -> None:
        last[:] = [p]
        if on_progress is not None:
            on_progress(p)

    stage("training")
    started = time.perf_counter()
    trained = train_classifier(base_model, train, labels, hp, progress, should_stop)
    metrics: dict[str, Any] = {
        "train_rows": len(train),
        "eval_rows": len(eval),
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_loss": last[0].loss if last else None,
    }
    extra: dict[str, Any] = {  # top-level manifest fields beyond the model's declared ones
        "training": training_record(
            hp, trained.trainable_parameters, last[0].samples_per_second if last else None
        )
    }
    if eval:
        _check_stop(should_stop)
        stage("evaluating")
        index = {label: i for i, label in enumerate(labels)}
        logits = predict_logits(trained, [e.text for e in eval])
        truth = [index[e.label] for e in eval]
        metrics["eval"] = classification_metrics(truth, logits.argmax(axis=1).tolist(), labels)
        # Fitted on the eval rows: one scalar that moves no arg-max, so the accuracy above
        # stands; the ECE before/after is in-sample and says how far off the raw scores were.
        calibration = calibrate(logits, truth)
        extra["calibration"] = dict(calibration)
        trained.temperature = calibration["temperature"]
    else:
        log.warning("%s: no evaluation rows; the manifest carries no eval metrics", name)

    with tempfile.TemporaryDirectory(prefix=f"textserve-build-{name}-") as tmp:
        staging = Path(tmp)
        _check_stop(should_stop)
        stage("exporting")
        inputs = export_onnx(trained, staging)
        stage("checking parity")
        parity = check_parity(trained, staging / MODEL_FILE, parity_texts(eval or train))
        _check_stop(should_stop)
        stage("quantizing")
        variants = _variants(
            staging, labels, eval, hp.max_length, int(trained.tokenizer.pad_token_id)
        )
        _check_stop(should_stop)
        stage("publishing")
        manifest = store.publish(
            staging,
            Manifest(
                name=name,
                task="classification",
                labels=list(labels),
                base_model=base_model,
                max_seq_length=hp.max_length,
                inputs=inputs,
                pad_token_id=int(trained.tokenizer.pad_token_id),
                metrics=metrics,
                recipe=recipe,
                parity=dict(parity),
                variants=variants,
                **extra,
            ),
        )
    if activate:
        store.set_active(name, manifest.version)
    log.info("published %s@%d (active: %s)", name, manifest.version, activate)
    return manifest


def _variants(
    staging: Path, labels: list[str], eval: list[Example], max_length: int, pad_token_id: int
) -> dict[str, Variant]:
    """Quantize the exported model beside it and score every variant on ``eval``.

    A model that ORT cannot quantize still publishes, as fp32 only: int8 is a speed-up,
    not a reason to throw the fine-tune away.
    """
    variants = {FP32: Variant(file=MODEL_FILE)}
    for name, file, convert in (
        (INT8, INT8_FILE, quantize_dynamic_int8),
        (FP16, FP16_FILE, convert_fp16),
    ):
        try:
            convert(staging / MODEL_FILE, staging / file)
        except Exception as exc:
            log.warning("%s conversion failed; publishing without it: %s", name, exc)
            (staging / file).unlink(missing_ok=True)
        else:
            variants[name] = Variant(file=file)
    if not eval:
        return variants
    index = {label: i for i, label in enumerate(labels)}
    truth = [index[e.label] for e in eval]
    for variant in variants.values():
        logits = onnx_logits(
            staging / variant.file,
            staging / TOKENIZER_FILE,
            [e.text for e in eval],
            max_length=max_length,
            pad_token_id=pad_token_id,
        )
        scores = classification_metrics(truth, logits.argmax(axis=1).tolist(), labels)
        variant.eval = {k: scores[k] for k in ("accuracy", "macro_f1", "n")}
    return variants


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise TrainingCancelled("stopped before the model was published")
