"""The reply recipe (``models/_recipes/reply/recipe.json``): a knowledge base and how to train."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.store.manifest import Manifest
from app.store.versions import ModelStore
from app.training.errors import InvalidRecipe
from app.training.finetune import Hyperparameters, TrainProgress
from app.training.recipes import Recipe
from app.training.reply.data import ReplyData, from_knowledge_base, read_knowledge_base
from app.training.reply.pipeline import DEFAULT_LOW_CONFIDENCE, TASK, build_reply_model


class ReplyRecipe(BaseModel):
    """A reply model built from a knowledge base, evaluated on its ``heldout`` paraphrases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    task: Literal["reply"]
    description: str = ""
    base_model: str = "packaged"
    data: str = "knowledge_base.json"  # relative to the recipe folder
    eval: Literal["heldout"] = "heldout"
    handoff_threshold: float = Field(DEFAULT_LOW_CONFIDENCE, gt=0, lt=1)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    folder: Path = Field(exclude=True)

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> ReplyRecipe:
        """Validate the task-specific fields that a generic ``Recipe`` keeps as extras."""
        try:
            return cls.model_validate({**recipe.model_dump(), "folder": recipe.folder})
        except ValidationError as exc:
            raise InvalidRecipe(f"{recipe.folder / 'recipe.json'}: {exc}") from exc

    @property
    def data_path(self) -> Path:
        return self.folder / self.data

    def read_data(self) -> ReplyData:
        return from_knowledge_base(read_knowledge_base(self.data_path))

    def provenance(self) -> dict[str, Any]:
        """The recipe as recorded in a manifest, with a checksum of its knowledge base."""
        record = self.model_dump(mode="json")
        record["data_sha256"] = hashlib.sha256(self.data_path.read_bytes()).hexdigest()
        return record

    def build(
        self,
        store: ModelStore,
        *,
        on_progress: Callable[[TrainProgress], None] | None = None,
        on_stage: Callable[[str], None] | None = None,
        activate: bool = True,
    ) -> Manifest:
        return build_reply_model(
            store,
            name=self.name,
            kb=self.data_path,
            base_model=self.base_model,
            hp=self.hyperparameters,
            recipe=self.provenance(),
            low_confidence=self.handoff_threshold,
            on_progress=on_progress,
            on_stage=on_stage,
            activate=activate,
        )


def is_reply_recipe(recipe: Recipe) -> bool:
    return recipe.task == TASK
