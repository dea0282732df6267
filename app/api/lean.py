"""The lean HTTP path: ``POST /classify`` as a plain ASGI endpoint.

FastAPI's request machinery (route matching across included routers, dependency solving,
body parsing through ``json`` then pydantic) costs about 0.3 ms of CPU per request here,
several times what the rest of the HTTP path costs; on a 2-core machine that is CPU the model
does not get. This endpoint answers the same contract with one pydantic ``model_validate_json``
call (parsing and validation in Rust) and the same answer code as the FastAPI route, which
stays registered behind it: it documents the API (OpenAPI, clients, the schemathesis run)
and serves the path when ``lean_http`` is off. Errors are raised, not answered here, so the
app's one error mapping (app/api/errors.py) answers them exactly as on every other route.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.routing import Route

from app.api.auth import ScopeCheck
from app.api.middleware import Receive, Scope, Send
from app.service import Services

# The answer to a valid request: (JSON payload, headers).
Answer = Callable[[Services, Any], Awaitable[tuple[dict[str, Any], dict[str, str]]]]
# How many texts a valid body holds, for the key's texts-per-second bucket.
CountTexts = Callable[[Any], int]


class LeanEndpoint:
    """A JSON POST endpoint: read the body, validate it into ``model``, answer with ``answer``."""

    def __init__(
        self,
        path: str,
        model: type[BaseModel],
        answer: Answer,
        services: Services,
        check: ScopeCheck,
        count_texts: CountTexts,
    ) -> None:
        self.path = path
        self.model = model
        self.answer = answer
        self.services = services
        self.check = check
        self.count_texts = count_texts
        self.route = Route(path, self, methods=["POST"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The metrics and access log label requests by route template, as for FastAPI routes.
        scope["route"] = self.route
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
                self.check.charge(scope, who, 1)
            raise RequestValidationError(errors) from None
        self.check.charge(scope, who, self.count_texts(body))
        payload, headers = await self.answer(self.services, body)
        encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(encoded)).encode()),
        ]
        raw_headers.extend((k.encode(), v.encode("latin-1")) for k, v in headers.items())
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        await send({"type": "http.response.body", "body": encoded})


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
