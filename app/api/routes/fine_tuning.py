"""/v1/fine_tuning/jobs: OpenAI's fine-tuning API over the same jobs as /v1/fine-tunes.

So that the official ``openai`` client's ``fine_tuning.jobs`` calls work unchanged; the
mapping of fields and states is in docs/api-fine-tuning-openai.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.api.schemas import ErrorResponse
from app.api.schemas_fine_tuning import (
    FineTuningCheckpointList,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobEventList,
    FineTuningJobList,
    checkpoint_id,
    event_cursor,
)
from app.api.schemas_fine_tuning_create import FineTuningJobCreate
from app.errors import JobNotFound

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning (OpenAI)"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (404, 409, 422)
}
# Reads never conflict: 404 (a job, or an `after` naming none) and 422.
READ_ERRORS: dict[int | str, dict[str, Any]] = {code: ERRORS[code] for code in (404, 422)}
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]


@router.post("", response_model=FineTuningJob, responses=ERRORS)
async def create_job(body: FineTuningJobCreate, services: ServicesDep) -> FineTuningJob:
    """Fine-tune `model` on `training_file`: a new version of `model` is published when done
    (its name is `fine_tuned_model`) and promoted if better, as /v1/fine-tunes does."""
    hyperparameters = body.to_hyperparameters()
    ext = body.textserve
    job = await run_in_threadpool(
        lambda: services.jobs.create(
            model=body.model,
            task=ext.task,
            training_file=body.training_file,
            validation_file=body.validation_file,
            base_model=ext.base_model,
            hyperparameters=hyperparameters,
            promote=ext.promote,
            resources=ext.resources.model_dump(),
        )
    )
    return FineTuningJob.of(job)


@router.get("", response_model=FineTuningJobList, responses=READ_ERRORS)
async def list_jobs(
    services: ServicesDep, limit: Limit = 20, after: str | None = None
) -> FineTuningJobList:
    """Jobs, newest first; pass the last id as `after` for the next page."""
    jobs, more = await run_in_threadpool(services.jobs.list_jobs, limit, after)
    return FineTuningJobList(data=[FineTuningJob.of(j) for j in jobs], has_more=more)


@router.get("/{job_id}", response_model=FineTuningJob, responses=READ_ERRORS)
async def retrieve_job(job_id: str, services: ServicesDep) -> FineTuningJob:
    """One job."""
    return FineTuningJob.of(await run_in_threadpool(services.jobs.get, job_id))


@router.post("/{job_id}/cancel", response_model=FineTuningJob, responses=ERRORS)
async def cancel_job(job_id: str, services: ServicesDep) -> FineTuningJob:
    """Cancel a job (409 once it has ended); a running worker is stopped first."""
    return FineTuningJob.of(await run_in_threadpool(services.jobs.cancel, job_id))


@router.get("/{job_id}/events", response_model=FineTuningJobEventList, responses=READ_ERRORS)
async def list_events(
    job_id: str,
    services: ServicesDep,
    limit: Limit = 20,
    after: Annotated[
        str | None, Query(max_length=40, description="The last event id already seen.")
    ] = None,
) -> FineTuningJobEventList:
    """A job's events, oldest first (OpenAI lists newest first): pass the last id as `after`
    for the events that came since."""
    start = event_cursor(after)
    await run_in_threadpool(services.jobs.get, job_id)  # 404 for an unknown job
    events = await run_in_threadpool(services.jobs.events, job_id, start, limit + 1)
    return FineTuningJobEventList(
        data=[FineTuningJobEvent.of(e) for e in events[:limit]], has_more=len(events) > limit
    )


@router.get("/{job_id}/checkpoints", response_model=FineTuningCheckpointList, responses=READ_ERRORS)
async def list_checkpoints(
    job_id: str, services: ServicesDep, limit: Limit = 10, after: str | None = None
) -> FineTuningCheckpointList:
    """The version the job published, as its one checkpoint (none before it succeeds)."""
    job = await run_in_threadpool(services.jobs.get, job_id)
    checkpoint = FineTuningJobCheckpoint.of(job)
    found = [] if checkpoint is None else [checkpoint]
    if after is not None:
        if after != checkpoint_id(job_id):
            raise JobNotFound(f"no checkpoint {after!r} of job {job_id}", param="after")
        found = []  # nothing follows the only checkpoint
    data = found[:limit]
    return FineTuningCheckpointList(
        data=data,
        has_more=False,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )
