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
        intake = _Intake(self, receive, scope["path"].startswith(self.streamed))
        try:
            await self.app(scope, intake, send)
        finally:
            intake.close()

    def admit(self) -> None:
        """Take a place in flight for a request whose body is in, or raise 503."""
        if self._full():
            self.metrics.rejections.labels("-", "overloaded").inc()
            raise BodyRejected(503, "overloaded", self._message, param=None)
        self.inflight += 1

    def timed_out(self) -> BodyRejected:
        self.metrics.rejections.labels("-", "body_timeout").inc()
        return BodyRejected(
            408,
            "request_timeout",
            f"body: not received within {self.body_timeout_s:g} s",
            headers={"Connection": "close"},
        )

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


class _Intake:
    """The app's ``receive`` for one request with a body: admits the request once the body
    is in, and refuses a body late past its deadline.

    One timer per request rather than a timeout around each read (``asyncio.timeout``): this
    runs for every request, and the timer costs a fraction of the context manager. When it
    fires during a read, it cancels the task (blocked in that read, nowhere else); between two
    reads, it only marks the body late, and the next read refuses it.
    """

    __slots__ = ("admitted", "gate", "late", "receive", "streamed", "task", "timer", "waiting")

    def __init__(self, gate: AdmissionMiddleware, receive: Receive, streamed: bool) -> None:
        self.gate = gate
        self.receive = receive
        self.streamed = streamed
        self.task = asyncio.current_task()
        self.timer: asyncio.TimerHandle | None = self._start_timer()
        self.waiting = self.late = self.admitted = False

    def _start_timer(self) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(self.gate.body_timeout_s, self._expire)

    def _expire(self) -> None:
        self.timer = None
        self.late = True
        if self.waiting and self.task is not None:
            self.task.cancel()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def __call__(self) -> Message:
        # Raised errors surface in the app's own read of the body, where FastAPI lets an
        # HTTPException through and the app's handlers answer it (app/api/errors.py).
        if self.admitted:  # the body is in: later reads only wait for a disconnect
            return await self.receive()
        if not self.late:
            self.waiting = True
            try:
                message = await self.receive()
            except asyncio.CancelledError:
                # Ours only if the deadline passed and nobody else cancelled the task too.
                if not self.late or self.task is None or self.task.uncancel() > 0:
                    raise
            else:
                return self._took(message)
            finally:
                self.waiting = False
        raise self.gate.timed_out()

    def _took(self, message: Message) -> Message:
        if message["type"] == "http.disconnect":
            self._stop_timer()
            raise BodyRejected(
                CLIENT_GONE_STATUS, "client_gone", "body: the client left before sending it"
            )
        if message.get("more_body", False):
            if self.streamed:  # an upload: the deadline is between two chunks
                self._stop_timer()
                self.timer = self._start_timer()
            return message
        self._stop_timer()
        self.gate.admit()
        self.admitted = True
        return message

    def close(self) -> None:
        self._stop_timer()
        if self.admitted:
            self.gate.inflight -= 1


def _has_body(scope: Scope) -> bool:
    """Whether the request declares a body: a non-zero Content-Length, or a chunked one."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            return bytes(value).strip() not in (b"", b"0")
        if key == b"transfer-encoding":
            return True
    return False
