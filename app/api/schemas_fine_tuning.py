"""Wire types of OpenAI's fine-tuning API (``/v1/fine_tuning/jobs``) over textserve's jobs.

Shaped as the official ``openai`` package reads them (``FineTuningJob``,
``FineTuningJobEvent``, ``FineTuningJobCheckpoint``); the same jobs are served by
``/v1/fine-tunes`` with textserve's own fields. What OpenAI has and textserve has not is
listed in docs/api-fine-tuning-openai.md.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.api.errors import InvalidInput
from app.api.schemas_jobs import Resources
from app.jobs.records import EventRecord, JobRecord, JobState
from app.training.finetune import Hyperparameters

ORGANIZATION = "textserve"
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


class FineTuningHyperparameters(BaseModel):
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float


class SupervisedMethodView(BaseModel):
    hyperparameters: FineTuningHyperparameters


class FineTuningMethodView(BaseModel):
    type: Literal["supervised"] = "supervised"
    supervised: SupervisedMethodView


class FineTuningError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningExtensionView(BaseModel):
    """Response extension ``textserve``: the job as /v1/fine-tunes shows it, in brief."""

    task: str
    base_model: str
    promote: str
    hyperparameters: dict[str, Any] = Field(description="All of textserve's, as trained.")
    version: int | None = Field(description="The version published, once done.")
    progress: dict[str, Any]
    result: dict[str, Any] = Field(description="metrics, comparison, promotion.")


class FineTuningJob(BaseModel):
    """OpenAI's ``fine_tuning.job`` for a textserve job (created by either API)."""

    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: FineTuningError | None
    fine_tuned_model: str | None = Field(description="`name@version`: a `model` to call.")
    finished_at: int | None
    hyperparameters: FineTuningHyperparameters
    model: str
    organization_id: str = ORGANIZATION
    result_files: list[str] = Field(default_factory=list)
    seed: int
    status: JobState
    trained_tokens: int | None = Field(None, description="Not counted: always null.")
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: FineTuningMethodView
    textserve: FineTuningExtensionView

    @classmethod
    def of(cls, r: JobRecord) -> FineTuningJob:
        defaults = Hyperparameters()
        hp = {**defaults.model_dump(), **r.hyperparameters}
        shown = FineTuningHyperparameters(
            n_epochs=hp["epochs"],
            batch_size=hp["batch_size"],
            learning_rate_multiplier=hp["learning_rate"] / BASE_LEARNING_RATE,
        )
        version = r.result.get("version")
        eta = r.progress.get("eta_seconds")
        return cls(
            id=r.id,
            created_at=int(r.created_at),
            error=FineTuningError(code=r.error.code, message=r.error.message) if r.error else None,
            fine_tuned_model=f"{r.model}@{version}" if version is not None else None,
            finished_at=None if r.finished_at is None else int(r.finished_at),
            hyperparameters=shown,
            model=r.model,
            seed=hp["seed"],
            status=r.state,
            training_file=r.training_file,
            validation_file=r.validation_file,
            estimated_finish=(
                int(time.time() + eta) if r.state == "running" and eta is not None else None
            ),
            method=FineTuningMethodView(supervised=SupervisedMethodView(hyperparameters=shown)),
            textserve=FineTuningExtensionView(
                task=r.task,
                base_model=r.base_model,
                promote=r.promote,
                hyperparameters=hp,
                version=version,
                progress=r.progress,
                result=r.result,
            ),
        )


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


EVENT_PREFIX = "ftevent-"


class FineTuningJobEvent(BaseModel):
    """OpenAI's ``fine_tuning.job.event``; ``data.textserve_type`` keeps textserve's type."""

    id: str = Field(description="`ftevent-<n>`; pass it as `after` for the next page.")
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict[str, Any]
    type: Literal["message", "metrics"]

    @classmethod
    def of(cls, e: EventRecord) -> FineTuningJobEvent:
        return cls(
            id=f"{EVENT_PREFIX}{e.id}",
            created_at=int(e.created_at),
            level="warn" if e.level == "warning" else e.level,
            message=e.message,
            data={**e.data, "textserve_type": e.type},
            type="metrics" if e.type in ("progress", "metrics") else "message",
        )


def event_cursor(after: str | None) -> int | None:
    """The event id in an ``after`` cursor (``ftevent-<n>``, or plain ``<n>``)."""
    if after is None:
        return None
    digits = after.removeprefix(EVENT_PREFIX)
    # Bounded: the store's ids are 64-bit integers.
    if not digits.isascii() or not digits.isdigit() or int(digits) > 2**63 - 1:
        raise InvalidInput("after", f"expected an event id such as {EVENT_PREFIX}12")
    return int(digits)


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class FineTuningCheckpointMetrics(BaseModel):
    """Only what a classification fine-tune measures on OpenAI's scale: step and loss."""

    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    """The version a job published: textserve keeps no intermediate checkpoints."""

    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str = Field(description="`name@version`: a `model` to call.")
    fine_tuning_job_id: str
    metrics: FineTuningCheckpointMetrics
    step_number: int

    @classmethod
    def of(cls, r: JobRecord) -> FineTuningJobCheckpoint | None:
        """The job's published version, or None before one is."""
        version = r.result.get("version")
        if version is None:
            return None
        step = r.progress.get("step") or r.progress.get("total_steps") or 0
        return cls(
            id=checkpoint_id(r.id),
            created_at=int(r.finished_at or r.created_at),
            fine_tuned_model_checkpoint=f"{r.model}@{version}",
            fine_tuning_job_id=r.id,
            metrics=FineTuningCheckpointMetrics(step=step, train_loss=r.progress.get("loss")),
            step_number=int(step),
        )


def checkpoint_id(job_id: str) -> str:
    return f"ftckpt-{job_id.removeprefix('ftjob-')}"


class FineTuningCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
