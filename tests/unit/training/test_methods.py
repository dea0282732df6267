"""hyperparameters.method: full | lora | head each train, export and serve; LoRA is merged."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from pydantic import ValidationError

from app.api.schemas_jobs import StrictHyperparameters
from app.store.manifest import MODEL_FILE
from app.store.versions import ModelStore
from app.training.classification.compare import score_version
from app.training.classification.pipeline import build_classifier
from app.training.finetune import Hyperparameters
from tests.unit.training.test_training_pipeline import EXAMPLES, LABELS

MINILM_PARAMETERS = 22_000_000  # about; a full fine-tune trains all of them


def test_learning_rate_default_follows_the_method() -> None:
    assert Hyperparameters().learning_rate == 5e-5
    assert Hyperparameters(method="lora").learning_rate == 5e-4
    assert Hyperparameters(method="head").learning_rate == 1e-3
    assert Hyperparameters(method="lora", learning_rate=1e-4).learning_rate == 1e-4
    # What is stored and read back keeps the rate it was created with.
    stored = Hyperparameters(method="lora").model_dump()
    assert Hyperparameters(**stored).learning_rate == 5e-4


def test_the_request_refuses_an_unknown_method() -> None:
    with pytest.raises(ValidationError, match="method"):
        StrictHyperparameters.model_validate({"method": "qlora"})
    assert StrictHyperparameters.model_validate({"method": "lora", "lora_r": 8}).lora_r == 8


@pytest.mark.parametrize("method", ["lora", "head"])
def test_method_trains_exports_and_serves(method: str, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    hp = Hyperparameters(method=method, epochs=2, batch_size=8, max_length=32)
    manifest = build_classifier(
        store,
        name="tickets",
        labels=LABELS,
        train=EXAMPLES,
        eval=EXAMPLES[::2],
        base_model="packaged",
        hp=hp,
        recipe={},
    )
    training = manifest.model_dump()["training"]
    assert training["method"] == method
    assert 0 < training["trainable_parameters"] < MINILM_PARAMETERS / 10
    assert training["samples_per_second"] > 0
    assert training["peak_memory_mb"] > 0
    # Parity (checked before publishing) compared ONNX with the merged torch model.
    assert manifest.parity["argmax_agree"] is True
    graph = onnx.load(str(store.version_dir("tickets", 1) / MODEL_FILE)).graph
    names = [i.name for i in graph.initializer] + [n.name for n in graph.node]
    assert not [n for n in names if "lora_" in n]
    served = score_version(store, "tickets", 1, EXAMPLES, LABELS)
    assert served["n"] == len(EXAMPLES)
    assert 0 <= served["accuracy"] <= 1
