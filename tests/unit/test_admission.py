"""Admission's body deadline and place in flight, on a plain ASGI app and a scripted client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.api.admission import AdmissionMiddleware
from app.api.middleware import BodyRejected, Message
from app.metrics import Metrics


def _scope(path: str) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


class _Client:
    """Sends ``chunks`` body chunks, one every ``every_s`` seconds."""

    def __init__(self, chunks: int, every_s: float) -> None:
        self.left = chunks
        self.every_s = every_s

    async def receive(self) -> Message:
        await asyncio.sleep(self.every_s)
        self.left -= 1
        return {"type": "http.request", "body": b"x", "more_body": self.left > 0}


async def _read_body(gate: AdmissionMiddleware, path: str, client: _Client) -> list[int]:
    """Run a request through ``gate`` whose app reads the whole body; the places in flight
    seen once it has."""
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        seen.append(gate.inflight)

    async def send(message: Message) -> None:
        raise AssertionError("nothing is answered here")

    gate.app = app
    await gate(_scope(path), client.receive, send)
    return seen


def _gate(timeout_s: float) -> AdmissionMiddleware:
    async def app_set_by_read_body(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError

    return AdmissionMiddleware(
        app_set_by_read_body, 4, 1, Metrics(), body_timeout_s=timeout_s, streamed=("/v1/files",)
    )


def test_an_upload_may_take_longer_than_the_deadline_while_chunks_keep_coming() -> None:
    gate = _gate(0.3)
    seen = asyncio.run(_read_body(gate, "/v1/files", _Client(chunks=6, every_s=0.1)))
    assert seen == [1]  # admitted once the body was in
    assert gate.inflight == 0  # and the place given back after


def test_a_json_body_must_arrive_whole_within_the_deadline() -> None:
    gate = _gate(0.3)
    with pytest.raises(BodyRejected) as refused:
        asyncio.run(_read_body(gate, "/classify", _Client(chunks=6, every_s=0.1)))
    assert refused.value.status_code == 408
    assert refused.value.headers == {"Connection": "close"}
    assert gate.inflight == 0


def test_a_stalled_upload_is_refused() -> None:
    gate = _gate(0.2)
    with pytest.raises(BodyRejected) as refused:
        asyncio.run(_read_body(gate, "/v1/files", _Client(chunks=2, every_s=0.5)))
    assert refused.value.status_code == 408


def test_a_full_house_refuses_a_body_once_it_is_in() -> None:
    gate = _gate(5)
    gate.inflight = gate.max_inflight
    with pytest.raises(BodyRejected) as refused:
        asyncio.run(_read_body(gate, "/classify", _Client(chunks=1, every_s=0)))
    assert refused.value.status_code == 503
    assert gate.inflight == gate.max_inflight  # nothing taken, nothing given back


def test_someone_elses_cancellation_is_not_taken_for_a_late_body() -> None:
    async def main() -> None:
        gate = _gate(5)
        task = asyncio.create_task(_read_body(gate, "/classify", _Client(chunks=1, every_s=10)))
        await asyncio.sleep(0.05)
        task.cancel()  # a shutdown, say: it must stay a cancellation
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gate.inflight == 0

    asyncio.run(main())
