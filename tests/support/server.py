"""Start the real `textserve serve` command as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

TEXTSERVE = Path(sys.executable).with_name("textserve")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def textserve_process(
    store: Path, log_dir: Path, env: dict[str, str] | None = None, ready_timeout_s: float = 60
) -> Iterator[Server]:
    """Run `textserve serve` on a free loopback port until /readyz answers 200."""
    port = free_port()
    log = log_dir / f"textserve-{port}.log"
    full_env = {**os.environ, "TEXTSERVE_MODEL_STORE": str(store), **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(TEXTSERVE), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"textserve exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"textserve not ready in {ready_timeout_s}s:\n{log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
