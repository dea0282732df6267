"""Train, evaluate, export, check and publish one classifier: the whole way to a model version."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.runtime.variants import GATE_FILE
from app.store.manifest import (
    FP16,
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
    OUTPUT_NAME,
    TOKENIZER_FILE,
    check_parity,
    export_onnx,
    quantize_dynamic_int8,
)
from app.training.finetune import Hyperparameters, TrainedClassifier, TrainProgress
from app.training.methods import training_record
from app.training.optimize import fp16_variant

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
        variants = _variants(staging, trained, eval, parity_texts(eval or train))
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
    staging: Path, trained: TrainedClassifier, eval: list[Example], parity: list[str]
) -> dict[str, Variant]:
    """Quantize the exported model beside it (int8 for CPUs), fuse it in fp16 for GPUs
    (``app.training.optimize``, parity against fp32 on ``parity``), score every variant on
    ``eval``.

    A model that ORT cannot convert still publishes, as fp32 only: int8 and fp16 are
    speed-ups, not a reason to throw the fine-tune away.
    """
    labels, max_length = trained.labels, trained.max_length
    pad_token_id = int(trained.tokenizer.pad_token_id)
    variants = {FP32: Variant(file=MODEL_FILE)}
    try:
        quantize_dynamic_int8(staging / MODEL_FILE, staging / INT8_FILE)
    except Exception as exc:
        log.warning("int8 conversion failed; publishing without it: %s", exc)
        (staging / INT8_FILE).unlink(missing_ok=True)
    else:
        variants[INT8] = Variant(file=INT8_FILE)
    half = fp16_variant(
        staging,
        trained.model,
        parity,
        max_length=max_length,
        pad_id=pad_token_id,
        outputs=[OUTPUT_NAME],
        argmax_output=OUTPUT_NAME,
    )
    if half is not None:
        variants[FP16] = half
    if not eval:
        return variants
    index = {label: i for i, label in enumerate(labels)}
    truth = [index[e.label] for e in eval]
    # Kept with the version: serving measures the gate again where the file runs (CUDA).
    gate = {"texts": [e.text for e in eval], "labels": truth}
    (staging / GATE_FILE).write_text(json.dumps(gate))
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
