"""Admission control: a cap on requests in flight, answered 503 + ``Retry-After`` beyond it.

The batcher's queue limit (429) only guards the model. When the CPU itself is the
bottleneck, requests pile up before they reach it (reading, parsing, tokenizing) and their
latency grows without bound; this cap refuses them at the door instead, cheaply.
"""

from __future__ import annotations

import json

from app.api.middleware import ASGIApp, Receive, Scope, Send
from app.metrics import Metrics

# Probes and scrapes must answer even when the service is full.
EXEMPT = ("/healthz", "/readyz", "/metrics")


class AdmissionMiddleware:
    """Answers 503 when ``max_inflight`` requests are already being served (0: no cap)."""

    def __init__(self, app: ASGIApp, max_inflight: int, retry_after_s: int, metrics: Metrics):
        self.app = app
        self.max_inflight = max_inflight
        self.retry_after_s = retry_after_s
        self.metrics = metrics
        # One event loop per app: a plain counter needs no lock.
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_inflight or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            self.metrics.rejections.labels("-", "overloaded").inc()
            await self._refuse(scope, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = {
            "type": "overloaded",
            "message": f"more than {self.max_inflight} requests in flight; retry later",
            "param": None,
            "request_id": scope.get("state", {}).get("request_id"),
        }
        body = json.dumps({"error": error}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after_s).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
