"""A real (tiny) fine-tune of the packaged encoder: train, predict, export, parity, publish."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from app.store.manifest import MODEL_FILE
from app.store.versions import ModelStore
from app.training.bootstrap import run_bootstrap
from app.training.classification.pipeline import build_classifier
from app.training.classification.train import train_classifier
from app.training.data import Example
from app.training.errors import BaseModelUnavailable, ParityError, TrainingCancelled
from app.training.evaluate import predict_logits
from app.training.export import check_parity, export_onnx, quantize_dynamic_int8
from app.training.finetune import Hyperparameters, TrainedClassifier, TrainProgress

LABELS = ["billing", "delivery", "praise"]
TEXTS = {
    "billing": [
        "I was charged twice this month.",
        "Why is my invoice higher than usual?",
        "Please refund the duplicate payment.",
        "My card was billed for a plan I cancelled.",
        "The receipt shows the wrong amount.",
        "Can I get a copy of last month's bill?",
        "There is an unknown fee on my statement.",
        "I want to change my payment method.",
    ],
    "delivery": [
        "My parcel has not arrived yet.",
        "The courier left the box at the wrong address.",
        "Where is my order? It is a week late.",
        "Tracking has not updated for days.",
        "The package arrived damaged.",
        "Can you deliver on Saturday instead?",
        "Half of my order is missing from the box.",
        "The driver never rang the bell.",
    ],
    "praise": [
        "Thanks, your support team was wonderful!",
        "Great service, I will order again.",
        "The staff were friendly and quick.",
        "I love the new app, well done.",
        "Fantastic help from Maria today.",
        "Everything worked perfectly, thank you.",
        "You solved my problem in minutes, brilliant.",
        "Very happy with how this was handled.",
    ],
}
EXAMPLES = [Example(text, label) for label, texts in TEXTS.items() for text in texts]
HP = Hyperparameters(epochs=1, batch_size=8, max_length=32, learning_rate=1e-4)


@pytest.fixture(scope="session")
def progress_events() -> list[TrainProgress]:
    return []


@pytest.fixture(scope="session")
def trained(progress_events: list[TrainProgress]) -> TrainedClassifier:
    return train_classifier("packaged", EXAMPLES, LABELS, HP, on_progress=progress_events.append)


@pytest.fixture(scope="session")
def exported(trained: TrainedClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    export_onnx(trained, out)
    return out


def test_training_reports_every_step(
    trained: TrainedClassifier, progress_events: list[TrainProgress]
) -> None:
    assert [p.step for p in progress_events] == [1, 2, 3]
    assert {p.total_steps for p in progress_events} == {3}
    assert {p.epoch for p in progress_events} == {1}
    assert all(np.isfinite(p.loss) and p.samples_per_second > 0 for p in progress_events)
    assert progress_events[-1].eta_seconds == 0
    assert not trained.model.training
    assert trained.labels == LABELS
    assert trained.input_names == ["input_ids", "attention_mask", "token_type_ids"]


def test_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BaseModelUnavailable, match="cannot load base model"):
        train_classifier(str(tmp_path), EXAMPLES, LABELS, HP)


def test_predict_logits_keeps_the_callers_order(trained: TrainedClassifier) -> None:
    texts = [e.text for e in EXAMPLES[::3]]

    logits = predict_logits(trained, texts, batch_size=3)
    backwards = predict_logits(trained, texts[::-1], batch_size=5)

    assert logits.shape == (len(texts), len(LABELS))
    assert logits.dtype == np.float32
    np.testing.assert_allclose(backwards[::-1], logits, atol=1e-4)


def test_export_writes_model_and_an_unpadded_truncating_tokenizer(
    trained: TrainedClassifier, exported: Path
) -> None:
    assert {"model.onnx", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in exported.iterdir()
    }
    session = ort.InferenceSession(str(exported / MODEL_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == trained.input_names
    assert [o.name for o in session.get_outputs()] == ["logits"]
    tokenizer = json.loads((exported / "tokenizer.json").read_text())
    assert tokenizer["padding"] is None
    assert tokenizer["truncation"]["max_length"] == HP.max_length


def test_parity_passes_on_batches_of_mixed_length(
    trained: TrainedClassifier, exported: Path
) -> None:
    texts = [e.text for e in EXAMPLES] + ["word " * 200]  # the last row is truncated

    report = check_parity(trained, exported / MODEL_FILE, texts)

    assert report["rows"] == len(texts)
    assert report["argmax_agree"] is True
    assert report["max_abs_diff"] <= report["tolerance"] == 1e-3


def test_parity_failures_raise(trained: TrainedClassifier, exported: Path, tmp_path: Path) -> None:
    with pytest.raises(ParityError, match="does not match"):
        check_parity(trained, exported / MODEL_FILE, ["hello"], tolerance=-1.0)
    (tmp_path / MODEL_FILE).write_bytes((exported / MODEL_FILE).read_bytes())
    with pytest.raises(ParityError, match=r"no tokenizer\.json"):
        check_parity(trained, tmp_path / MODEL_FILE, ["hello"])


def test_int8_quantization_shrinks_the_model_and_keeps_its_interface(
    trained: TrainedClassifier, exported: Path, tmp_path: Path
) -> None:
    out = quantize_dynamic_int8(exported / MODEL_FILE, tmp_path / "model.int8.onnx")

    assert out.stat().st_size < 0.4 * (exported / MODEL_FILE).stat().st_size
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == trained.input_names
    feeds = {k: v.cpu().numpy() for k, v in trained.encode(["a b c", "hello there"]).items()}
    (logits,) = session.run(["logits"], feeds)
    assert logits.shape == (2, len(LABELS))
    assert np.isfinite(logits).all()


def test_build_classifier_publishes_an_active_verified_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    stages: list[str] = []

    manifest = build_classifier(
        store,
        name="tickets",
        labels=LABELS,
        train=EXAMPLES[::2],
        eval=EXAMPLES[1::2],
        base_model="packaged",
        hp=HP,
        recipe={"name": "tickets"},
        on_stage=stages.append,
    )

    assert manifest.version == 1
    assert store.active_version("tickets") == 1
    assert store.verify("tickets", 1) == manifest
    assert stages == [
        "training",
        "evaluating",
        "exporting",
        "checking parity",
        "quantizing",
        "publishing",
    ]
    assert {"model.onnx", "model.int8.onnx", "model.fp16.onnx", "tokenizer.json"} <= set(
        manifest.files
    )
    assert manifest.variant_files() == {
        "fp32": "model.onnx",
        "int8": "model.int8.onnx",
        "fp16": "model.fp16.onnx",
    }
    for variant in manifest.variants.values():
        assert variant.eval["n"] == 12
        assert 0 <= variant.eval["accuracy"] <= 1
    # The fp32 file scored through ONNX Runtime is the trained model scored through torch.
    assert manifest.variant_accuracy("fp32") == manifest.metrics["eval"]["accuracy"]
    assert all(len(digest) == 64 for digest in manifest.files.values())
    assert manifest.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    assert (manifest.task, manifest.labels, manifest.max_seq_length) == (
        "classification",
        LABELS,
        HP.max_length,
    )
    assert manifest.pad_token_id == 0
    assert manifest.recipe == {"name": "tickets"}
    assert manifest.metrics["train_rows"] == 12
    assert manifest.metrics["eval_rows"] == 12
    assert manifest.metrics["eval"]["n"] == 12
    assert 0 <= manifest.metrics["eval"]["accuracy"] <= 1
    assert set(manifest.metrics["eval"]["per_label"]) == set(LABELS)
    assert manifest.parity["argmax_agree"] is True
    assert manifest.parity["rows"] == 13  # 12 eval texts and one over-long one
    assert manifest.parity["max_abs_diff"] <= 1e-3
    calibration = manifest.model_dump()["calibration"]
    assert calibration["rows"] == 12
    assert calibration["temperature"] > 0
    # 12 rows are too few for ECE to be sure to fall (test_calibration checks that on 4000).
    assert 0 <= calibration["ece_before"] <= 1 and 0 <= calibration["ece_after"] <= 1


def test_cancelling_raises_and_publishes_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    polls: list[int] = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) >= 2  # let one step run, stop before the second

    with pytest.raises(TrainingCancelled, match="step 1 of 3"):
        build_classifier(
            store,
            name="cancelled",
            labels=LABELS,
            train=EXAMPLES,
            eval=[],
            base_model="packaged",
            hp=HP,
            recipe={},
            should_stop=should_stop,
        )

    assert store.versions("cancelled") == []
    assert store.active_version("cancelled") is None
    assert not list(Path(tempfile.gettempdir()).glob("textserve-build-cancelled-*"))


def test_bootstrap_builds_once_then_leaves_the_active_version_alone(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    (recipes / "tickets").mkdir(parents=True)
    recipe = {
        "name": "tickets",
        "task": "classification",
        "labels": LABELS,
        "eval_fraction": 0.25,
        "hyperparameters": HP.model_dump(),
    }
    (recipes / "tickets" / "recipe.json").write_text(json.dumps(recipe))
    (recipes / "tickets" / "data.jsonl").write_text(
        "\n".join(json.dumps({"text": e.text, "label": e.label}) for e in EXAMPLES)
    )
    store = ModelStore(tmp_path / "store")

    (built,) = run_bootstrap(store, recipes)

    assert (built.name, built.version, store.active_version("tickets")) == ("tickets", 1, 1)
    assert built.metrics["eval_rows"] == 6  # 2 of each label's 8
    assert built.recipe["eval_fraction"] == 0.25
    assert len(built.recipe["data_sha256"]) == 64
    assert run_bootstrap(store, recipes) == []
