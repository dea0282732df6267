"""The lean HTTP path: ``POST /classify`` answered by a plain ASGI middleware.

FastAPI's request machinery (route matching across included routers, dependency solving,
body parsing through ``json`` then pydantic) costs about 0.3 ms of CPU per request here,
several times what the rest of the HTTP path costs; on a 2-core machine that is CPU the model
does not get. This answers the same contract with one pydantic ``model_validate_json`` call
(parsing and validation in Rust) and the same answer code as the FastAPI route, which stays
registered behind it: it documents the API (OpenAPI, clients, the schemathesis run) and
serves the path when ``lean_http`` is off.

It is the innermost middleware rather than a route: the service's own middleware (request
ids, metrics, access log, admission, body limits) still wraps it, while Starlette's exception
middleware, FastAPI's exit stack and the router, about a tenth of the event loop's CPU per
request (measured with py-spy), are skipped. Errors are answered by the app's own handlers
(app/api/errors.py), looked up as Starlette's exception middleware looks them up, so every
error reads exactly as on the other routes.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.routing import Route

from app.api.auth import ScopeCheck
from app.api.disconnect import unless_client_leaves
from app.api.middleware import ASGIApp, Receive, Scope, Send, header, is_json_type
from app.service import Services

# The answer to a valid request: (its JSON body, headers), serialized by the answer's own schema.
Answer = Callable[[Services, Any], Awaitable[tuple[bytes, dict[str, str]]]]
# How many texts a valid body holds, for the key's texts-per-second bucket.
CountTexts = Callable[[Any], int]
# The app's exception handlers, as ``FastAPI.exception_handlers`` holds them.
Handlers = Mapping[Any, Callable[[Request, Exception], Any]]


class LeanEndpoint:
    """Middleware answering JSON POSTs to ``path``: read the body, validate it into
    ``model``, answer with ``answer`` (the code and serializer the documented route uses
    too). Every other request goes on to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        model: type[BaseModel],
        answer: Answer,
        services: Services,
        check: ScopeCheck,
        count_texts: CountTexts,
        handlers: Handlers,
    ) -> None:
        self.app = app
        self.path = path
        self.model = model
        self.answer = answer
        self.services = services
        self.check = check
        self.count_texts = count_texts
        # Read at each error, not copied: handlers may be registered after this is built.
        self.handlers = handlers
        # Only for its template: the metrics and access log label requests by route.
        self.route = Route(path, self._unused, methods=["POST"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or _route_path(scope) != self.path
            or not is_json_type(header(scope, b"content-type"))
        ):
            # Other methods on the path too: the router answers them (405), as before; and
            # bodies not declared JSON, which FastAPI refuses (422) as on every other route.
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        answered = False
        try:
            encoded, headers = await self._handle(scope, receive)
            raw_headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(encoded)).encode()),
            ]
            raw_headers.extend((k.encode(), v.encode("latin-1")) for k, v in headers.items())
            answered = True
            await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
            await send({"type": "http.response.body", "body": encoded})
        except Exception as exc:
            handler = None if answered else self._handler_for(exc)
            if handler is None:
                raise  # to Starlette's server-error middleware, as from any route
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[bytes, dict[str, str]]:
        # As with the FastAPI dependency: no valid key, no look at the body.
        who = self.check.identify(scope)
        raw = await _read_body(receive)
        try:
            body = self.model.model_validate_json(raw)
        except ValidationError as exc:
            errors = _as_body_errors(exc)
            # Charged like the FastAPI route: a body that is JSON counts, one that is not
            # never reaches the dependency that charges.
            if not any(e.get("type") == "json_invalid" for e in errors):
                await self.check.charge(scope, who, 1)
            raise RequestValidationError(errors) from None
        await self.check.charge(scope, who, self.count_texts(body))
        return await unless_client_leaves(self.answer(self.services, body), receive)

    def _handler_for(self, exc: Exception) -> Callable[[Request, Exception], Any] | None:
        """The handler Starlette's exception middleware would pick: by the exception's class
        hierarchy, leaving ``Exception`` (and 500) to the server-error middleware."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None

    async def _unused(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the lean route is never routed to")  # pragma: no cover


def _route_path(scope: Scope) -> str:
    """The path the router would match: without the ``root_path`` a proxy mounts us under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _as_body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors with ``body`` first in each location, as FastAPI reports them."""
    errors: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        item = dict(error)
        item["loc"] = ("body", *error.get("loc", ()))
        errors.append(item)
    return errors
