"""Build the default models from their recipes, so a fresh install has something to serve."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from app.store.manifest import Manifest
from app.store.versions import ModelStore
from app.training.classification.pipeline import build_classifier
from app.training.data import stratified_split
from app.training.errors import InvalidRecipe
from app.training.finetune import TrainProgress
from app.training.recipes import ClassificationRecipe, Recipe, list_recipes
from app.training.reply import ReplyRecipe, is_reply_recipe

log = logging.getLogger(__name__)


class ProgressReporter(Protocol):
    """Hears what bootstrap is doing; the CLI plugs in a progress display."""

    def model_started(self, name: str, *, train_rows: int, eval_rows: int) -> None: ...

    def model_stage(self, name: str, stage: str) -> None: ...

    def model_progress(self, name: str, progress: TrainProgress) -> None: ...

    def model_finished(self, name: str, manifest: Manifest) -> None: ...

    def model_skipped(self, name: str, reason: str) -> None: ...


def run_bootstrap(
    store: ModelStore,
    recipes_dir: Path,
    *,
    force: bool = False,
    names: Sequence[str] | None = None,
    progress: ProgressReporter | None = None,
) -> list[Manifest]:
    """Build and activate every recipe's model that has no active version (all with ``force``).

    ``names`` limits the run to those recipes (an unknown name is an ``InvalidRecipe``).
    Recipes of a task bootstrap cannot build yet are skipped with a log line. Leftovers of
    interrupted publishes are removed first. Returns the manifests published by this run.
    """
    for leftover in store.cleanup_partial():
        log.info("removed an interrupted publish: %s", leftover)
    recipes = _select(list_recipes(recipes_dir), names)
    published: list[Manifest] = []
    for recipe in recipes:
        buildable = isinstance(recipe, ClassificationRecipe) or recipe.task == "embedding"
        if not buildable and not is_reply_recipe(recipe):
            _skip(progress, recipe.name, f"task {recipe.task!r} is not built by bootstrap yet")
            continue
        active = store.active_version(recipe.name)
        if active is not None and not force:
            _skip(progress, recipe.name, f"version {active} is active (--force rebuilds it)")
            continue
        if isinstance(recipe, ClassificationRecipe):
            published.append(_build(store, recipe, progress))
        elif recipe.task == "embedding":
            published.append(_build_embedding(store, recipe, progress))
        else:
            published.append(_build_reply(store, ReplyRecipe.from_recipe(recipe), progress))
    return published


def _build_reply(
    store: ModelStore, recipe: ReplyRecipe, progress: ProgressReporter | None
) -> Manifest:
    name = recipe.name
    data = recipe.read_data()
    log.info(
        "bootstrap: building %s (%d train, %d eval rows)", name, len(data.train), len(data.eval)
    )
    if progress is not None:
        progress.model_started(name, train_rows=len(data.train), eval_rows=len(data.eval))
    manifest = recipe.build(
        store,
        on_progress=None if progress is None else lambda p: progress.model_progress(name, p),
        on_stage=None if progress is None else lambda s: progress.model_stage(name, s),
    )
    if progress is not None:
        progress.model_finished(name, manifest)
    return manifest


def _build_embedding(
    store: ModelStore, recipe: Recipe, progress: ProgressReporter | None
) -> Manifest:
    """An embedding model: the base encoder exported and checked, nothing trained."""
    from app.training.embedding import build_embedding

    extra = recipe.model_extra or {}
    if progress is not None:
        progress.model_started(recipe.name, train_rows=0, eval_rows=0)
        progress.model_stage(recipe.name, "export")
    manifest = build_embedding(
        store,
        name=recipe.name,
        base_model=str(extra.get("base_model", "packaged")),
        max_length=int(extra.get("max_length", 256)),
        int8=bool(extra.get("int8", True)),
        recipe={"task": "embedding", **extra},
    )
    if progress is not None:
        progress.model_finished(recipe.name, manifest)
    return manifest


def _skip(progress: ProgressReporter | None, name: str, reason: str) -> None:
    log.info("bootstrap: skipping %s: %s", name, reason)
    if progress is not None:
        progress.model_skipped(name, reason)


def _select(recipes: list[Recipe], names: Sequence[str] | None) -> list[Recipe]:
    if not names:
        return recipes
    known = {r.name for r in recipes}
    unknown = sorted(set(names) - known)
    if unknown:
        raise InvalidRecipe(f"no recipe for {unknown}; recipes: {sorted(known)}")
    return [r for r in recipes if r.name in set(names)]


def _build(
    store: ModelStore, recipe: ClassificationRecipe, progress: ProgressReporter | None
) -> Manifest:
    hp = recipe.hyperparameters
    train, held_out = stratified_split(recipe.read_examples(), recipe.eval_fraction, hp.seed)
    name = recipe.name
    log.info("bootstrap: building %s (%d train, %d eval rows)", name, len(train), len(held_out))
    if progress is not None:
        progress.model_started(name, train_rows=len(train), eval_rows=len(held_out))
    manifest = build_classifier(
        store,
        name=name,
        labels=recipe.labels,
        train=train,
        eval=held_out,
        base_model=recipe.base_model,
        hp=hp,
        recipe=recipe.provenance(),
        on_progress=None if progress is None else lambda p: progress.model_progress(name, p),
        on_stage=None if progress is None else lambda s: progress.model_stage(name, s),
        activate=True,
    )
    if progress is not None:
        progress.model_finished(name, manifest)
    return manifest
