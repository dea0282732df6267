"""The create body of OpenAI's fine-tuning API, mapped onto textserve's hyperparameters.

OpenAI's names (``n_epochs``, ``learning_rate_multiplier``, ...), given top-level or under
``method.supervised``, become textserve's; textserve's bounds stay the one definition.
The mapping is documented in docs/api-fine-tuning-openai.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.api.errors import InvalidInput
from app.api.schemas_jobs import Resources
from app.training.finetune import Hyperparameters

# OpenAI scales a base learning rate it does not publish; ours is the default peak rate.
BASE_LEARNING_RATE: float = Hyperparameters.model_fields["learning_rate"].default
# OpenAI's name for each hyperparameter -> textserve's.
OPENAI_NAMES = {"n_epochs": "epochs", "batch_size": "batch_size"}
TEXTSERVE_NAMES = {"epochs": "n_epochs", "learning_rate": "learning_rate_multiplier"}


def _auto_or_number(value: object, kind: type[int] | type[float]) -> object:
    """``"auto"`` or a JSON number of ``kind`` (an int for a float; never a bool or string)."""
    if value == "auto" or value is None:
        return value
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ValueError(f"expected 'auto' or {'an integer' if kind is int else 'a number'}")
    return value


class OpenAIHyperparameters(BaseModel):
    """OpenAI's three knobs; ``auto`` (or absent) keeps textserve's default."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: Literal["auto"] | int = Field("auto", description="-> epochs (1-100; auto: 4).")
    batch_size: Literal["auto"] | int = Field("auto", description="-> batch_size (auto: 16).")
    learning_rate_multiplier: Literal["auto"] | float = Field(
        "auto", description=f"-> learning_rate = {BASE_LEARNING_RATE} x multiplier."
    )

    @field_validator("n_epochs", "batch_size", mode="before")
    @classmethod
    def _int(cls, value: object) -> object:
        return _auto_or_number(value, int)

    @field_validator("learning_rate_multiplier", mode="before")
    @classmethod
    def _float(cls, value: object) -> object:
        return _auto_or_number(value, float)

    def as_textserve(self) -> dict[str, Any]:
        """The values set (not ``auto``) under textserve's names."""
        out: dict[str, Any] = {
            ours: getattr(self, theirs)
            for theirs, ours in OPENAI_NAMES.items()
            if getattr(self, theirs) != "auto"
        }
        if self.learning_rate_multiplier != "auto":
            out["learning_rate"] = BASE_LEARNING_RATE * float(self.learning_rate_multiplier)
        return out


class SupervisedMethodIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: OpenAIHyperparameters | None = None


class FineTuningMethodIn(BaseModel):
    """Only ``supervised`` is trained; ``dpo`` and ``reinforcement`` are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethodIn | None = None
    dpo: dict[str, Any] | None = None
    reinforcement: dict[str, Any] | None = None

    @field_validator("type")
    @classmethod
    def _supervised(cls, value: str) -> str:
        if value != "supervised":
            raise ValueError(f"textserve trains supervised fine-tunes only, not {value}")
        return value


class ExtraHyperparameters(BaseModel):
    """textserve's knobs that OpenAI has no name for."""

    model_config = ConfigDict(extra="forbid")

    max_length: int | None = Field(None, strict=True, description="Tokens kept per text.")
    warmup_ratio: float | None = Field(None, strict=True)
    weight_decay: float | None = Field(None, strict=True)


class FineTuningExtension(BaseModel):
    """Request extension ``textserve`` (the client's ``extra_body``): what /v1/fine-tunes
    takes beyond OpenAI's fields."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(None, description="classification or reply; default the model's.")
    base_model: str = Field("packaged", description="'packaged', a local folder or a hub id.")
    promote: Literal["never", "if_better", "always"] = "if_better"
    hyperparameters: ExtraHyperparameters = Field(default_factory=ExtraHyperparameters)
    resources: Resources = Field(default_factory=Resources)


class FineTuningJobCreate(BaseModel):
    """OpenAI's create body. ``model`` names the textserve model a new version is published
    under; unknown top-level fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str = Field(description="The model to fine-tune: a new name creates a new model.")
    training_file: str = Field(description="Id of a file uploaded to /v1/files.")
    validation_file: str | None = None
    hyperparameters: OpenAIHyperparameters | None = Field(
        None, description="Deprecated by OpenAI in favour of method.supervised.hyperparameters."
    )
    method: FineTuningMethodIn | None = None
    suffix: str | None = Field(
        None, max_length=64, description="Accepted, not used: results are named name@version."
    )
    seed: int | None = Field(None, strict=True, ge=0, le=2**32 - 1)
    metadata: dict[str, str] | None = Field(None, description="Accepted, not stored.")
    integrations: list[dict[str, Any]] | None = Field(None, description="Must be empty.")
    textserve: FineTuningExtension = Field(default_factory=FineTuningExtension)

    @field_validator("integrations")
    @classmethod
    def _no_integrations(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError("textserve reports to no integration (such as wandb): leave it empty")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # OpenAI's limits, so that a request valid here is valid there too.
        if value is not None and (
            len(value) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in value.items())
        ):
            raise ValueError("at most 16 keys of up to 64 characters, values up to 512")
        return value

    def to_hyperparameters(self) -> Hyperparameters:
        """textserve's hyperparameters; a value out of range is a 422 naming the field sent."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}  # textserve's name -> the request field that set it

        def take(prefix: str, given: dict[str, Any]) -> None:
            for ours, value in given.items():
                values[ours] = value
                sources[ours] = f"{prefix}.{TEXTSERVE_NAMES.get(ours, ours)}"

        if self.method is not None:
            supervised = self.method.supervised
            chosen = supervised.hyperparameters if supervised is not None else None
            if chosen is not None and self.hyperparameters is not None:
                raise InvalidInput(
                    "hyperparameters", "give hyperparameters in method.supervised only, not both"
                )
            if chosen is not None:
                take("method.supervised.hyperparameters", chosen.as_textserve())
        if self.hyperparameters is not None:
            take("hyperparameters", self.hyperparameters.as_textserve())
        take(
            "textserve.hyperparameters",
            self.textserve.hyperparameters.model_dump(exclude_none=True),
        )
        if self.seed is not None:
            values["seed"], sources["seed"] = self.seed, "seed"
        try:
            return Hyperparameters(**values)
        except ValidationError as exc:
            # The bounds are textserve's (one definition): name the field sent, and the value
            # it became where the names differ.
            first = exc.errors()[0]
            ours = str(first["loc"][0]) if first["loc"] else ""
            param = sources.get(ours, "hyperparameters")
            said = (
                first["msg"]
                if param.endswith(f".{ours}") or param == ours
                else (f"{ours} = {first['input']!r}: {first['msg']}")
            )
            raise InvalidInput(param, said) from None
