"""Pure ASGI middleware: request ids, HTTP metrics, access log, rate-limit headers, body
size and JSON nesting limits.

Written against ASGI directly rather than ``BaseHTTPMiddleware``: that wrapper adds a task
and a stream per request, which costs measurable CPU on a small machine.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from app.api.json_depth import exceeds_depth
from app.logs import access_log, log_access
from app.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Where a granted request's rate-limit headers wait in the request state for the answer.
RATE_LIMIT_STATE = "rate_limit_headers"


def set_rate_limit_headers(scope: Scope, headers: dict[str, str]) -> None:
    """Have the answer to this request carry ``headers`` (the key's ``X-RateLimit-*``).

    ObserveMiddleware appends them to whatever answer follows: the 200, but also a
    validation error or a full queue's 429, so a client sees its budget on every request
    charged to it. Encoded here, once, so the response path only appends a list.
    """
    encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    scope.setdefault("state", {})[RATE_LIMIT_STATE] = encoded


class BodyRejected(HTTPException):
    """A request body refused by a middleware, carrying the error envelope's ``type``.

    Raised inside the app's own read of the body: FastAPI passes ``HTTPException`` through
    its body parsing, so the app's handler (app/api/errors.py) answers it in the envelope.
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        param: str | None = "body",
    ) -> None:
        super().__init__(status_code, message, headers)
        self.code = code
        self.param = param


def error_body(scope: Scope, code: str, message: str, param: str | None) -> bytes:
    """The error envelope, as the app's handlers write it (app/api/errors.py), for the
    middleware that answers before the app is reached."""
    request_id = scope.get("state", {}).get("request_id")
    error = {
        "type": code,
        "message": message,
        "param": param,
        "code": code,
        "request_id": request_id,
    }
    return json.dumps({"error": error}, separators=(",", ":"), ensure_ascii=False).encode()


# Request ids: a random prefix per process and a counter. uuid4 reads the OS's random source
# on every call, which measured ~45 us per request here; ids need to be unique, not secret.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class ObserveMiddleware:
    """Gives each request an id (``X-Request-ID`` in and out), records its metrics, logs it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Labelled children by (route, method, status): ``.labels()`` costs a lookup under a
        # lock per call, twice per request. Routes are templates, so the keys are few.
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = header(scope, b"x-request-id") or new_request_id()
        if len(request_id) > 128:
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        response_headers: list[tuple[bytes, bytes]] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                response_headers = list(message["headers"])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                    # The key's X-RateLimit-* on every answer to a charged request (see
                    # set_rate_limit_headers); a refusal carries its own and leaves none here.
                    *scope["state"].get(RATE_LIMIT_STATE, ()),
                ]
            await send(message)

        self.metrics.http_inflight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.http_inflight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            labels = (template, scope["method"], str(status))
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = (
                    self.metrics.http_requests.labels(*labels),
                    self.metrics.http_duration.labels(*labels),
                )
            series[0].inc()
            elapsed = time.perf_counter() - started
            series[1].observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                log_access(
                    access_fields(request_id, scope, template, status, elapsed, response_headers)
                )


class BodyLimitMiddleware:
    """Answers 413 for bodies over ``max_bytes``, by Content-Length or while streaming.

    Either way the refusal is raised inside the app's own read of the body, so the app's
    error handler answers it, after routing: the metrics and the access log name the route.
    A body declared too large is refused before a byte of it is read.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, metrics: Metrics, exempt: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        # A declared size counts as seen at once: over the limit, not a byte is read.
        counting = declared is None or not declared.isdigit()
        seen = 0 if counting else int(declared or 0)

        async def limited_receive() -> Message:
            nonlocal seen
            if seen <= self.max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                if counting:
                    seen += len(message.get("body", b""))
                if seen <= self.max_bytes:
                    return message
            self.metrics.rejections.labels("-", "payload_too_large").inc()
            raise HTTPException(413, self._message)

        await self.app(scope, limited_receive, send)

    @property
    def _message(self) -> str:
        return f"body: request body exceeds the limit of {self.max_bytes} bytes"


