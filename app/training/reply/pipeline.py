"""Train, evaluate, export, check and publish one reply model (with its response bank)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.store.bank import IntentInfo, ResponseBank, Template, humanize, intent_probabilities
from app.store.manifest import MODEL_FILE, Manifest, check_name
from app.store.versions import ModelStore
from app.training.data import Example, parity_texts
from app.training.errors import InvalidDataset, TrainingCancelled
from app.training.finetune import Hyperparameters, TrainedClassifier, TrainProgress
from app.training.reply.data import (
    KnowledgeBase,
    ReplyData,
    from_knowledge_base,
    from_rows,
    read_knowledge_base,
    read_templates,
)
from app.training.reply.evaluate import nearest_template_intents, reply_metrics
from app.training.reply.export import check_reply_parity, export_reply_onnx, reply_variants
from app.training.reply.model import predict, train_dual_encoder
from app.training.reply.ood import OFF_TOPIC_PROBES, out_of_scope_logit
from app.training.reply.rows import read_rows

log = logging.getLogger(__name__)

TASK = "reply"
# The service's default `reply_low_confidence`; the handoff rate is reported at this threshold.
DEFAULT_LOW_CONFIDENCE = 0.5
OOD_SAMPLE_ROWS = 1000

Rows = Sequence[Mapping[str, Any]]


def build_reply_model(
    store: ModelStore,
    *,
    name: str,
    kb: KnowledgeBase | Mapping[str, Any] | Path | None = None,
    rows: Rows | Path | None = None,
    templates: Mapping[str, Sequence[str]] | Path | None = None,
    eval_rows: Rows | Path | None = None,
    eval_fraction: float = 0.2,
    handoff_intents: Sequence[str] | None = None,
    base_model: str = "packaged",
    hp: Hyperparameters | None = None,
    recipe: dict[str, Any] | None = None,
    low_confidence: float = DEFAULT_LOW_CONFIDENCE,
    on_progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_stage: Callable[[str], None] | None = None,
    activate: bool = True,
) -> Manifest:
    """Fine-tune a dual-encoder reply model and publish it with its response bank.

    Data, exactly one of:

    * ``kb``: a knowledge base (object or JSON file): trained on ``examples``, evaluated on
      ``heldout``;
    * ``rows``: (utterance, intent[, response]) rows or a ``.csv``/``.jsonl``/``.json`` file
      of them (Bitext's ``instruction,intent,response`` works as is), optionally with a
      ``templates`` file or mapping giving the vetted replies per intent, and ``eval_rows``
      (else a stratified ``eval_fraction`` is held out). ``handoff_intents`` names the
      intents that mean "a person, please" (default: names with human/agent/operator).

    ``on_stage`` hears "training", "evaluating", "exporting", "checking parity",
    "publishing"; ``should_stop`` is polled between steps and stages (``TrainingCancelled``,
    store untouched). Returns the published manifest.
    """
    check_name(name)  # fail before minutes of training, not at publish time
    hp = hp or Hyperparameters()
    data = _load(kb, rows, templates, eval_rows, eval_fraction, hp.seed, handoff_intents)
    stage = on_stage or (lambda _stage: None)
    last: list[TrainProgress] = []

    def progress(p: TrainProgress) -> None:
        last[:] = [p]
        if on_progress is not None:
            on_progress(p)

    stage("training")
    started = time.perf_counter()
    trained = train_dual_encoder(base_model, data, hp, progress, should_stop)
    metrics: dict[str, Any] = {
        "train_rows": len(data.train),
        "eval_rows": len(data.eval),
        "intents": len(data.intents),
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_loss": last[0].loss if last else None,
    }
    _check_stop(should_stop)
    bank = _embed_bank(trained, data)
    metrics["out_of_scope_logit"] = bank.out_of_scope_logit
    if data.eval:
        stage("evaluating")
        metrics["eval"] = _evaluate(trained, data, bank, low_confidence)
    else:
        log.warning("%s: no evaluation utterances; the manifest carries no eval metrics", name)

    with tempfile.TemporaryDirectory(prefix=f"textserve-build-{name}-") as tmp:
        staging = Path(tmp)
        _check_stop(should_stop)
        stage("exporting")
        inputs = export_reply_onnx(trained, staging)
        bank.save(staging)
        stage("checking parity")
        texts = parity_texts([Example(u.text, u.intent) for u in data.eval or data.train])
        parity = check_reply_parity(trained, staging / MODEL_FILE, texts)
        _check_stop(should_stop)
        stage("publishing")
        manifest = store.publish(
            staging,
            Manifest(
                name=name,
                task=TASK,
                labels=data.intent_names,
                base_model=base_model,
                max_seq_length=hp.max_length,
                inputs=inputs,
                pad_token_id=int(trained.tokenizer.pad_token_id),
                metrics=metrics,
                recipe=recipe or {"task": TASK, "hyperparameters": hp.model_dump()},
                parity=dict(parity),
                variants=reply_variants(staging, trained, texts),
            ),
        )
    if activate:
        store.set_active(name, manifest.version)
    log.info("published %s@%d (active: %s)", name, manifest.version, activate)
    return manifest


def _load(
    kb: KnowledgeBase | Mapping[str, Any] | Path | None,
    rows: Rows | Path | None,
    templates: Mapping[str, Sequence[str]] | Path | None,
    eval_rows: Rows | Path | None,
    eval_fraction: float,
    seed: int,
    handoff_intents: Sequence[str] | None,
) -> ReplyData:
    if (kb is None) == (rows is None):
        raise InvalidDataset("give exactly one of a knowledge base or rows")
    if kb is not None:
        if templates is not None or eval_rows is not None:
            raise InvalidDataset("a knowledge base carries its own templates and held-out set")
        return from_knowledge_base(read_knowledge_base(kb))
    assert rows is not None
    return from_rows(
        read_rows(rows) if isinstance(rows, Path) else rows,
        templates=read_templates(templates) if isinstance(templates, Path) else templates,
        eval_rows=read_rows(eval_rows) if isinstance(eval_rows, Path) else eval_rows,
        eval_fraction=eval_fraction,
        seed=seed,
        handoff_intents=handoff_intents,
    )


def _embed_bank(trained: TrainedClassifier, data: ReplyData) -> ResponseBank:
    """Every intent's templates with their embeddings from the trained encoder, and the
    calibrated out-of-scope logit."""
    templates = [Template.of(i.intent, t) for i in data.intents for t in i.responses]
    embeddings, _ = predict(trained, [humanize(t.text) for t in templates])
    _, probe_logits = predict(trained, list(OFF_TOPIC_PROBES))
    # A sample is plenty for a 2nd percentile, and keeps this cheap on large data sets.
    sample = [u.text for u in data.train[:: max(1, len(data.train) // OOD_SAMPLE_ROWS)]]
    _, train_logits = predict(trained, sample)
    return ResponseBank(
        intents=[IntentInfo(i.intent, i.category, i.handoff) for i in data.intents],
        templates=templates,
        embeddings=embeddings,
        slot_request=data.slot_request,
        handoff_reply=data.handoff_reply,
        customer_slots=dict(data.customer_slots),
        out_of_scope_logit=round(out_of_scope_logit(probe_logits, train_logits), 4),
    )


def _evaluate(
    trained: TrainedClassifier, data: ReplyData, bank: ResponseBank, low_confidence: float
) -> dict[str, Any]:
    index = {name: i for i, name in enumerate(data.intent_names)}
    embeddings, logits = predict(trained, [u.text for u in data.eval])
    retrieved = nearest_template_intents(
        embeddings, bank.embeddings, [index[t.intent] for t in bank.templates]
    )
    return reply_metrics(
        [index[u.intent] for u in data.eval],
        intent_probabilities(logits, bank.out_of_scope_logit),
        data.intent_names,
        {i.intent for i in data.intents if i.handoff},
        low_confidence,
        retrieved,
    )


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise TrainingCancelled("stopped before the model was published")
