"""The real app on a real socket (uvicorn in a thread), for client libraries such as openai.

In process rather than a subprocess, so a test can still reach into the app (inject a
fault in the middle of a stream); everything between the client and the app is real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from app.api.connection import http_protocol
from app.config import Settings
from app.main import create_app
from tests.support.server import free_port


@contextmanager
def serve_in_thread(
    settings: Settings, ready_timeout_s: float = 60
) -> Iterator[tuple[str, FastAPI]]:
    """Yield ``(base_url, app)`` once /readyz answers 200; shut down cleanly afterwards."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            http=http_protocol(settings),  # as `textserve serve` runs it
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the app did not become ready within {ready_timeout_s} s")
            time.sleep(0.05)
        yield url, app
    finally:
        server.should_exit = True
        thread.join(30)
