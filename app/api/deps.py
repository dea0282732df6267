"""Annotated dependencies that keep route handlers short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.knowledge.service import Caller
from app.service import Services


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def caller_of(request: Request) -> Caller:
    """Who asks, as the key check recorded it: the key's name (None on an open service)
    and whether it holds the admin scope (which sees every caller's knowledge bases)."""
    return Caller(
        getattr(request.state, "api_key", None),
        admin=bool(getattr(request.state, "api_key_admin", False)),
    )
