"""The Ray runner against a real local Ray instance started by the test (``address="local"``).

Skipped, with the reason, only where Ray is not installed or cannot start here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

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

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")


def test_jobs_run_as_ray_tasks_with_the_same_events_and_cancel(
    store: ModelStore, tmp_path: Path
) -> None:
    settings = job_settings(store, tmp_path / "var", ray_address="local")

    async def main() -> None:
        async with running(settings) as (client, app):
            runner = app.state.services.jobs.runner
            if runner is None:  # the app logged why Ray could not start
                pytest.skip("a local Ray instance cannot start on this machine")
            assert runner.name == "ray"
            assert ray.is_initialized()
            fid = (await upload(client, sentiment_csv(20))).json()["id"]
            r = await client.post("/v1/fine-tunes", json={
                "model": "onray", "training_file": fid, "hyperparameters": FAST_HP,
                "resources": {"cpus": 1},
            })  # fmt: skip
            job = await wait_for(client, r.json()["id"], finished, timeout_s=240)
            assert job["status"] == "succeeded", job
            assert job["runner"] == "ray"
            assert job["progress"]["worker_id"].startswith("ray:")
            assert job["fine_tuned_model"] == "onray@1"
            events = (await client.get(f"/v1/fine-tunes/{job['id']}/events",
                                       params={"limit": 1000})).json()["data"]  # fmt: skip
            types = {e["type"] for e in events}
            assert {"state", "stage", "progress"} <= types
            assert [e["message"] for e in events if e["type"] == "stage"][:2] == [
                "loading data", "training"
            ]  # fmt: skip
            r = await client.post("/classify", json={"model": "onray", "text": "loved it"})
            assert r.status_code == 200
            assert r.json()["version"] == 1

            # Cancel: the Ray task's worker is killed within seconds; nothing is published.
            r = await client.post("/v1/fine-tunes", json={
                "model": "onray", "training_file": fid,
                "hyperparameters": {**FAST_HP, "epochs": 20, "batch_size": 4},
            })  # fmt: skip
            slow = await wait_for(client, r.json()["id"], training, timeout_s=240)
            assert slow["status"] == "running"
            started = time.monotonic()
            r = await client.post(f"/v1/fine-tunes/{slow['id']}/cancel")
            assert r.json()["status"] == "cancelled"
            assert time.monotonic() - started < 10
            assert store.versions("onray") == [1]

    run(main)
    assert not ray.is_initialized()  # the app's shutdown disconnected from the cluster
