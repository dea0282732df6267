"""Which task a fine-tune trains, decided once, and the guard that it still fits the model.

A job's task is resolved when the job is created (``resolve_task``) and recorded on it.
Later stages never decide it again; they only guard (``check_model_task``) that the model
was not published as another task meanwhile, by another job or replica: once when the
job's files are validated, before it is queued, and once in the worker, before it trains.
"""

from __future__ import annotations

from app.errors import Conflict
from app.store.versions import ModelStore

DEFAULT_TASK = "classification"


class TaskMismatch(Conflict):
    """A fine-tune names an existing model but asks for another task than the model's."""

    code = "task_mismatch"
    param = "task"


def model_task(store: ModelStore, name: str) -> str | None:
    """The task of the model published as ``name``: its active version's, else its newest's.

    None when no version exists. The active version decides because it is what serving
    answers with (``/classify`` and ``/reply`` refuse a model of the other task).
    """
    versions = store.versions(name)
    if not versions:
        return None
    active = store.active_version(name)
    version = active if active in versions else versions[-1]
    return store.read_manifest(name, version).task


def resolve_task(store: ModelStore, name: str, requested: str | None) -> str:
    """The task a new fine-tune of ``name`` trains: ``requested``, else the existing model's,
    else classification. Raises ``TaskMismatch`` when ``requested`` is not the model's."""
    existing = model_task(store, name)
    if requested is None:
        return existing or DEFAULT_TASK
    _refuse_mismatch(name, existing, requested)
    return requested


def check_model_task(store: ModelStore, name: str, task: str) -> None:
    """Raise ``TaskMismatch`` if ``name`` is now published as another task than ``task``."""
    _refuse_mismatch(name, model_task(store, name), task)


def _refuse_mismatch(name: str, existing: str | None, requested: str) -> None:
    if existing is not None and existing != requested:
        raise TaskMismatch(
            f"model {name!r} is a {existing} model; a fine-tune of it trains {existing}, "
            f"not {requested} (omit task, or publish under another model name)"
        )
