"""Annotated dependencies that keep route handlers short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.service import Services


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
