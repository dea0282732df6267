"""Recipes: ``<recipes_dir>/<folder>/recipe.json`` plus the data it names, one per default model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.errors import InvalidModelName
from app.store.manifest import check_name
from app.training.data import Example, check_labels, read_jsonl
from app.training.errors import InvalidRecipe
from app.training.finetune import Hyperparameters

RECIPE_FILE = "recipe.json"


class Recipe(BaseModel):
    """What every recipe declares. Task-specific fields stay as extras for their builder."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    task: str
    description: str = ""
    folder: Path = Field(exclude=True)  # where recipe.json was read; not part of the recipe

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        try:
            return check_name(value)
        except InvalidModelName as exc:  # not a ValueError: pydantic would not wrap it
            raise ValueError(str(exc)) from exc


class ClassificationRecipe(Recipe):
    """A text classifier: labels, data, held-out share and fine-tune hyperparameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["classification"]
    labels: list[str] = Field(min_length=2)
    base_model: str = "packaged"
    data: str = "data.jsonl"  # JSON lines, relative to the recipe folder
    eval_fraction: float = Field(0.2, gt=0, lt=1)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: list[str]) -> list[str]:
        check_labels([], value)  # unique, at least two; raises a ValueError
        return value

    @property
    def data_path(self) -> Path:
        return self.folder / self.data

    def read_examples(self) -> list[Example]:
        """The recipe's data, checked against its labels."""
        examples = read_jsonl(self.data_path)
        check_labels(examples, self.labels)
        return examples

    def provenance(self) -> dict[str, Any]:
        """The recipe as recorded in a manifest, with a checksum of the data it was built from."""
        record = self.model_dump(mode="json")
        record["data_sha256"] = hashlib.sha256(self.data_path.read_bytes()).hexdigest()
        return record


def load_recipe(folder: Path) -> Recipe:
    """Read ``folder/recipe.json``; a classification recipe comes back fully validated."""
    path = folder / RECIPE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidRecipe(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidRecipe(f"{path}: expected a JSON object")
    model = ClassificationRecipe if raw.get("task") == "classification" else Recipe
    try:
        return model.model_validate({**raw, "folder": folder})
    except ValidationError as exc:
        raise InvalidRecipe(f"{path}: {exc}") from exc


def list_recipes(recipes_dir: Path) -> list[Recipe]:
    """Every recipe under ``recipes_dir`` (folders holding a ``recipe.json``), sorted by name."""
    if not recipes_dir.is_dir():
        raise InvalidRecipe(f"recipes folder {recipes_dir} does not exist")
    recipes = [
        load_recipe(folder)
        for folder in sorted(recipes_dir.iterdir())
        if (folder / RECIPE_FILE).is_file()
    ]
    names = [r.name for r in recipes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidRecipe(f"several recipes build the same model: {duplicates}")
    return sorted(recipes, key=lambda r: r.name)
