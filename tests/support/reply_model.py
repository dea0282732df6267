"""The real default reply model as the test session builds it (once, see ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

from app.store.manifest import Manifest
from app.store.versions import ModelStore
from app.training.finetune import Hyperparameters
from app.training.recipes import load_recipe
from app.training.reply import ReplyRecipe, build_reply_model

RECIPE_DIR = Path(__file__).resolve().parents[2] / "models" / "_recipes" / "reply"
# The recipe's settings, with texts cut at 32 tokens: utterances fit whole, and the
# templates' first 32 tokens place them well enough, at a third less training time.
TEST_HP = {"epochs": 2, "max_length": 32}


def build_default_reply_model(store: ModelStore) -> Manifest:
    recipe = ReplyRecipe.from_recipe(load_recipe(RECIPE_DIR))
    hp = Hyperparameters(**{**recipe.hyperparameters.model_dump(), **TEST_HP})
    return build_reply_model(
        store,
        name="reply",
        kb=recipe.data_path,
        base_model=recipe.base_model,
        hp=hp,
        recipe=recipe.provenance(),
        low_confidence=recipe.handoff_threshold,
    )
