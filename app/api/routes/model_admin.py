"""POST /v1/models/{name}/promote and /rollback: move a model's active version."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.api.schemas import ErrorResponse
from app.api.schemas_jobs import Activation, PromoteRequest
from app.errors import Conflict, ModelNotFound
from app.service import Services
from app.store.manifest import check_name

router = APIRouter(prefix="/v1/models", tags=["models"])
log = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (404, 409, 422, 500)
}


def _activate(
    services: Services, name: str, version: int, reason: str, key: str | None
) -> Activation:
    previous = services.store.active_version(name)
    services.registry.promote(name, version, reason=reason)
    # The audit trail of what clients are served: who moved it, from what, to what.
    log.info(
        "%s: %s@%s active (was %s), by key %s",
        reason,
        name,
        version,
        previous,
        key or "-",
        extra={"model": name, "version": version, "previous": previous, "key": key},
    )
    engine = services.registry.active_engines().get(name)
    return Activation(
        model=name,
        active_version=version,
        previous_version=previous,
        loaded_version=engine.version if engine else None,
    )


@router.post("/{name}/promote", response_model=Activation, responses=ERRORS)
async def promote(
    name: str, body: PromoteRequest, services: ServicesDep, request: Request
) -> Activation:
    """Make `version` the active version of `name` on every replica."""
    check_name(name)
    if body.version not in services.store.versions(name):
        raise ModelNotFound(f"model {name!r} has no version {body.version}")
    key = getattr(request.state, "api_key", None)
    return await run_in_threadpool(_activate, services, name, body.version, "promote", key)


@router.post("/{name}/rollback", response_model=Activation, responses=ERRORS)
async def rollback(name: str, services: ServicesDep, request: Request) -> Activation:
    """Go back to the version that was active before the current one."""
    check_name(name)
    if not services.store.versions(name):
        raise ModelNotFound(f"no model named {name!r}")
    target = services.store.rollback_target(name)
    if target is None:
        raise Conflict(f"model {name!r} has no earlier active version to roll back to")
    key = getattr(request.state, "api_key", None)
    return await run_in_threadpool(_activate, services, name, target, "rollback", key)
