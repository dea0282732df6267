"""Cancel, graceful shutdown and a crash of the server with a fine-tune in flight."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from app.jobs.store import JobStore, default_url
from app.store.versions import ModelStore
from tests.integration.conftest import run, running
from tests.support.finetune import (
    FAST_HP,
    finished,
    job_settings,
    sentiment_csv,
    training,
    upload,
    wait_for,
)
from tests.support.server import textserve_process

# Hundreds of steps: long enough to still be training when the test acts.
SLOW_HP: dict[str, Any] = {**FAST_HP, "epochs": 5, "batch_size": 4}


def worker_pid(job: dict[str, Any]) -> int:
    worker = str(job["progress"].get("worker_id", ""))
    assert worker.startswith("pid:"), job
    return int(worker[4:])


def gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_cancel_stops_the_worker_within_seconds_and_leaves_nothing(
    store: ModelStore, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"

    async def main() -> None:
        async with running(job_settings(store, data_dir)) as (client, _):
            fid = (await upload(client, sentiment_csv(100))).json()["id"]
            r = await client.post("/v1/fine-tunes", json={"model": "slow", "training_file": fid,
                                                          "hyperparameters": SLOW_HP})  # fmt: skip
            job = await wait_for(client, r.json()["id"], training)
            assert job["status"] == "running"
            pid = worker_pid(job)
            started = time.monotonic()
            r = await client.post(f"/v1/fine-tunes/{job['id']}/cancel")
            took = time.monotonic() - started
            assert r.status_code == 200
            assert r.json()["status"] == "cancelled"
            assert r.json()["cancel_requested"] is True
            assert took < 5.0, took
            assert gone(pid, 1.0)
            assert store.versions("slow") == []
            assert not (data_dir / "jobs" / job["id"] / "tmp").exists()
            assert list((store.root / "slow").glob(".publish-*")) == []
            events = (await client.get(f"/v1/fine-tunes/{job['id']}/events")).json()["data"]
            assert events[-1]["data"]["state"] == "cancelled"
            metrics = (await client.get("/metrics")).text
            assert f'textserve_training_loss{{job="{job["id"]}"}}' not in metrics
            assert 'textserve_finetune_jobs_total{state="cancelled"} 1.0' in metrics
            # Cancelling again is a conflict; a queued job is cancelled without running.
            assert (await client.post(f"/v1/fine-tunes/{job['id']}/cancel")).status_code == 409

    run(main)


def test_graceful_shutdown_fails_the_running_job_and_stops_its_worker(
    store: ModelStore, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    ids: dict[str, Any] = {}

    async def main() -> None:
        async with running(job_settings(store, data_dir)) as (client, _):
            fid = (await upload(client, sentiment_csv(100))).json()["id"]
            r = await client.post("/v1/fine-tunes", json={"model": "slow", "training_file": fid,
                                                          "hyperparameters": SLOW_HP})  # fmt: skip
            job = await wait_for(client, r.json()["id"], training)
            ids.update(job=job["id"], pid=worker_pid(job))
            queued = await client.post("/v1/fine-tunes", json={"model": "next",
                                                               "training_file": fid})  # fmt: skip
            ids["queued"] = queued.json()["id"]

    run(main)
    assert gone(ids["pid"], 1.0)
    db = JobStore(default_url(data_dir))
    job = db.get_job(ids["job"])
    assert job.state == "failed"
    assert job.error is not None
    assert job.error.code == "server_shutdown"
    # The waiting job keeps waiting for the next start.
    assert db.get_job(ids["queued"]).state in ("validating_files", "queued")
    db.close()


def test_a_crashed_server_leaves_a_consistent_failed_job(
    tiny_store: ModelStore, tmp_path: Path
) -> None:
    """SIGKILL the real server mid-training: the orphaned worker stops by itself, and the
    next start marks the job failed (not re-queued) with the reason."""
    data_dir = tmp_path / "var"
    env = {"TEXTSERVE_DATA_DIR": str(data_dir), "TEXTSERVE_JOB_POLL_S": "0.2",
           "TEXTSERVE_LOG_LEVEL": "warning"}  # fmt: skip
    with textserve_process(tiny_store.root, tmp_path, env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            fid = client.post("/v1/files", files={"file": ("d.csv", sentiment_csv(100))}).json()
            r = client.post("/v1/fine-tunes", json={"model": "slow", "training_file": fid["id"],
                                                    "hyperparameters": SLOW_HP})  # fmt: skip
            job_id = r.json()["id"]
            deadline = time.monotonic() + 120
            while True:
                job = client.get(f"/v1/fine-tunes/{job_id}").json()
                if training(job) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert job["status"] == "running", job
        pid = worker_pid(job)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    # The worker notices its parent is gone at its next step and exits without publishing.
    assert gone(pid, 15.0)
    assert tiny_store.versions("slow") == []

    async def main() -> None:
        settings = job_settings(tiny_store, data_dir)
        async with running(settings) as (client, _):
            after = (await client.get(f"/v1/fine-tunes/{job_id}")).json()
            assert after["status"] == "failed"
            assert after["error"]["code"] == "worker_lost"
            assert "restarted" in after["error"]["message"]
            assert after["progress"]["stage"] == "failed"  # not the stage it was lost in
            events = (await client.get(f"/v1/fine-tunes/{job_id}/events")).json()["data"]
            assert events[-1]["level"] == "error"
            # The file survived the crash and the service takes new jobs.
            r = await client.post("/v1/fine-tunes", json={"model": "again",
                                                          "training_file": fid["id"]})  # fmt: skip
            assert r.status_code == 201
            again = await wait_for(
                client, r.json()["id"], lambda j: j["status"] != "validating_files"
            )
            assert again["status"] in ("queued", "running")
            await client.post(f"/v1/fine-tunes/{again['id']}/cancel")
            assert finished((await client.get(f"/v1/fine-tunes/{again['id']}")).json())

    run(main)
