"""Score a published classifier version (its ONNX file, as serving runs it) on examples.

Used by a fine-tune worker to score the active version on the candidate's validation
rows, so that ``promote: if_better`` compares two models on the same data.
"""

from __future__ import annotations

from typing import Any

from app.runtime.backend import cpu_session, score_texts
from app.runtime.tokenizer import TextTokenizer
from app.store.manifest import MODEL_FILE
from app.store.versions import ModelStore
from app.training.data import Example
from app.training.evaluate import classification_metrics

BATCH = 64


def score_version(
    store: ModelStore, name: str, version: int, examples: list[Example], labels: list[str]
) -> dict[str, Any]:
    """Accuracy and macro F1 of ``name@version`` on ``examples``, labels matched by name.

    ``labels`` is the candidate's label list. A prediction naming a label outside it can
    never be right (the older version knew other labels), so it counts as an error.
    """
    manifest = store.verify(name, version)
    if manifest.task != "classification":
        raise ValueError(f"{name}@{version} is a {manifest.task} model")
    folder = store.version_dir(name, version)
    loaded = cpu_session(folder / MODEL_FILE)
    tokenizer = TextTokenizer(
        folder / manifest.tokenizer_file, manifest.max_seq_length, manifest.pad_token_id
    )
    other = len(labels)  # index of "some label the candidate does not know"
    index = {label: i for i, label in enumerate(labels)}
    texts = [e.text for e in examples]
    (logits,) = score_texts(loaded, tokenizer, texts, loaded.output_names[:1], BATCH)
    predicted = [index.get(manifest.labels[int(i)], other) for i in logits.argmax(-1)]
    truth = [index[e.label] for e in examples]
    metrics = classification_metrics(truth, predicted, [*labels, "<other>"])
    return {
        "version": version,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "n": metrics["n"],
    }
