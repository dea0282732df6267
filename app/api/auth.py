"""FastAPI side of ``app.security``: where the key is read from, and the scope dependency.

Both schemes are FastAPI security dependencies, so the OpenAPI document declares them and
clients (and schemathesis) see how to authenticate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.api.schemas import ErrorResponse
from app.security import Guard

bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="`Authorization: Bearer <API key>`"
)
header_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="`X-API-Key: <key>`"
)
# Documented on every protected route: what a missing key, a wrong scope, a full bucket get.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No valid API key."},
    403: {"model": ErrorResponse, "description": "The key lacks the route's scope."},
    429: {"model": ErrorResponse, "description": "Rate limited or overloaded; see Retry-After."},
}
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
HeaderDep = Annotated[str | None, Depends(header_scheme)]


async def count_texts(request: Request) -> int:
    """Texts in the request, for the texts-per-second bucket: ``texts`` or one."""
    if request.method != "POST":
        return 1
    try:
        # FastAPI has parsed the JSON body already and the request caches it: no second parse.
        body: Any = await request.json()
    except ValueError:
        return 1
    texts = body.get("texts") if isinstance(body, dict) else None
    return len(texts) if isinstance(texts, list) and texts else 1


def require_scope(*scopes: str) -> Callable[..., Awaitable[None]]:
    """A dependency admitting keys holding any of ``scopes``, within their rate limits."""

    async def dependency(request: Request, bearer: BearerDep, header: HeaderDep) -> None:
        guard: Guard = request.app.state.guard
        key = guard.authenticate(bearer.credentials if bearer else header)
        if key is None:
            return  # open mode: no keys configured, no identity to limit
        scope = guard.authorize(key, scopes)
        texts = await count_texts(request) if guard.limiter.counts_texts(scope) else 1
        # The key's name, not its secret, is what logs and the access log may show.
        request.state.api_key = key.name
        guard.limit(key, scope, texts)

    return dependency
