"""What workers report, recorded: events in the job store, progress on the job, and the
training gauges of the metrics."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app.jobs.records import JobRecord
from app.jobs.runners import RunHandle
from app.jobs.spec import WorkerEvent
from app.jobs.store import JobStore
from app.metrics import Metrics

# Progress arrives every optimizer step; the database hears of it at most this often.
PROGRESS_EVERY_S = 1.0


@dataclass
class Run:
    """A job this replica runs: its worker and what the worker said so far."""

    job: JobRecord
    handle: RunHandle | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    stop_reason: str | None = None  # "cancel" or "shutdown" once we asked it to stop
    last_progress_write: float = 0.0
    progress_lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def merge_progress(self, updates: dict[str, Any]) -> dict[str, Any]:
        """Fold ``updates`` into the job's progress; the runner's thread and the dispatcher
        both write it, and neither may drop the other's keys (the worker id)."""
        with self.progress_lock:
            progress = {**self.job.progress, **updates}
            self.job = self.job.model_copy(update={"progress": progress})
            return progress


class Reporter:
    """Turns worker events into job-store writes and metric updates."""

    def __init__(self, db: JobStore, metrics: Metrics) -> None:
        self.db = db
        self.metrics = metrics

    def event(
        self,
        job_id: str,
        type: str,
        message: str,
        *,
        level: str = "info",
        data: dict[str, Any] | None = None,
        state: str | None = None,
    ) -> None:
        payload = dict(data or {})
        if state is not None:
            payload["state"] = state
        self.db.add_event(job_id, type, message, level=level, data=payload)

    def on_event(self, run: Run, event: WorkerEvent) -> None:
        job_id = run.job.id
        if event.type == "progress":
            self._on_progress(run, event.data)
        elif event.type == "stage":
            progress = run.merge_progress({"stage": event.message})
            self.db.update_job(job_id, progress=progress)
            self.event(job_id, "stage", event.message, data=event.data)
        elif event.type == "comparison":
            self.event(
                job_id, "metrics", "scored the active version on the same rows", data=event.data
            )
        elif event.type == "result":
            run.result = event.data
        elif event.type == "error":
            run.error = {
                "code": event.data.get("code", "training_failed"),
                "message": event.message,
            }
            if event.data.get("traceback"):
                self.event(job_id, "message", event.data["traceback"], level="error")
        else:
            self.event(job_id, "message", event.message, data=event.data)

    def _on_progress(self, run: Run, data: dict[str, Any]) -> None:
        job_id = run.job.id
        progress = run.merge_progress({**data, "stage": "training"})
        self.metrics.training_samples_per_second.labels(job_id).set(
            float(data.get("samples_per_second", 0.0))
        )
        self.metrics.training_loss.labels(job_id).set(float(data.get("loss", 0.0)))
        now = time.monotonic()
        last = data.get("step") == data.get("total_steps") or data.get("step") == 1
        if last or now - run.last_progress_write >= PROGRESS_EVERY_S:
            run.last_progress_write = now
            self.db.update_job(job_id, progress=progress)
            message = (
                f"step {data.get('step')}/{data.get('total_steps')} epoch {data.get('epoch')} "
                f"loss {float(data.get('loss', 0.0)):.4f} "
                f"{float(data.get('samples_per_second', 0.0)):.1f} samples/s"
            )
            self.event(job_id, "progress", message, data=data)

    def clear_gauges(self, job_id: str) -> None:
        for gauge in (self.metrics.training_samples_per_second, self.metrics.training_loss):
            with contextlib.suppress(KeyError):
                gauge.remove(job_id)

    def count_finished(self, state: str, started_at: float | None) -> None:
        self.metrics.finetune_jobs_finished.labels(state).inc()
        if started_at is not None:
            self.metrics.finetune_duration.labels(state).observe(time.time() - started_at)
