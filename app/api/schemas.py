"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from typing_extensions import TypedDict

from app.api import schemas_opinion as op

ClassifyTask = Literal["sentiment", "topic"]


class ErrorBody(BaseModel):
    type: str
    message: str
    param: str | None = None
    code: str | None = Field(None, description="The same as `type`, where OpenAI clients look.")
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# What a listing answers when its `after` cursor names no object (documented: clients page
# with it, and a deleted object's id is a cursor they may still hold).
PAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "`after` names no object."}
}


class ClassifyRequest(BaseModel):
    """Exactly one of ``task`` / ``model`` / ``tasks`` / ``models`` and exactly one of ``text``
    / ``texts``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)

    task: ClassifyTask | None = Field(None, description="A default model by task name.")
    model: str | None = Field(None, description="A model as `name` or `name@version`.")
    text: str | None = Field(None, description="One text to classify.")
    texts: list[str] | None = Field(None, description="Several texts, answered in order.")
    top_k: int | None = Field(None, ge=1, le=1000, description="Also return the k best scores.")
    return_all_scores: bool = Field(False, description="Also return every label's score.")
    timeout_ms: int | None = Field(None, ge=1, description="Deadline for this request.")
    tasks: op.TaskList | None = Field(None, description=op.TASKS_DESCRIPTION)
    models: op.ModelRefList | None = Field(None, description=op.MODELS_DESCRIPTION)
    stream: op.StreamName | None = Field(None, description=op.STREAM_DESCRIPTION)

    @model_validator(mode="after")
    def _one_of_each(self) -> ClassifyRequest:
        if [self.task, self.model, self.tasks, self.models].count(None) != 3:
            raise ValueError("give exactly one of 'task', 'model', 'tasks' or 'models'")
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        return self


class ClassifyResult(TypedDict):
    """One text's answer. A TypedDict, as ``ClassifyResponse``: the hot path serializes plain
    dicts through ``CLASSIFY_RESPONSE`` (pydantic-core, no model objects built per text)."""

    label: str
    score: float
    truncated: bool
    scores: NotRequired[
        Annotated[dict[str, float], Field(description="With `top_k` or `return_all_scores`.")]
    ]


class ClassifyResponse(TypedDict):
    """The answer of ``POST /classify``; its fields in the order they are sent."""

    model: str
    version: int
    label: NotRequired[Annotated[str, Field(description="With `text`: the first result's label.")]]
    score: NotRequired[
        Annotated[float, Field(description="With `text`: the first result's score.")]
    ]
    truncated: NotRequired[
        Annotated[bool, Field(description="With `text`: whether it was truncated.")]
    ]
    results: list[ClassifyResult]


# The one serializer of /classify answers, used by the FastAPI route and the lean endpoint
# alike: the bytes orjson gave before (compact, UTF-8, NaN as null), from the definition above.
CLASSIFY_RESPONSE = TypeAdapter(ClassifyResponse)


class ModelVersionInfo(BaseModel):
    version: int
    created_at: str
    task: str
    labels: list[str]
    base_model: str
    max_seq_length: int
    metrics: dict[str, Any]
    variants: dict[str, Any] = Field(
        default_factory=dict, description="Each ONNX file of the version and its accuracy."
    )


class ModelCard(BaseModel):
    """OpenAI-compatible model object with textserve's fields beside the standard ones."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "textserve"
    task: str
    labels: list[str]
    active_version: int | None
    loaded_version: int | None
    provider: str | None
    variant: str | None = Field(
        None, description="The loaded file of the version: fp32, int8 or fp16."
    )
    variant_note: str | None = Field(
        None,
        description="On CUDA under `auto`: the accuracy gate measured again on the loaded "
        "session, and whether fp16 was kept or fell back to fp32.",
    )
    metrics: dict[str, Any]
    versions: list[ModelVersionInfo]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class HealthResponse(BaseModel):
    status: str
    reason: str | None = None
    models: dict[str, str] = Field(default_factory=dict)
    redis: Literal["ok", "unavailable"] | None = Field(
        None, description="With TEXTSERVE_REDIS_URL: whether the shared Redis answers."
    )
