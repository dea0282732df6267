"""Clients that send slowly, or stop halfway, through a real uvicorn server as `textserve
serve` runs it: they cannot lock other clients out, and they are answered and counted.

Raw sockets, because an HTTP client library always finishes what it starts sending.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import settings_for
from tests.support.inprocess_server import serve_in_thread
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model

HALF_BODY = b'{"task": "sentiment", "te'


def _metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def _open(url: str, payload: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(payload)
    return sock


def _half_sent(path: str, declared: int = 200) -> bytes:
    """Headers of a POST declaring ``declared`` body bytes, and the first few of them."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    return head.encode() + HALF_BODY


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def _sockets(url: str, payloads: list[bytes]) -> Iterator[list[socket.socket]]:
    socks = [_open(url, p) for p in payloads]
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def served(store: ModelStore) -> ModelStore:
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_reply_model(store)
    return store


@pytest.mark.parametrize("lean", [True, False])
def test_half_sent_bodies_hold_no_place_in_flight(served: ModelStore, lean: bool) -> None:
    settings = settings_for(served, lean_http=lean, max_inflight_requests=2, body_timeout_s=30)
    with (
        serve_in_thread(settings) as (url, _),
        _sockets(url, [_half_sent("/classify") for _ in range(6)]),
    ):
        time.sleep(0.3)  # the server has read all six sets of headers
        # More half-sent bodies than places in flight, and still a whole request gets in.
        answer = httpx.post(f"{url}/classify", json={"task": "sentiment", "text": "fine"})
        assert answer.status_code == 200, answer.text


def test_a_body_late_past_its_deadline_is_answered_408_and_the_connection_closed(
    served: ModelStore,
) -> None:
    settings = settings_for(served, body_timeout_s=0.5)
    with serve_in_thread(settings) as (url, _), _sockets(url, [_half_sent("/classify")]) as socks:
        started = time.monotonic()
        answer = _read_all(socks[0])
        waited = time.monotonic() - started
        metrics = httpx.get(f"{url}/metrics").text
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout", answer
    assert b'"type":"request_timeout"' in rest and b'"param":"body"' in rest
    assert waited < 5  # answered at the deadline, not at the client's leisure
    assert _metric(metrics, 'textserve_rejections_total{model="-",reason="body_timeout"}') == 1
    timed_out = 'textserve_http_requests_total{method="POST",route="/classify",status="408"}'
    assert _metric(metrics, timed_out) == 1


def test_headers_late_past_their_deadline_close_the_connection(served: ModelStore) -> None:
    settings = settings_for(served, header_timeout_s=0.5)
    partial_headers = b"POST /classify HTTP/1.1\r\nHost: test\r\n"
    with (
        serve_in_thread(settings) as (url, _),
        _sockets(url, [partial_headers, b""]) as (trickle, silent),
    ):
        started = time.monotonic()
        answer = _read_all(trickle)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert _read_all(silent).startswith(b"HTTP/1.1 408 ")  # never sent a byte
        assert time.monotonic() - started < 5
        # A connection kept alive and idle between requests is the keep-alive timeout's to
        # close, and a request sent on time is answered as ever.
        with httpx.Client(base_url=url) as client:
            for _ in range(2):
                assert client.get("/healthz").status_code == 200
                time.sleep(0.3)


@pytest.mark.parametrize(
    ("path", "lean"), [("/classify", True), ("/classify", False), ("/reply", True)]
)
def test_a_client_gone_halfway_through_its_body_is_counted_499(
    served: ModelStore, path: str, lean: bool
) -> None:
    with serve_in_thread(settings_for(served, lean_http=lean)) as (url, _):
        with _sockets(url, [_half_sent(path)]):
            time.sleep(0.3)
        time.sleep(0.5)  # the server notices the closed connection
        metrics = httpx.get(f"{url}/metrics").text
    gone = f'textserve_http_requests_total{{method="POST",route="{path}",status="499"}}'
    assert _metric(metrics, gone) == 1
    invalid = f'textserve_http_requests_total{{method="POST",route="{path}",status="422"}}'
    assert _metric(metrics, invalid) == 0


def test_refusals_before_routing_are_labelled_by_their_route(served: ModelStore) -> None:
    settings = settings_for(served, max_body_bytes=1024)
    with serve_in_thread(settings) as (url, _):
        too_big = {"task": "sentiment", "text": "x" * 2000}
        assert httpx.post(f"{url}/classify", json=too_big).status_code == 413
        metrics = httpx.get(f"{url}/metrics").text
    refused = 'textserve_http_requests_total{method="POST",route="/classify",status="413"}'
    assert _metric(metrics, refused) == 1


def test_oversized_headers_are_431_and_ordinary_ones_pass(served: ModelStore) -> None:
    with serve_in_thread(settings_for(served)) as (url, _):
        filler = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        huge = b"GET /healthz HTTP/1.1\r\nHost: test\r\n" + filler * 10  # 80 KB, unfinished
        with _sockets(url, [huge]) as (sock,):
            assert _read_all(sock).startswith(b"HTTP/1.1 431 ")
        # Big but under the limit, sent in pieces: served as ever.
        big = {f"x-filler-{i}": "a" * 4000 for i in range(12)}  # 48 KB
        assert httpx.get(f"{url}/healthz", headers=big).status_code == 200
        # A large body is not headers: a request of 1.5 MB still gets through.
        body = {"task": "sentiment", "texts": ["fine " * 1000] * 250}
        assert httpx.post(f"{url}/classify", json=body, timeout=60).status_code == 200
