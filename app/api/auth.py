"""FastAPI side of ``app.security``: where the key is read from, and the scope dependency.

Both schemes are FastAPI security dependencies, so the OpenAPI document declares them and
clients (and schemathesis) see how to authenticate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.api.middleware import set_rate_limit_headers
from app.api.schemas import ErrorResponse
from app.security import Guard
from app.security.keys import ApiKey

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
    """Texts in the request, for the texts-per-second bucket (see ``texts_in``)."""
    if request.method != "POST":
        return 1
    try:
        # FastAPI has parsed the JSON body already and the request caches it: no second parse.
        body: Any = await request.json()
    except (ValueError, RecursionError):
        # Not JSON, or nested too deep for the parser (a body whose content type is not
        # JSON escapes the depth check); the route's own validation answers it.
        return 1
    return texts_in(body)


# Where each route's body lists its texts: /classify, /v1/embeddings, /v1/rerank, /v1/recommend.
TEXT_LISTS = ("texts", "input", "documents", "candidates")


def texts_in(body: Any) -> int:
    """Texts a parsed body asks the models to read (at least one), for the texts bucket:
    the first non-empty list of ``TEXT_LISTS``, plus a recommend user's history."""
    if not isinstance(body, dict):
        return 1
    count = 0
    for key in TEXT_LISTS:
        value = body.get(key)
        if isinstance(value, list) and value:
            count = len(value)
            break
    user = body.get("user")
    history = user.get("history") if isinstance(user, dict) else None
    if isinstance(history, list):
        count += len(history)
    return max(count, 1)


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
        # Admin keys see every caller's knowledge bases (app/api/routes/knowledge_bases.py).
        request.state.api_key_admin = "admin" in key.scopes
        decision = await guard.limit(key, scope, texts)
        if decision is not None:
            # Left in the request state for ObserveMiddleware, which adds the headers to
            # whatever answer follows (a 200, a validation error, a queue-full 429): the client
            # sees its budget on every charged request, not only on refusals.
            set_rate_limit_headers(request.scope, decision.limit_headers())

    return dependency


def check_caller(request: Request) -> None:
    """The key check of ``require_scope``, for answers FastAPI gives before dependencies run:
    a body it cannot parse (invalid JSON, or not UTF-8) is read before any dependency.

    Raises ``Unauthorized`` as the dependency would, so a keyed deployment tells a caller
    without a valid key 401 whatever it sent. Every route that takes a body is keyed (the
    open ones, probes and /metrics, take none). The scope is checked once the body parses:
    FastAPI does not say, at this point, which dependencies the route has.
    """
    guard: Guard = request.app.state.guard
    guard.authenticate(_secret(request.scope))


class ScopeCheck:
    """``require_scope`` for plain ASGI endpoints (app/api/lean.py): the same keys, scopes,
    limits and headers, read straight from the ASGI scope without FastAPI's dependency solver.

    Two steps, because the texts bucket needs the parsed body but a caller without a valid
    key must be refused before its body is looked at.
    """

    def __init__(self, guard: Guard, *scopes: str) -> None:
        self.guard = guard
        self.scopes = scopes

    def identify(self, scope: MutableMapping[str, Any]) -> tuple[ApiKey, str] | None:
        """The caller's key and the scope it is charged to; ``None`` in open mode."""
        key = self.guard.authenticate(_secret(scope))
        if key is None:
            return None
        charged = self.guard.authorize(key, self.scopes)
        scope.setdefault("state", {})["api_key"] = key.name
        return key, charged

    async def charge(
        self, scope: MutableMapping[str, Any], who: tuple[ApiKey, str] | None, texts: int
    ) -> None:
        if who is None:
            return
        key, charged = who
        decision = await self.guard.limit(
            key, charged, texts if self.guard.limiter.counts_texts(charged) else 1
        )
        if decision is not None:
            set_rate_limit_headers(scope, decision.limit_headers())


def _secret(scope: MutableMapping[str, Any]) -> str | None:
    """The key as HTTPBearer then APIKeyHeader read it: ``Authorization: Bearer`` first."""
    bearer = header = None
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                bearer = credentials.strip()
        elif name == b"x-api-key":
            header = bytes(value).decode("latin-1")
    return bearer or header
