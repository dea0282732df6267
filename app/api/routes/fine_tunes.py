"""/v1/fine-tunes: create, list, read and cancel jobs; read or stream their events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api import sse
from app.api.deps import ServicesDep
from app.api.schemas import PAGE_ERRORS, ErrorResponse
from app.api.schemas_jobs import (
    FineTuneCreate,
    FineTuneEvent,
    FineTuneEventList,
    FineTuneJob,
    FineTuneList,
)
from app.jobs.records import TERMINAL
from app.service import Services

router = APIRouter(prefix="/v1/fine-tunes", tags=["fine-tunes"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (404, 409, 422)
}
# The largest id the job store keeps (PostgreSQL's INTEGER): a larger `after` is refused in
# the schema (422) rather than failing in the database.
MAX_EVENT_ID = 2**31 - 1
STREAM_POLL_S = 0.5
STREAM_KEEPALIVE_S = 15.0


@router.post("", response_model=FineTuneJob, status_code=201, responses=ERRORS)
async def create_fine_tune(body: FineTuneCreate, services: ServicesDep) -> FineTuneJob:
    """Start a fine-tune of `training_file` published as `model`; answers the new job.

    Without `task`, an existing model's task is trained (else classification); a `task`
    that is not the existing model's is refused with 409.
    """
    job = await run_in_threadpool(
        lambda: services.jobs.create(
            model=body.model,
            task=body.task,
            training_file=body.training_file,
            validation_file=body.validation_file,
            base_model=body.base_model,
            hyperparameters=body.hyperparameters,
            promote=body.promote,
            resources=body.resources.model_dump(),
        )
    )
    return FineTuneJob.of(job)


@router.get("", response_model=FineTuneList, responses=PAGE_ERRORS)
async def list_fine_tunes(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> FineTuneList:
    """Jobs, newest first; pass the last id as `after` for the next page."""
    jobs, more = await run_in_threadpool(services.jobs.list_jobs, limit, after)
    return FineTuneList(data=[FineTuneJob.of(j) for j in jobs], has_more=more)


@router.get("/{job_id}", response_model=FineTuneJob, responses=ERRORS)
async def get_fine_tune(job_id: str, services: ServicesDep) -> FineTuneJob:
    """One job with its progress (step, loss, samples/s, ETA) and, when done, its result."""
    return FineTuneJob.of(await run_in_threadpool(services.jobs.get, job_id))


@router.post("/{job_id}/cancel", response_model=FineTuneJob, responses=ERRORS)
async def cancel_fine_tune(job_id: str, services: ServicesDep) -> FineTuneJob:
    """Cancel a job; a running worker is stopped (and its partial output removed) first."""
    return FineTuneJob.of(await run_in_threadpool(services.jobs.cancel, job_id))


@router.get(
    "/{job_id}/events",
    response_model=FineTuneEventList,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def list_events(
    job_id: str,
    request: Request,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_ID, description="Last event id already seen.")
    ] = None,
    stream: bool = False,
) -> FineTuneEventList | StreamingResponse:
    """A job's events, oldest first. `?stream=true` sends them as server-sent events as they
    happen, until the job ends (resume with `after` or the Last-Event-ID header)."""
    await run_in_threadpool(services.jobs.get, job_id)  # 404 for an unknown job
    if stream:
        last = request.headers.get("last-event-id", "")
        # A header out of range is read as no header, as a malformed one is.
        start = int(last) if last.isdigit() and int(last) <= MAX_EVENT_ID else after
        return sse.response(_sse(services, request, job_id, start))
    events = await run_in_threadpool(services.jobs.events, job_id, after, limit + 1)
    return FineTuneEventList(
        data=[FineTuneEvent.of(e) for e in events[:limit]], has_more=len(events) > limit
    )


async def _sse(
    services: Services, request: Request, job_id: str, after: int | None
) -> AsyncIterator[str]:
    last_sent = time.monotonic()
    while True:
        events = await run_in_threadpool(services.jobs.events, job_id, after, 500)
        for e in events:
            after = e.id
            yield sse.event(FineTuneEvent.of(e).model_dump_json(), name=e.type, event_id=e.id)
            last_sent = time.monotonic()
        if not events:
            job = await run_in_threadpool(services.jobs.get, job_id)
            if job.state in TERMINAL:
                yield sse.event(json.dumps({"status": job.state}), name="end")
                return
            if await request.is_disconnected():
                return
            if time.monotonic() - last_sent > STREAM_KEEPALIVE_S:
                yield sse.KEEPALIVE
                last_sent = time.monotonic()
            await asyncio.sleep(STREAM_POLL_S)
