"""Two real `textserve serve` processes on one real PostgreSQL and one data folder (a shared
volume), as two Kubernetes pods: started at the same moment on an empty database both come
up, a job made on one is seen and cancelled through the other, and a PostgreSQL outage costs
the job routes a 503 with ``Retry-After``, never serving."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.store.versions import ModelStore
from tests.integration.test_fine_tunes_lifecycle import SLOW_HP
from tests.support.finetune import finished, sentiment_csv, training
from tests.support.postgres_server import PostgresServer
from tests.support.server import Server, textserve_process


def poll(url: str, job_id: str, until: Any, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = httpx.get(f"{url}/v1/fine-tunes/{job_id}", timeout=30).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        time.sleep(0.1)


def env_for(db_url: str, data_dir: Path, **more: str) -> dict[str, str]:
    return {
        "TEXTSERVE_JOBS_DB_URL": db_url,
        "TEXTSERVE_DATA_DIR": str(data_dir),
        "TEXTSERVE_JOB_POLL_S": "0.2",
        "TEXTSERVE_CANCEL_GRACE_S": "1",
        "TEXTSERVE_LOG_FORMAT": "text",
        **more,
    }


@pytest.fixture
def two_at_once(
    tiny_store: ModelStore, tmp_path: Path, postgres_url: str
) -> Iterator[tuple[Server, Server]]:
    """A runs jobs, B only answers; both launched at the same moment on an empty database."""
    data_dir = tmp_path / "var"
    managers: list[AbstractContextManager[Server]] = [
        textserve_process(tiny_store.root, tmp_path, env_for(postgres_url, data_dir), 120),
        textserve_process(
            tiny_store.root,
            tmp_path,
            env_for(postgres_url, data_dir, TEXTSERVE_JOB_WORKER="false"),
            120,
        ),
    ]
    entered: list[AbstractContextManager[Server]] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(m.__enter__) for m in managers]
            servers = []
            for manager, future in zip(managers, futures, strict=True):
                servers.append(future.result())
                entered.append(manager)
        yield servers[0], servers[1]
    finally:
        for manager in entered:
            manager.__exit__(None, None, None)


def test_replicas_started_at_once_share_jobs_and_a_cancel_through_b_stops_a_job_on_a(
    two_at_once: tuple[Server, Server], tiny_store: ModelStore
) -> None:
    a, b = two_at_once
    with httpx.Client(timeout=30) as client:
        upload = client.post(f"{a.url}/v1/files", files={"file": ("d.csv", sentiment_csv(100))})
        assert upload.status_code == 201, upload.text
        # The file uploaded through A is on B too (one database, one data folder).
        assert client.get(f"{b.url}/v1/files/{upload.json()['id']}").status_code == 200
        create = {"model": "slow", "training_file": upload.json()["id"], "hyperparameters": SLOW_HP}
        r = client.post(f"{a.url}/v1/fine-tunes", json=create)
        assert r.status_code == 201, r.text
        job = poll(b.url, r.json()["id"], training)
        assert job["status"] == "running", job

        asked = time.monotonic()
        cancel = client.post(f"{b.url}/v1/fine-tunes/{job['id']}/cancel")
        assert cancel.status_code == 200, cancel.text
        job = poll(b.url, job["id"], finished, timeout_s=30)
        took = time.monotonic() - asked
        print(f"a cancel through B stopped the job on A in {took:.2f} s")
        assert job["status"] == "cancelled", job
        # A's dispatcher polls every 0.2 s; the worker stops at its next step.
        assert took < 3.0, took
        assert tiny_store.versions("slow") == []
    assert a.process.poll() is None and b.process.poll() is None


def test_postgres_down_answers_503_on_job_routes_and_serving_goes_on(
    tiny_store: ModelStore, tmp_path: Path
) -> None:
    # Its own folder, outside pytest's base temp (which concurrent runs prune).
    folder = tempfile.TemporaryDirectory(prefix="textserve-pg-", dir="/tmp")
    database = PostgresServer(Path(folder.name) / "pg").start()
    try:
        env = env_for(database.url, tmp_path / "var", TEXTSERVE_JOB_WORKER="false")
        with textserve_process(tiny_store.root, tmp_path, env, 120) as server:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                assert client.get("/v1/fine-tunes").status_code == 200
                database.stop()
                for path in ("/v1/fine-tunes", "/v1/files"):
                    r = client.get(path)
                    assert r.status_code == 503, r.text
                    assert r.json()["error"]["code"] == "job_store_unavailable"
                    assert int(r.headers["Retry-After"]) >= 1
                body = {"task": "sentiment", "text": "I love it, great"}
                r = client.post("/classify", json=body)
                assert r.status_code == 200 and r.json()["label"] == "positive"
                assert client.get("/readyz").status_code == 200
                assert client.get("/metrics").status_code == 200
                # Back up on the same port: the next request finds it again.
                database.start()
                assert client.get("/v1/fine-tunes").status_code == 200
            assert server.process.poll() is None
    finally:
        database.stop()
        folder.cleanup()
