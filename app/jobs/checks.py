"""What a fine-tune must satisfy before it may run: the model's task, and files fit for it.

Everything here reads only the model store and the file records (each upload was parsed
once, when it came), so it is cheap enough to run when a job is created, which refuses a
bad job before it is recorded, and again when its files are validated, which catches a job
that went stale while it waited.
"""

from __future__ import annotations

from app.errors import Conflict
from app.jobs.records import FileRecord
from app.store.versions import ModelStore
from app.training.errors import InvalidDataset
from app.training.reply.rows import REQUIRED_COLUMNS, missing_roles

DEFAULT_TASK = "classification"


class TaskMismatch(Conflict):
    """A fine-tune names an existing model but asks for another task than the model's."""

    code = "task_mismatch"
    param = "task"


class UnfitFile(InvalidDataset):
    """An uploaded file that cannot train this job; ``param`` names the request field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


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
    """The task a fine-tune of ``name`` trains: ``requested``, else the existing model's,
    else classification. Raises ``TaskMismatch`` when ``requested`` is not the model's."""
    existing = model_task(store, name)
    if requested is None:
        return existing or DEFAULT_TASK
    if existing is not None and existing != requested:
        raise TaskMismatch(
            f"model {name!r} is a {existing} model; a fine-tune of it trains {existing}, "
            f"not {requested} (omit task, or publish under another model name)"
        )
    return requested


def check_files(task: str, train: FileRecord, validation: FileRecord | None) -> None:
    """Raise ``UnfitFile`` unless ``train`` (and ``validation``) can train ``task``."""
    if task == "reply":
        _check_reply_columns(train)
    counts = train.label_counts
    if len(counts) < 2:
        needs = "a reply model needs two intents" if task == "reply" else "a classifier needs two"
        raise UnfitFile(
            f"training file {train.id} has {len(counts)} label(s) in column "
            f"{train.label_column!r}; {needs}",
            "training_file",
        )
    if validation is not None:
        # Also what catches a validation file made for the other task: its labels (or
        # intents) are not the training file's.
        unknown = sorted(set(validation.label_counts) - set(counts))
        if unknown:
            raise UnfitFile(
                f"validation file {validation.id} has labels the training file lacks: "
                f"{unknown[:10]}",
                "validation_file",
            )
    elif train.rows < 4:
        raise UnfitFile(
            f"training file {train.id} has too few rows to hold some out", "training_file"
        )


def _check_reply_columns(train: FileRecord) -> None:
    # The reply trainer reads the upload as it came, by column names (app.training.reply.job).
    missing = missing_roles(train.columns) if train.has_header else list(REQUIRED_COLUMNS)
    if not missing:
        return
    wanted = "; ".join(
        f"{role} (a column named one of {', '.join(REQUIRED_COLUMNS[role])})" for role in missing
    )
    found = f"columns {train.columns}" if train.has_header else "no header naming its columns"
    raise UnfitFile(
        f"training file {train.id} is not a reply data set: it needs utterance, intent and "
        f"response columns (Bitext's instruction,intent,response); missing: {wanted}; "
        f"the file has {found}",
        "training_file",
    )
