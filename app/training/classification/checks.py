"""Whether uploaded files can train a classifier."""

from __future__ import annotations

from app.training.checks import check_labelled_files
from app.training.task import UploadFacts


def check_files(train: UploadFacts, validation: UploadFacts | None) -> None:
    """Raise ``UnfitFile`` unless ``train`` (and ``validation``) can train a classifier."""
    check_labelled_files(train, validation, needs="a classifier needs two")
