"""Admission control: a cap on requests in flight (503 + ``Retry-After`` beyond it), and a
deadline on receiving a request's body.

The batcher's queue limit (429) only guards the model. When the CPU itself is the
bottleneck, requests pile up before they reach it (reading, parsing, tokenizing) and their
latency grows without bound; this cap refuses them at the door instead, cheaply.

A request with a body takes its place in flight when the body's last byte has arrived, not
when its headers have: a client that sends its body slowly, or never, holds no place
meanwhile, so a few hundred half-sent bodies cannot lock everyone else out. The body has
``body_timeout_s`` to arrive whole (a streamed upload: that long between two chunks), else
the answer is 408 and the connection is closed. A client that disconnects before sending
the whole body is counted 499, as one that leaves while its answer is computed.
"""

from __future__ import annotations

import asyncio

from app.api.disconnect import CLIENT_GONE_STATUS
from app.api.middleware import (
    ASGIApp,
    BodyRejected,
    Message,
    Receive,
    Scope,
    Send,
    error_body,
    header,
)
from app.metrics import Metrics

# Probes and scrapes must answer even when the service is full.
EXEMPT = ("/healthz", "/readyz", "/metrics")


class AdmissionMiddleware:
    """Answers 503 when ``max_inflight`` requests are already being served (0: no cap), and
    408 to a body that takes longer than ``body_timeout_s`` to arrive.

    ``streamed``: path prefixes whose bodies are uploads, read chunk by chunk as they come;
    their deadline is between two chunks rather than for the whole body.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_inflight: int,
        retry_after_s: int,
        metrics: Metrics,
        body_timeout_s: float,
        streamed: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.retry_after_s = retry_after_s
        self.metrics = metrics
        self.body_timeout_s = body_timeout_s
        self.streamed = streamed
        # One event loop per app: a plain counter needs no lock.
        self.inflight = 0

    def _full(self) -> bool:
        return bool(self.max_inflight) and self.inflight >= self.max_inflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if not _has_body(scope):
            if self._full():
                self.metrics.rejections.labels("-", "overloaded").inc()
                await self._refuse(scope, send)
                return
            self.inflight += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.inflight -= 1
            return
        admitted = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        streamed = scope["path"].startswith(self.streamed) if self.streamed else False

        async def intake() -> Message:
            # Raised errors surface in the app's own read of the body, where FastAPI lets an
            # HTTPException through and the app's handlers answer it (app/api/errors.py).
            nonlocal admitted, deadline
            if admitted:  # the body is in: later reads only wait for a disconnect
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                self.metrics.rejections.labels("-", "body_timeout").inc()
                raise BodyRejected(
                    408,
                    "request_timeout",
                    f"body: not received within {self.body_timeout_s:g} s",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.disconnect":
                raise BodyRejected(
                    CLIENT_GONE_STATUS, "client_gone", "body: the client left before sending it"
                )
            if message.get("more_body", False):
                if streamed:
                    deadline = loop.time() + self.body_timeout_s
                return message
            if self._full():
                self.metrics.rejections.labels("-", "overloaded").inc()
                raise BodyRejected(503, "overloaded", self._message, param=None)
            self.inflight += 1
            admitted = True
            return message

        try:
            await self.app(scope, intake, send)
        finally:
            if admitted:
                self.inflight -= 1

    @property
    def _message(self) -> str:
        return f"more than {self.max_inflight} requests in flight; retry later"

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = error_body(scope, "overloaded", self._message, None)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after_s).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _has_body(scope: Scope) -> bool:
    """Whether the request declares a body: a non-zero Content-Length, or a chunked one."""
    length = header(scope, b"content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return header(scope, b"transfer-encoding") is not None
