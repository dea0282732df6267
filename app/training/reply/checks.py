"""Whether uploaded files can train a reply model: its columns, then its intents."""

from __future__ import annotations

from app.training.checks import check_labelled_files
from app.training.errors import UnfitFile
from app.training.reply.rows import REQUIRED_COLUMNS, missing_roles
from app.training.task import UploadFacts


def check_files(train: UploadFacts, validation: UploadFacts | None) -> None:
    """Raise ``UnfitFile`` unless ``train`` (and ``validation``) can train a reply model."""
    check_columns(train)
    check_labelled_files(train, validation, needs="a reply model needs two intents")


def check_columns(train: UploadFacts) -> None:
    # The reply job reads the upload as it came, by column names (app.training.reply.job).
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
