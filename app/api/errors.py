"""The one mapping from domain errors to HTTP answers."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors
from app.api.auth import check_caller
from app.api.disconnect import CLIENT_GONE_STATUS, ClientGone
from app.api.middleware import BodyRejected
from app.knowledge import errors as knowledge
from app.training.errors import BaseModelUnavailable, InvalidDataset

log = logging.getLogger(__name__)

STATUS: dict[type[errors.TextserveError], int] = {
    errors.ModelNotFound: 404,
    errors.InvalidModelName: 422,
    errors.WrongModelTask: 422,
    errors.ModelNotReady: 503,
    errors.CorruptModel: 500,
    errors.Overloaded: 429,
    errors.DeadlineExceeded: 504,
    errors.ShuttingDown: 503,
    errors.InferenceFailed: 500,
    errors.FileNotFound: 404,
    errors.JobNotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.TaskNotAvailable: 422,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.RateLimited: 429,
    errors.SharedStateUnavailable: 503,
    errors.JobStoreUnavailable: 503,
    errors.ConversationNotFound: 404,
    InvalidDataset: 422,
    BaseModelUnavailable: 422,
    # Knowledge bases (docs/knowledge-bases.md); DocumentTooLarge is a PayloadTooLarge (413)
    # and ReindexRequired a Conflict (409).
    knowledge.KnowledgeBaseNotFound: 404,
    knowledge.DocumentNotFound: 404,
    knowledge.CollectionNotFound: 404,
    knowledge.InvalidDocument: 422,
    knowledge.InvalidVectors: 422,
}
RETRYABLE = {429, 503}
# What FastAPI's 400 says when it cannot read a JSON body (not UTF-8): no other trait marks it.
FASTAPI_BODY_ERROR = "There was an error parsing the body"


class InvalidInput(errors.TextserveError):
    """A request field breaks a limit that only the server's settings know."""

    code = "invalid_request"

    def __init__(self, param: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    detail: Any = None,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body: dict[str, Any] = {
        "error": {
            "type": code,
            "message": message,
            "param": param,
            # OpenAI's envelope carries the machine-readable code as `code` (its SDK's `e.code`).
            "code": code,
            "request_id": request_id,
        }
    }
    if detail is not None:
        body["detail"] = detail
    headers = dict(headers or {})
    if status in RETRYABLE:
        headers.setdefault("Retry-After", str(request.app.state.services.settings.retry_after_s))
    return JSONResponse(body, status_code=status, headers=headers)


def _loc_to_param(loc: Any) -> str:
    # Only the first element says where (body, query string, path): a body field may be
    # called `query` (a knowledge-base search) and must still be named.
    loc = list(loc)
    if loc and loc[0] in ("body", "query", "path"):
        loc = loc[1:]
    parts = [str(p) for p in loc]
    return ".".join(parts) if parts else "body"


def allowed_methods(app: FastAPI, path: str) -> str | None:
    """The methods the OpenAPI document lists for ``path``, for a 405's ``Allow``; ``None``
    for a path it does not describe (/docs), where Starlette's own header stands.

    Starlette names only the methods of the first route whose path matched: for
    ``/v1/files/{file_id}`` (GET and DELETE, two routes) it would say ``Allow: GET``.
    """
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        if _template_regex(template).match(path):
            methods |= {m.upper() for m in operations if m.upper() in HTTP_METHODS}
    if not methods:
        return None
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return ", ".join(sorted(methods))


HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


@functools.lru_cache(maxsize=256)
def _template_regex(template: str) -> re.Pattern[str]:
    """``/v1/files/{file_id}`` as a regex over request paths (a parameter is one segment)."""
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


def _refused_caller(request: Request) -> errors.TextserveError | None:
    """Why the route's key check refuses this caller (401, 403), if it does."""
    try:
        check_caller(request)
    except errors.Unauthorized as refused:
        return refused
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidInput)
    async def _invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        return error_response(request, exc.status, exc.code, f"{exc.param}: {exc}", exc.param)

    @app.exception_handler(errors.TextserveError)
    async def _domain(request: Request, exc: errors.TextserveError) -> JSONResponse:
        return domain_error(request, exc)

    def domain_error(request: Request, exc: errors.TextserveError) -> JSONResponse:
        status = next((s for t, s in STATUS.items() if isinstance(exc, t)), 500)
        # 503 and 504 are load, not faults: the metrics and the access log count them.
        if status >= 500 and status not in (503, 504):
            log.error("request %s failed: %s", getattr(request.state, "request_id", "-"), exc)
        param = "model" if isinstance(exc, errors.ModelNotFound | errors.InvalidModelName) else None
        # Errors may name the offending field and carry details (a data set's line number).
        param = getattr(exc, "param", None) or param
        if param is None and isinstance(exc, errors.FileNotFound | errors.JobNotFound):
            # An id from the path (/v1/files/{file_id}): that is the field at fault.
            param = next((k for k in ("file_id", "job_id") if k in request.path_params), None)
        detail = getattr(exc, "detail", None)
        # Errors may carry headers: WWW-Authenticate on 401, X-RateLimit-* and Retry-After on 429.
        headers = getattr(exc, "headers", None)
        return error_response(request, status, exc.code, str(exc), param, headers, detail)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        first = problems[0] if problems else {"loc": ("body",), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            refused = _refused_caller(request)
            if refused is not None:
                return domain_error(request, refused)
            # FastAPI locates a JSON syntax error by character offset: the field is the body.
            param = "body"
            ctx: Any = first.get("ctx") or {}
            reason = ctx.get("error") if isinstance(ctx, dict) else None
            reason = reason or first.get("msg", "")
            message = f"body: invalid JSON: {reason}"
        else:
            param = _loc_to_param(first.get("loc", ()))
            message = f"{param}: {first.get('msg', 'invalid value')}"
        detail = [
            {"loc": list(p.get("loc", ())), "msg": p.get("msg"), "type": p.get("type")}
            for p in problems
        ]
        return error_response(request, 422, "invalid_request", message, param, detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_ERROR:
            # FastAPI's "error parsing the body": a JSON body that is not UTF-8 text. The key
            # comes first; then it is refused as the lean path and a JSON syntax error are
            # (422 naming the body), not with a status the schema does not list.
            refused = _refused_caller(request)
            if refused is not None:
                return domain_error(request, refused)
            reason = exc.__cause__ if isinstance(exc.__cause__, UnicodeError) else exc.detail
            message = f"body: invalid JSON: {reason}"
            detail = [{"loc": ["body"], "msg": f"invalid JSON: {reason}", "type": "json_invalid"}]
            return error_response(request, 422, "invalid_request", message, "body", detail=detail)
        if isinstance(exc, BodyRejected):
            code, param = exc.code, exc.param
        elif exc.status_code == 413:
            code, param = "payload_too_large", "body"
        else:
            code, param = "http_error", None
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            root = request.scope.get("root_path", "")
            path = request.url.path.removeprefix(root) if root else request.url.path
            allow = allowed_methods(request.app, path)
            if allow is not None:
                headers = {**(headers or {}), "Allow": allow}
        return error_response(request, exc.status_code, code, str(exc.detail), param, headers)

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> Response:
        # Nobody reads this: it is for the metrics and the access log (app/api/disconnect.py).
        return Response(status_code=CLIENT_GONE_STATUS)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in request %s", getattr(request.state, "request_id", "-"))
        return error_response(request, 500, "internal_error", "internal error; see the server log")
