"""Recipes, base-model resolution, hyperparameter bounds and bootstrap's choices (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.store.manifest import Manifest
from app.store.versions import ModelStore
from app.training.base_model import packaged_model_dir, resolve_base_model
from app.training.bootstrap import run_bootstrap
from app.training.errors import BaseModelUnavailable, InvalidDataset, InvalidRecipe
from app.training.finetune import Hyperparameters, TrainProgress
from app.training.recipes import ClassificationRecipe, list_recipes, load_recipe

CLASSIFIER = {
    "name": "sentiment",
    "task": "classification",
    "labels": ["negative", "positive"],
    "base_model": "packaged",
    "data": "data.jsonl",
    "eval_fraction": 0.25,
    "hyperparameters": {"epochs": 2, "batch_size": 8},
    "description": "test",
}
REPLY = {"name": "reply", "task": "reply", "data": "kb.json", "eval": "heldout"}
# A task no builder knows: bootstrap must skip it, not fail.
FUTURE = {"name": "summary", "task": "summarization", "data": "docs.jsonl"}


def _recipe(root: Path, folder: str, recipe: dict[str, Any], rows: int = 0) -> Path:
    path = root / folder
    path.mkdir(parents=True)
    (path / "recipe.json").write_text(json.dumps(recipe))
    lines = [
        json.dumps({"text": f"text {i}", "label": ["negative", "positive"][i % 2]})
        for i in range(rows)
    ]
    (path / "data.jsonl").write_text("\n".join(lines))
    return path


class Recorder:
    """A ProgressReporter that remembers what it heard."""

    def __init__(self) -> None:
        self.skipped: dict[str, str] = {}
        self.started: list[str] = []
        self.stages: list[tuple[str, str]] = []
        self.steps: list[TrainProgress] = []
        self.finished: list[Manifest] = []

    def model_started(self, name: str, *, train_rows: int, eval_rows: int) -> None:
        self.started.append(name)

    def model_stage(self, name: str, stage: str) -> None:
        self.stages.append((name, stage))

    def model_progress(self, name: str, progress: TrainProgress) -> None:
        self.steps.append(progress)

    def model_finished(self, name: str, manifest: Manifest) -> None:
        self.finished.append(manifest)

    def model_skipped(self, name: str, reason: str) -> None:
        self.skipped[name] = reason


def test_classification_recipe_is_fully_validated(tmp_path: Path) -> None:
    folder = _recipe(tmp_path, "sentiment", CLASSIFIER, rows=6)

    recipe = load_recipe(folder)

    assert isinstance(recipe, ClassificationRecipe)
    assert recipe.hyperparameters == Hyperparameters(epochs=2, batch_size=8)
    assert recipe.data_path == folder / "data.jsonl"
    assert len(recipe.read_examples()) == 6
    record = recipe.provenance()
    assert "folder" not in record
    assert record["labels"] == ["negative", "positive"]
    assert len(record["data_sha256"]) == 64


def test_other_tasks_load_as_envelopes_with_their_extras(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, "reply", REPLY))

    assert not isinstance(recipe, ClassificationRecipe)
    assert (recipe.name, recipe.task) == ("reply", "reply")
    assert recipe.model_extra == {"data": "kb.json", "eval": "heldout"}


@pytest.mark.parametrize(
    "change",
    [
        {"name": "../escape"},
        {"labels": ["only"]},
        {"labels": ["a", "a"]},
        {"eval_fraction": 1.0},
        {"hyperparameters": {"epochs": 0}},
        {"hyperparameters": {"epoch": 3}},
        {"typo_field": 1},
    ],
)
def test_invalid_classification_recipes_are_refused(tmp_path: Path, change: dict[str, Any]) -> None:
    folder = _recipe(tmp_path, "r", {**CLASSIFIER, **change})

    with pytest.raises(InvalidRecipe, match=r"recipe\.json"):
        load_recipe(folder)


def test_unreadable_recipe_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "recipe.json").write_text("[1, 2]")
    with pytest.raises(InvalidRecipe, match="JSON object"):
        load_recipe(tmp_path / "r")
    with pytest.raises(InvalidRecipe, match="cannot read"):
        load_recipe(tmp_path / "missing")


def test_recipe_data_with_unknown_labels_is_refused(tmp_path: Path) -> None:
    folder = _recipe(tmp_path, "s", {**CLASSIFIER, "labels": ["negative", "neutral"]}, rows=4)
    recipe = load_recipe(folder)
    assert isinstance(recipe, ClassificationRecipe)

    with pytest.raises(InvalidDataset, match="positive"):
        recipe.read_examples()


def test_list_recipes_sorts_by_name_and_refuses_duplicates(tmp_path: Path) -> None:
    _recipe(tmp_path, "b-folder", REPLY)
    _recipe(tmp_path, "a-folder", CLASSIFIER)
    (tmp_path / "not-a-recipe").mkdir()

    assert [r.name for r in list_recipes(tmp_path)] == ["reply", "sentiment"]

    _recipe(tmp_path, "c-folder", REPLY)
    with pytest.raises(InvalidRecipe, match="same model"):
        list_recipes(tmp_path)
    with pytest.raises(InvalidRecipe, match="does not exist"):
        list_recipes(tmp_path / "nowhere")


def test_hyperparameter_defaults_and_bounds() -> None:
    hp = Hyperparameters()
    assert (hp.epochs, hp.learning_rate, hp.batch_size, hp.max_length) == (4, 5e-5, 16, 128)
    assert (hp.seed, hp.warmup_ratio, hp.weight_decay) == (13, 0.1, 0.01)
    for bad in ({"learning_rate": 0}, {"batch_size": 0}, {"max_length": 1024}, {"seed": -1}):
        with pytest.raises(ValidationError):
            Hyperparameters.model_validate(bad)


def test_resolve_base_model(tmp_path: Path) -> None:
    packaged = packaged_model_dir()
    assert (Path(packaged) / "config.json").is_file()
    for alias in ("packaged", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_base_model(alias) == packaged
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)
    assert resolve_base_model("org/some-model") == "org/some-model"
    for missing in (str(tmp_path / "nope"), "./nope", "   "):
        with pytest.raises(BaseModelUnavailable):
            resolve_base_model(missing)


def _publish_dummy(store: ModelStore, name: str) -> None:
    staging = store.root.parent / f"staging-{name}"
    staging.mkdir()
    (staging / "model.onnx").write_bytes(b"not really a model")
    manifest = store.publish(
        staging,
        Manifest(name=name, labels=["negative", "positive"], base_model="x", max_seq_length=8),
    )
    store.set_active(name, manifest.version)


def test_bootstrap_skips_active_models_and_unbuildable_tasks(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    _recipe(recipes, "sentiment", CLASSIFIER, rows=8)
    _recipe(recipes, "summary", FUTURE)
    store = ModelStore(tmp_path / "store")
    _publish_dummy(store, "sentiment")
    leftover = store.root / "sentiment" / ".publish-crashed"
    leftover.mkdir()
    recorder = Recorder()

    assert run_bootstrap(store, recipes, progress=recorder) == []

    assert "is active" in recorder.skipped["sentiment"]
    assert "not built by bootstrap" in recorder.skipped["summary"]
    assert recorder.started == []
    assert not leftover.exists()
    assert store.versions("sentiment") == [1]


def test_bootstrap_refuses_unknown_model_names(tmp_path: Path) -> None:
    _recipe(tmp_path / "recipes", "summary", FUTURE)

    with pytest.raises(InvalidRecipe, match="no recipe for"):
        run_bootstrap(ModelStore(tmp_path / "store"), tmp_path / "recipes", names=["nope"])
