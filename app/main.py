"""Application factory: ``create_app(settings)`` builds every part and wires the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api.errors import install_error_handlers
from app.api.middleware import BodyLimitMiddleware, ObserveMiddleware
from app.api.routes import admin, chat, classify, health, metrics, models, reply
from app.config import Settings
from app.logs import configure_logging
from app.service import Services

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service. Nothing is read from the environment after this call."""
    settings = settings or Settings()
    services = Services.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Here rather than at build time: uvicorn has set up its loggers by now, and we take over.
        configure_logging(settings.log_level, settings.log_format)
        services.start()
        try:
            yield
        finally:
            # Uvicorn has already finished in-flight requests by now; drain the queues.
            services.stop()

    app = FastAPI(
        title="textserve",
        version=__version__,
        description="Text classification and customer-service replies on ONNX Runtime.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    for router in (classify.router, models.router, health.router, metrics.router):
        app.include_router(router)
    app.include_router(reply.router)
    app.include_router(chat.router)
    # Files, fine-tunes, promote and rollback: admin routes, grouped for access control.
    app.include_router(admin.router)
    # Order: the outermost middleware is added last.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        metrics=services.metrics,
        exempt=("/v1/files",),
    )
    app.add_middleware(ObserveMiddleware, metrics=services.metrics)
    return app
