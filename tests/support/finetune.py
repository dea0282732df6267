"""Helpers for fine-tune tests: small data sets written here, settings, polling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.store.versions import ModelStore
from tests.integration.conftest import settings_for

POSITIVE = ("great film", "loved it", "wonderful acting", "a real delight", "superb story")
NEGATIVE = ("awful film", "hated it", "terrible acting", "a real bore", "dreadful story")
# Small enough for two CPU cores: a real fine-tune of the packaged encoder in ~10 s.
FAST_HP: dict[str, Any] = {"epochs": 1, "max_length": 32, "batch_size": 16, "seed": 3}


def sentiment_csv(per_label: int = 20, crlf: bool = True) -> bytes:
    """``label,text`` rows, balanced, as a CSV with CRLF line ends."""
    lines = ["label,text"]
    for i in range(per_label):
        lines.append(f"positive,{POSITIVE[i % len(POSITIVE)]} number {i}")
        lines.append(f"negative,{NEGATIVE[i % len(NEGATIVE)]} number {i}")
    return ("\r\n" if crlf else "\n").join(lines).encode() + b"\r\n"


def job_settings(store: ModelStore, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for the in-process app with a fast dispatcher and registry watch."""
    base: dict[str, Any] = {
        "data_dir": data_dir,
        "job_poll_s": 0.2,
        "watch_interval_s": 0.5,
        "cancel_grace_s": 2.0,
    }
    return settings_for(store, **{**base, **overrides})


async def upload(
    client: httpx.AsyncClient, body: bytes, filename: str = "data.csv", **fields: str
) -> httpx.Response:
    return await client.post("/v1/files", files={"file": (filename, body)}, data=fields)


async def wait_for(
    client: httpx.AsyncClient,
    job_id: str,
    until: Any,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Poll the job until ``until(job)`` is true; fail with the job's events on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = (await client.get(f"/v1/fine-tunes/{job_id}")).json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            events = (await client.get(f"/v1/fine-tunes/{job_id}/events")).json()
            raise AssertionError(f"job {job_id} stuck: {job}\nevents: {events}")
        await asyncio.sleep(0.2)


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def training(job: dict[str, Any]) -> bool:
    return finished(job) or (job["progress"].get("step") or 0) >= 1
