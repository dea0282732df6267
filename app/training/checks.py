"""Data checks every labelled task shares, on what was recorded when the files were uploaded."""

from __future__ import annotations

from app.training.errors import UnfitFile
from app.training.task import UploadFacts


def check_labelled_files(train: UploadFacts, validation: UploadFacts | None, needs: str) -> None:
    """Two labels at least, no validation label the training file lacks, and enough rows to
    hold some out when no validation file is given. ``needs`` ends the two-labels message
    in the task's words ("a classifier needs two")."""
    counts = train.label_counts
    if len(counts) < 2:
        raise UnfitFile(
            f"training file {train.id} has {len(counts)} label(s) in column "
            f"{train.label_column!r}; {needs}",
            "training_file",
        )
    if validation is not None:
        # Also what catches a validation file made for another task: its labels (or
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
