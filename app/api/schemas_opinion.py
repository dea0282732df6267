"""Wire types of opinion monitoring: /classify with several tasks, and GET /v1/monitor."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.config import STREAM_NAME

OpinionTask = Literal["sentiment", "topic"]


def _unique_tasks(tasks: list[str]) -> list[str]:
    repeated = sorted({t for t in tasks if tasks.count(t) > 1})
    if repeated:
        raise ValueError(f"each task at most once; repeated: {repeated}")
    return tasks


def _unique_models(refs: list[str]) -> list[str]:
    names = [ref.partition("@")[0] for ref in refs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"each model at most once (one version each); repeated: {repeated}")
    return refs


TaskList = Annotated[
    list[OpinionTask], Field(min_length=1, max_length=2), AfterValidator(_unique_tasks)
]
ModelRefList = Annotated[
    list[str], Field(min_length=1, max_length=4), AfterValidator(_unique_models)
]
StreamName = Annotated[str, Field(pattern=f"^{STREAM_NAME.pattern}$")]

TASKS_DESCRIPTION = 'Several tasks at once (`["topic", "sentiment"]`), each by its default model.'
MODELS_DESCRIPTION = "Several models at once, each as `name` or `name@version`."
STREAM_DESCRIPTION = (
    "Source of the texts (`news`, `social`...), counted by topic and sentiment; needs a topic "
    "and a sentiment answer. See docs/monitoring.md."
)


class TaskResult(BaseModel):
    label: str
    score: float
    scores: dict[str, float] | None = None
    truncated: bool


class AnsweredBy(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: int


class OpinionResponse(BaseModel):
    """The answer to /classify with `tasks` or `models`: one object per task in each result."""

    models: dict[str, AnsweredBy] = Field(description="The model version behind each key.")
    stream: str | None = Field(None, description="The stream the texts were counted under.")
    results: list[dict[str, TaskResult]] = Field(
        description="Per text, in order: each task's (or model's) answer under its key."
    )


class TopicTrendOut(BaseModel):
    topic: str
    count: int = Field(description="Texts of this topic in the window.")
    negative: int = Field(description="Of which negative.")
    negative_share: float | None = Field(description="negative / count; null without texts.")
    baseline_share: float | None = Field(
        description="The negative share in the baseline period before the window; null when "
        "the baseline holds no text of this topic."
    )
    alerting: bool


class MonitorResponse(BaseModel):
    stream: str
    window_s: int
    baseline_s: int
    resolution_s: int = Field(description="Bucket width the answer was computed from: 1 or 60.")
    min_count: int
    floor: float
    ratio: float
    topics: list[TopicTrendOut]
