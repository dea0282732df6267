"""Application factory: ``create_app(settings)`` builds every part and wires the routes."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from app import __version__
from app.api.admission import AdmissionMiddleware
from app.api.api_docs import install_api_docs
from app.api.auth import AUTH_ERRORS, ScopeCheck, require_scope
from app.api.errors import install_error_handlers
from app.api.lean import LeanEndpoint
from app.api.middleware import BodyLimitMiddleware, JsonDepthMiddleware, ObserveMiddleware
from app.api.routes import (
    admin,
    chat,
    classify,
    conversations,
    embeddings,
    health,
    knowledge_bases,
    metrics,
    models,
    monitor,
    ranking,
    reply,
)
from app.api.schemas import ClassifyRequest
from app.cluster.redis_link import RedisLink
from app.config import Settings
from app.knowledge.service import EmbedderResolver
from app.logs import configure_logging
from app.security import Guard
from app.service import Services

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, embedders: EmbedderResolver | None = None
) -> FastAPI:
    """Build the service. Nothing is read from the environment after this call.

    ``embedders``: how knowledge bases find embedders (default: the served embedding models).
    """
    settings = settings or Settings()
    # The shared Redis, if any (connects on first use): the guard's limits and the
    # services' conversations and promotion nudges share its connection pool and health.
    redis = RedisLink.from_settings(settings)
    # First: a service told to require keys must not build anything without them.
    guard = Guard.build(settings, redis)
    services = Services.build(settings, redis, embedders)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Here rather than at build time: uvicorn has set up its loggers by now, and we take over.
        configure_logging(settings.log_level, settings.log_format)
        # A runner thread back from ONNX Runtime needs the GIL to hand its outputs over; with
        # the event loop busy it waits up to the switch interval (CPython: 5 ms), its core
        # idle meanwhile. A shorter interval keeps the model's cores fed under load.
        sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
        guard.announce()
        services.start()
        try:
            yield
        finally:
            # Uvicorn has already finished in-flight requests by now; drain the queues.
            services.stop()
            await services.aclose()
            # Buffered log lines (app/logs.py) reach stderr before the process exits.
            for handler in logging.getLogger().handlers:
                handler.flush()

    app = FastAPI(
        title="textserve",
        version=__version__,
        description="Text classification and customer-service replies on ONNX Runtime.",
        lifespan=lifespan,
        **_telemetry(settings),
        # /docs and /redoc are installed below, with their assets served from this app.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    if settings.docs:
        install_api_docs(app, openapi_url="/openapi.json")
    app.state.services = services
    app.state.guard = guard
    install_error_handlers(app)
    # Access control in one place: each router's scope (API keys; see app/security).
    infer = [Depends(require_scope("infer"))]
    app.include_router(health.router)  # probes stay open: kubelets carry no keys
    app.include_router(
        metrics.router,
        dependencies=[Depends(require_scope("metrics"))] if settings.metrics_require_key else [],
        responses=AUTH_ERRORS if settings.metrics_require_key else None,
    )
    for router in (
        classify.router,
        reply.router,
        chat.router,
        monitor.router,
        conversations.router,
        embeddings.router,
        ranking.router,
    ):
        app.include_router(router, dependencies=infer, responses=AUTH_ERRORS)
    # Reading the model list is for any caller; changing it (model_admin) is for admins.
    app.include_router(
        models.router,
        dependencies=[Depends(require_scope("infer", "admin"))],
        responses=AUTH_ERRORS,
    )
    # Knowledge bases: any caller may keep its own; an admin key sees and manages all.
    app.include_router(
        knowledge_bases.router,
        dependencies=[Depends(require_scope("infer", "admin"))],
        responses=AUTH_ERRORS,
    )
    # Files, fine-tunes, promote and rollback: admin routes, grouped for access control.
    app.include_router(
        admin.router, dependencies=[Depends(require_scope("admin"))], responses=AUTH_ERRORS
    )
    # Order: the outermost middleware is added last.
    if settings.lean_http:
        # Innermost: POST /classify is answered here, inside the service's own middleware
        # and before Starlette's; the FastAPI route behind it keeps documenting the
        # contract (see app/api/lean.py).
        app.add_middleware(
            LeanEndpoint,
            path="/classify",
            model=ClassifyRequest,
            answer=classify.answer,
            services=services,
            check=ScopeCheck(guard, "infer"),
            count_texts=_count_classify_texts,
            handlers=app.exception_handlers,
        )
    # Innermost of the body checks: the size limit has refused an oversized body first.
    app.add_middleware(
        JsonDepthMiddleware,
        max_depth=settings.max_json_depth,
        metrics=services.metrics,
        exempt=("/v1/files",),
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        metrics=services.metrics,
        exempt=("/v1/files",),
    )
    # Inside ObserveMiddleware, so refusals are counted and logged with a request id.
    app.add_middleware(
        AdmissionMiddleware,
        max_inflight=settings.max_inflight_requests,
        retry_after_s=settings.retry_after_s,
        metrics=services.metrics,
        body_timeout_s=settings.body_timeout_s,
        streamed=("/v1/files",),
    )
    app.add_middleware(ObserveMiddleware, metrics=services.metrics)
    return app


def _count_classify_texts(body: ClassifyRequest) -> int:
    return len(body.texts) if body.texts else 1


def _telemetry(settings: Settings) -> dict[str, Any]:
    """FastAPI's native OpenTelemetry instrumentation, on only when asked for.

    Unconfigured, it still checks the global providers on every request (reading environment
    variables each time): ~6 % of the event loop's CPU per /classify request under py-spy,
    for nothing. The service's own metrics are Prometheus (``/metrics``). FastAPI versions
    without native telemetry take no such argument.
    """
    if settings.opentelemetry or "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
