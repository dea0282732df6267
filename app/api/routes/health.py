"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep
from app.api.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, response_model_exclude_defaults=True)
async def healthz() -> dict[str, str]:
    """The process is alive and its event loop answers."""
    return {"status": "ok"}  # models omitted: liveness says nothing about them


@router.get("/readyz", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 once every active model is loaded and warmed; 503 with the reason before that.
    With a shared Redis, ``redis`` says whether it answers (it does not make this 503)."""
    state = services.registry.state
    models = {n: e.ref for n, e in services.registry.active_engines().items()}
    if services.draining:
        status, reason, code = "draining", "the service is shutting down", 503
    elif not state.ready:
        status, reason, code = "not_ready", state.reason, 503
    else:
        status, reason, code = "ready", None, 200
    headers = {"Retry-After": str(services.settings.retry_after_s)} if code == 503 else None
    body: dict[str, object] = {"status": status, "reason": reason, "models": models}
    if services.redis is not None:
        # Reported, not a reason to be unready: serving goes on without it (docs/scale-out.md).
        body["redis"] = "ok" if await services.redis.ping() else "unavailable"
    return JSONResponse(body, status_code=code, headers=headers)


# HEAD too, with the same status: load balancers and uptime checkers often probe with it.
# Outside the schema, where it would only repeat the GET operations.
for _path, _probe in (("/healthz", healthz), ("/readyz", readyz)):
    router.add_api_route(_path, _probe, methods=["HEAD"], include_in_schema=False)
