"""Domain errors raised while preparing data, training, exporting and publishing models."""

from __future__ import annotations

from app.errors import TextserveError


class InvalidDataset(TextserveError, ValueError):
    """Training data that cannot be used: unreadable, malformed, empty or with unknown labels."""

    code = "invalid_dataset"


class InvalidRecipe(TextserveError, ValueError):
    """A recipe folder whose ``recipe.json`` is missing or does not validate."""

    code = "invalid_recipe"


class BaseModelUnavailable(TextserveError, ValueError):
    """The base model named for a fine-tune cannot be found or loaded."""

    code = "base_model_unavailable"


class TrainingError(TextserveError):
    """Training, export or the parity check failed."""

    code = "training_failed"


class TrainingCancelled(TrainingError):
    """The caller asked training to stop; nothing was published."""

    code = "training_cancelled"


class ParityError(TrainingError):
    """The exported ONNX model does not reproduce the trained model's outputs."""

    code = "parity_failed"


class UnfitFile(InvalidDataset):
    """An uploaded file that cannot train this job; ``param`` names the request field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param
