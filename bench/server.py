"""Start the service as a subprocess on a free loopback port, wait for /readyz, stop it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from app.config import Settings
from bench.common import ROOT, tree_cpu_s

# Used while `textserve serve` (app/cli.py) is not available: the same app, the same settings.
_UVICORN_FALLBACK = """
import sys, uvicorn
from app.config import Settings
from app.main import create_app
settings = Settings(host="127.0.0.1", port=int(sys.argv[1]))
uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
            log_level=settings.log_level)
"""


def store_env(store: Path, model: str) -> dict[str, str]:
    """Settings that serve only ``model`` from ``store``, as ``TEXTSERVE_*`` variables."""
    return {"TEXTSERVE_MODEL_STORE": str(store.resolve()), "TEXTSERVE_MODELS": _models_value(model)}


def _models_value(name: str) -> str:
    """``TEXTSERVE_MODELS`` spelt the way this version of Settings reads it (CSV or JSON)."""
    saved = os.environ.get("TEXTSERVE_MODELS")
    try:
        for value in (name, json.dumps([name])):
            os.environ["TEXTSERVE_MODELS"] = value
            try:
                if Settings().models == (name,):
                    return value
            except ValueError:  # pydantic-settings may try to JSON-decode the CSV form
                continue
    finally:
        if saved is None:
            os.environ.pop("TEXTSERVE_MODELS", None)
        else:
            os.environ["TEXTSERVE_MODELS"] = saved
    raise SystemExit("TEXTSERVE_MODELS is read neither as CSV nor as JSON")


def wait_idle(url: str, timeout_s: float = 120.0) -> None:
    """Wait until the server has finished the requests a load generator walked away from."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() < deadline:
            inflight = queued = 0.0
            for line in client.get(f"{url}/metrics").text.splitlines():
                if line.startswith("textserve_http_requests_in_flight"):
                    inflight += float(line.rsplit(" ", 1)[1])
                elif line.startswith("textserve_queue_depth_texts"):
                    queued += float(line.rsplit(" ", 1)[1])
            if inflight <= 1 and queued == 0:  # the /metrics request itself is in flight
                return
            time.sleep(0.1)


def wait_quiet(pid: int, timeout_s: float = 60.0, window_s: float = 0.2) -> None:
    """Wait until the server process tree uses under a tenth of a core: done with the work
    a load generator walked away from, for servers without textserve's metrics."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cpu0 = tree_cpu_s(pid)
        time.sleep(window_s)
        if tree_cpu_s(pid) - cpu0 < 0.1 * window_s:
            return


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_command(port: int, how: str = "auto") -> list[str]:
    """``textserve serve`` when the CLI exists (``how="cli"``), else uvicorn on ``create_app``."""
    script = Path(sys.executable).with_name("textserve")
    has_cli = script.is_file() and importlib.util.find_spec("app.cli") is not None
    if how == "cli" or (how == "auto" and has_cli):
        exe = str(script) if script.is_file() else shutil.which("textserve") or "textserve"
        return [exe, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-c", _UVICORN_FALLBACK, str(port)]


class ServerProcess:
    """The service in its own process, with ``TEXTSERVE_*`` settings passed as env vars."""

    def __init__(
        self,
        settings_env: dict[str, str],
        how: str = "auto",
        ready_timeout_s: float = 180.0,
        command: list[str] | None = None,
    ) -> None:
        """``command`` (``{port}`` filled in) runs another server, e.g. the naive baseline."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = (
            [part.replace("{port}", str(self.port)) for part in command]
            if command
            else server_command(self.port, how)
        )
        # Process start to the first 200 from /readyz: the cold start, models loaded and warm.
        self.ready_s = float("nan")
        self.settings_env = settings_env
        self._ready_timeout_s = ready_timeout_s
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the server)
            prefix="textserve-bench-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        env = {**os.environ, **self.settings_env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        started = time.monotonic()
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self._ready_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        self.ready_s = time.monotonic() - started
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"server not ready after {self._ready_timeout_s:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()
        if exc_type is None:
            Path(self._log.name).unlink(missing_ok=True)
        else:
            print(f"server log kept at {self._log.name}", file=sys.stderr)
