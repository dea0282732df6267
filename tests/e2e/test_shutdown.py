"""Graceful shutdown of the real `textserve serve` process under concurrent load.

Requests go out on fresh connections from several threads while SIGTERM arrives. The
server's access log says which requests it accepted; each of those must have reached its
client as a complete answer. Requests it never accepted may be refused at the socket.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.store.versions import ModelStore
from tests.support.server import textserve_process

CLIENTS = 8
TEXTS = ["I love it, great", "awful, broken again", "fine"] * 4


@dataclass
class Outcome:
    request_id: str
    started: float
    finished: float
    status: int | None  # None: a transport error, the server never answered
    complete: bool


def client_loop(url: str, stop: threading.Event, outcomes: list[Outcome]) -> None:
    """Send /classify requests one after another, each on a new connection, until told."""
    # No keep-alive: an idle pooled connection closed by the server would blur the picture.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=60, limits=limits) as client:
        while not stop.is_set():
            request_id = uuid.uuid4().hex
            started = time.monotonic()
            try:
                r = client.post(
                    "/classify",
                    json={"task": "sentiment", "texts": TEXTS},
                    headers={"X-Request-ID": request_id},
                )
            except httpx.TransportError:
                outcomes.append(Outcome(request_id, started, time.monotonic(), None, False))
                time.sleep(0.05)
                continue
            record(r, request_id, started, outcomes)


def record(r: httpx.Response, request_id: str, started: float, outcomes: list[Outcome]) -> None:
    """Note an answer and whether it is whole: every row, or a 503 saying when to retry."""
    complete = r.status_code != 200 or len(r.json()["results"]) == len(TEXTS)
    if r.status_code == 503:
        complete = complete and "retry-after" in r.headers
    outcomes.append(Outcome(request_id, started, time.monotonic(), r.status_code, complete))


def queued_texts(url: str) -> float:
    """Texts waiting in the server's batchers, read from its own /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "textserve_queue_depth_texts"
        for s in family.samples
    )


def accepted_ids(log: Path) -> set[str]:
    """Request ids of /classify requests the server's access log recorded."""
    ids = set()
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("path") == "/classify":
            ids.add(entry["request_id"])
    return ids


def test_sigterm_under_load_answers_every_accepted_request(
    tiny_store: ModelStore, tmp_path: Path
) -> None:
    # Batches wait to fill up, so every request spends a while in flight when SIGTERM comes.
    env = {"TEXTSERVE_MAX_WAIT_MS": "500", "TEXTSERVE_LOG_FORMAT": "json"}
    with textserve_process(tiny_store.root, tmp_path, env=env) as server:
        stop = threading.Event()
        outcomes: list[Outcome] = []
        threads = [
            threading.Thread(target=client_loop, args=(server.url, stop, outcomes))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        # Let the load build up: a few requests answered per client before the signal.
        deadline = time.monotonic() + 60
        while sum(o.status == 200 for o in outcomes) < 2 * CLIENTS:
            assert time.monotonic() < deadline, "no load built up"
            time.sleep(0.01)
        # Batches of the clients fill up together: signal just after one was answered, while
        # the next requests wait in the batcher (MAX_WAIT_MS), so some are surely in flight.
        answered = len(outcomes)
        while len(outcomes) == answered:
            time.sleep(0.005)
        # Signal only once the server itself reports texts waiting in its batcher.
        while not queued_texts(server.url):
            assert time.monotonic() < deadline, "no request ever waited in the batcher"
            time.sleep(0.01)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # From now on the service never says it is ready.
        # (None: the socket refused; a probe racing the signal's delivery may still see 200.)
        ready_after_signal: list[int | None] = []
        while server.process.poll() is None:
            try:
                ready_after_signal.append(httpx.get(f"{server.url}/readyz", timeout=5).status_code)
            except httpx.TransportError:
                ready_after_signal.append(None)
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(90)
        assert server.process.wait(60) == 0, server.log.read_text()[-3000:]

    # Once it stopped being ready, it never said ready again.
    first_not_ready = next((i for i, c in enumerate(ready_after_signal) if c != 200), None)
    assert first_not_ready is not None, "still ready until the process exited"
    assert 200 not in ready_after_signal[first_not_ready:]
    accepted = accepted_ids(server.log)
    by_id = {o.request_id: o for o in outcomes}
    # Every request the server accepted was answered in full to its client.
    lost = [i for i in accepted if by_id[i].status is None or not by_id[i].complete]
    assert not lost, f"accepted but not answered: {lost}"
    # Answers are successes or retryable refusals; anything else was refused at the socket.
    assert {o.status for o in outcomes} <= {200, 503, None}
    assert all(o.request_id not in accepted for o in outcomes if o.status is None)
    # Requests in flight when the signal came were finished, not dropped.
    drained = [o for o in outcomes if o.status == 200 and o.started < signalled < o.finished]
    assert drained, "no request was in flight at SIGTERM"