class JsonDepthMiddleware:
    """Answers 422 for JSON bodies nested deeper than ``max_depth``, before they are parsed.

    The check runs as the app reads the last chunk of the body, so a route never parses such
    a body, whatever reads it (FastAPI, a dependency, a plain ASGI endpoint). Bodies that are
    not JSON by their content type pass untouched, as do the ``exempt`` path prefixes
    (streamed uploads, which this would otherwise hold in memory whole).
    """

    def __init__(
        self, app: ASGIApp, max_depth: int, metrics: Metrics, exempt: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.max_depth = max_depth
        self.metrics = metrics
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"].startswith(self.exempt)
            or not is_json_type(header(scope, b"content-type"))
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def checked_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                if exceeds_depth(body, self.max_depth):
                    self.metrics.rejections.labels("-", "invalid_input").inc()
                    raise BodyRejected(422, "invalid_request", self._message)
            return message

        await self.app(scope, checked_receive, send)

    @property
    def _message(self) -> str:
        return f"body: JSON nesting depth exceeds the limit of {self.max_depth}"


def is_json_type(content_type: str | None) -> bool:
    """Whether a body of this content type is read as JSON by some part of the service.

    ``application/json`` and ``application/*+json``, as FastAPI reads them; and no content
    type at all, which the auth dependency still reads as JSON to count texts.
    """
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


# Response headers a route sets for the access log (and the client): model, version, stage
# times in milliseconds. Keys are the access log's field names.
MODEL_HEADERS = {b"x-model": "model", b"x-model-version": "version"}
TIMING_HEADERS = {
    b"x-total-time": "total_ms",
    b"x-queue-time": "queue_ms",
    b"x-tokenization-time": "tokenization_ms",
    b"x-inference-time": "inference_ms",
}


def _text(value: bytes) -> str:
    return bytes(value).decode("latin-1")


def _version(value: bytes) -> int | str:
    text = bytes(value).decode("latin-1")
    return int(text) if text.isdigit() else text


def _ms(value: bytes) -> float:
    return float(value)  # float() reads ASCII bytes as it reads text


# Each access-log header: its field and how its value is read. One lookup per response
# header: this runs for every request on the event loop.
_ACCESS_HEADERS: dict[bytes, tuple[str, Callable[[bytes], Any]]] = {
    b"x-model": ("model", _text),
    b"x-model-version": ("version", _version),
    **{name: (field, _ms) for name, field in TIMING_HEADERS.items()},
}


def model_headers(model: str, version: int) -> dict[str, str]:
    """Headers naming the model version that answered; the access log reads them back."""
    return {"x-model": model, "x-model-version": str(version)}


def access_fields(
    request_id: str,
    scope: Scope,
    route: str,
    status: int,
    elapsed_s: float,
    response_headers: list[tuple[bytes, bytes]],
) -> dict[str, Any]:
    """The access log's fields for one request; timings and model only where the route set them."""
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": scope["method"],
        "path": scope["path"],
        "route": route,
        "status": status,
        "duration_ms": round(elapsed_s * 1000.0, 3),
    }
    # The API key's name where keys are configured: who sent it, for audits and abuse.
    api_key = scope["state"].get("api_key") if "state" in scope else None
    if api_key is not None:
        fields["key"] = api_key
    for key, value in response_headers:
        # ASGI answers carry lower-case names; an app may still send others.
        spec = _ACCESS_HEADERS.get(key)
        if spec is None and key.startswith((b"x-", b"X-")):
            spec = _ACCESS_HEADERS.get(bytes(key).lower())
        if spec is not None:
            # Not contextlib.suppress: a context manager per header, on the hot path.
            try:  # noqa: SIM105
                fields[spec[0]] = spec[1](value)
            except ValueError:  # a malformed time is left out, not logged as garbage
                pass
    return fields


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
