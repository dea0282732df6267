"""Faults with real processes that the jobs and serving tests do not already cover.

Covered elsewhere, not repeated here: the server SIGKILLed mid-job and restarted
(tests/integration/test_fine_tunes_lifecycle.py), an interrupted publish
(tests/unit/test_store.py), a corrupt new version (tests/integration/test_hot_swap.py),
the inference session raising (tests/integration/test_classify.py).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from app.store.versions import ModelStore
from tests.integration.test_fine_tunes_lifecycle import SLOW_HP, gone, worker_pid
from tests.support.finetune import finished, sentiment_csv, training
from tests.support.server import textserve_process


def poll(client: httpx.Client, job_id: str, until: Any, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/v1/fine-tunes/{job_id}").json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        time.sleep(0.2)


def test_a_sigkilled_training_worker_fails_its_job_and_serving_goes_on(
    tiny_store: ModelStore, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    env = {"TEXTSERVE_DATA_DIR": str(data_dir), "TEXTSERVE_JOB_POLL_S": "0.2",
           "TEXTSERVE_LOG_LEVEL": "warning"}  # fmt: skip
    with textserve_process(tiny_store.root, tmp_path, env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            fid = client.post("/v1/files", files={"file": ("d.csv", sentiment_csv(100))}).json()
            r = client.post("/v1/fine-tunes", json={"model": "slow", "training_file": fid["id"],
                                                    "hyperparameters": SLOW_HP})  # fmt: skip
            assert r.status_code == 201, r.text
            job = poll(client, r.json()["id"], training)
            assert job["status"] == "running", job
            pid = worker_pid(job)
            os.kill(pid, signal.SIGKILL)
            assert gone(pid, 10.0)
            job = poll(client, job["id"], finished, timeout_s=60)
            # Failed, with a reason a person can act on; nothing published.
            assert job["status"] == "failed", job
            assert job["error"]["code"] == "worker_crashed" and job["error"]["message"], job
            assert tiny_store.versions("slow") == []
            assert list((tiny_store.root / "slow").glob(".publish-*")) == []
            # The server never stopped serving.
            body = {"task": "sentiment", "text": "I love it, great"}
            r = client.post("/classify", json=body)
            assert r.status_code == 200 and r.json()["label"] == "positive"
            assert client.get("/readyz").status_code == 200
        assert server.process.poll() is None
