"""Claiming queued jobs and starting their workers, up to the replica's concurrency limit.

A claim (``JobStore.claim_next``) moves the oldest queued job to ``running`` in one
transaction, so two replicas polling the same store never start the same job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.config import Settings
from app.jobs.files import FileStore
from app.jobs.records import JobRecord
from app.jobs.reporting import Reporter, Run
from app.jobs.runners import Runner
from app.jobs.runs import Runs, stop_run, work_dir
from app.jobs.spec import WorkerSpec
from app.jobs.store import JobStore
from app.store.versions import ModelStore

log = logging.getLogger(__name__)

# Share of the training rows a task holds out when the job names no validation file.
VALIDATION_FRACTION = 0.1

OnExit = Callable[[Run, int | None, str], None]


class Launcher:
    """Claims queued jobs and hands them to the runner; ``on_exit`` hears each worker end."""

    def __init__(
        self,
        settings: Settings,
        db: JobStore,
        files: FileStore,
        models: ModelStore,
        reports: Reporter,
        runs: Runs,
        owner: str,
        runner: Callable[[], Runner],
        on_exit: OnExit,
    ) -> None:
        self.settings = settings
        self.db = db
        self.files = files
        self.models = models
        self.reports = reports
        self.runs = runs
        self.owner = owner
        self._runner = runner
        self._on_exit = on_exit

    def start_queued(self, stopping: threading.Event) -> None:
        """Claim and start queued jobs, oldest first, while this replica has room."""
        while not stopping.is_set():
            if len(self.runs) >= self.settings.max_concurrent_jobs:
                return
            now = time.time()
            runner = self._runner()
            job = self.db.claim_next(self.owner, runner.name, now)
            if job is None:
                return
            self._launch(job, runner)

    def _launch(self, job: JobRecord, runner: Runner) -> None:
        run = Run(job)
        self.runs.add(run)
        try:
            spec = self.spec(job, runner.name)
            run.handle = runner.start(
                spec,
                lambda event: self.reports.on_event(run, event),
                lambda code, tail: self._on_exit(run, code, tail),
            )
        except Exception as exc:
            log.exception("could not start job %s", job.id)
            run.error = {"code": "runner_failed", "message": f"could not start the worker: {exc}"}
            self._on_exit(run, None, "")
            return
        if run.stop_reason is not None:  # cancelled while the worker was starting
            stop_run(run, run.stop_reason)
        progress = run.merge_progress({"worker_id": run.handle.worker_id})
        progress.setdefault("stage", "starting")
        self.db.update_job(job.id, progress=progress)
        self.reports.event(
            job.id,
            "state",
            f"job running on the {runner.name} runner ({run.handle.worker_id})",
            state="running",
        )

    def spec(self, job: JobRecord, runner: str) -> WorkerSpec:
        """What the worker needs; the local runner reads files, others get the rows."""
        spec = WorkerSpec(
            job_id=job.id,
            task=job.task,
            model=job.model,
            base_model=job.base_model,
            hyperparameters=job.hyperparameters,
            model_store=str(self.models.root.resolve()),
            work_dir=str(work_dir(self.settings.data_dir, job.id).resolve()),
            eval_fraction=VALIDATION_FRACTION,
            compare_with_active=job.promote == "if_better",
            resources=job.resources,
            job_meta={
                "job": job.id,
                "training_file": job.training_file,
                "validation_file": job.validation_file,
            },
            train_source_path=str(self.files.original_path(job.training_file).resolve()),
        )
        if runner == "local":
            spec.train_path = str(self.files.path(job.training_file).resolve())
            if job.validation_file:
                spec.validation_path = str(self.files.path(job.validation_file).resolve())
        else:
            spec.train_rows = [(e.text, e.label) for e in self.files.examples(job.training_file)]
            if job.validation_file:
                spec.validation_rows = [
                    (e.text, e.label) for e in self.files.examples(job.validation_file)
                ]
        return spec
