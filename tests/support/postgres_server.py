"""A real PostgreSQL 15 on a free loopback port in a temporary folder, run as ``postgres``.

PostgreSQL refuses to run as root, so when the tests run as root ``initdb`` and ``postgres``
run as the ``postgres`` user (``Popen(user=...)``: the child is postgres itself, so stopping
it reaches the server and not a wrapper that would leave it running), in a folder that user
owns. Tests may stop it mid-test
(to see the service ride out an outage) and start it again on the same port and data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.support.server import free_port

BIN = Path(os.environ.get("TEXTSERVE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "textserve"


def _as_postgres() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


class PostgresServer:
    """One ``postgres`` process; ``url`` stays the same across ``stop`` and ``start``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = port or free_port()
        self.user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
        self.url = f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{DATABASE}"
        self.process: subprocess.Popen[bytes] | None = None

    def _own(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            # The temporary folders above are root's; postgres only needs to pass through.
            for parent in self.folder.parents:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)

    def start(self, timeout_s: float = 30.0) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._own()
        fresh = not self.data.exists()
        if fresh:
            made = subprocess.run(
                [str(BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                 "-U", self.user, "--no-sync", "-E", "UTF8"],
                capture_output=True, text=True, cwd=self.folder, **_as_postgres(),
            )  # fmt: skip
            if made.returncode != 0:
                raise RuntimeError(f"initdb failed: {made.stderr[-2000:]}")
        log = (self.folder / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "postgres"), "-D", str(self.data),
             "-h", "127.0.0.1", "-p", str(self.port), "-k", "",  # TCP only: no socket path
             "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=100",
             "-c", f"log_directory={self.folder}", "-c", "logging_collector=off"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=self.folder,
            **_as_postgres(),
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log()}")
            try:
                with psycopg.connect(
                    self._dsn("postgres"), connect_timeout=1, autocommit=True
                ) as c:
                    if fresh:
                        c.execute(f"CREATE DATABASE {DATABASE}")
                    return self
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"postgres not answering in {timeout_s}s: {self.log()}"
                    ) from exc
                time.sleep(0.1)

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGINT is PostgreSQL's "fast" shutdown: clients disconnected, no recovery after.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def reset(self) -> None:
        """Drop and recreate the test database: an empty database for the next test."""
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {DATABASE}")

    def log(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""
