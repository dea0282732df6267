"""The job service: the one object the fine-tune routes call, and the dispatcher thread.

It puts together the job's three stages, one module each: ``intake`` (create, check, validate
files), ``launch`` (claim a queued job, start its worker) and ``finish`` (record the exit,
promote, fail lost jobs, clean up). One dispatcher thread per replica runs them in turn,
beats the heart of the jobs it runs and honours cancels asked on other replicas.

States: ``validating_files`` -> ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` |
``cancelled``. A job left ``running`` by a process that is gone is marked ``failed`` (not
re-queued): its worker was stopped with it, and a retry is one POST away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import Conflict
from app.jobs.files import FileStore
from app.jobs.finish import Finisher
from app.jobs.intake import Intake
from app.jobs.launch import Launcher
from app.jobs.records import EventRecord, JobRecord, Promote
from app.jobs.recovery import owner_id
from app.jobs.reporting import Reporter
from app.jobs.runners import Runner
from app.jobs.runners.local import LOG_FILE
from app.jobs.runs import Runs, stop_run, work_dir
from app.jobs.store import JobStore, default_url
from app.metrics import Metrics
from app.registry.registry import ModelRegistry
from app.store.versions import ModelStore
from app.training.finetune import Hyperparameters

log = logging.getLogger(__name__)


class JobService:
    """Everything the fine-tune routes do, and the dispatcher that runs the jobs."""

    def __init__(
        self,
        settings: Settings,
        db: JobStore,
        files: FileStore,
        models: ModelStore,
        registry: ModelRegistry,
        metrics: Metrics,
        runner_factory: Callable[[Settings], Runner] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.files = files
        self.models = models
        self.registry = registry
        self.metrics = metrics
        self._runner_factory = runner_factory
        self.runner: Runner | None = None
        self.owner = owner_id()
        self.runs = Runs()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports = Reporter(db, metrics)
        self.intake = Intake(db, files, models, self.reports)
        self.finisher = Finisher(
            settings, db, models, registry, self.reports, self.runs, self._wake.set
        )
        self.launcher = Launcher(
            settings,
            db,
            files,
            models,
            self.reports,
            self.runs,
            self.owner,
            self._get_runner,
            self.finisher.on_exit,
        )
        metrics.watch_job_states(db.count_by_state)

    @classmethod
    def build(
        cls, settings: Settings, models: ModelStore, registry: ModelRegistry, metrics: Metrics
    ) -> JobService:
        """The job store (``jobs_db_url``, else SQLite in ``data_dir``), files and service."""
        db = JobStore(settings.jobs_db_url or default_url(settings.data_dir))
        return cls(settings, db, FileStore(settings.data_dir, db), models, registry, metrics)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Fail jobs orphaned by a dead server, then start dispatching (if this replica runs
        jobs)."""
        self.recover()
        if not self.settings.job_worker:
            return
        try:
            # Connect now, on the caller's (main) thread: Ray wants its driver set up there.
            self._get_runner()
        except Exception:
            log.exception("could not set up the job runner; will retry when a job is queued")
        self._thread = threading.Thread(
            target=self._dispatch_loop, name="job-dispatcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop dispatching; stop running workers and mark their jobs failed."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        running = self.runs.all()
        for run in running:
            run.stop_reason = "shutdown"
            if run.handle is not None:
                run.handle.cancel()
        for run in running:
            run.done.wait(timeout_s)
        if self.runner is not None:
            self.runner.shutdown()
        self.db.close()

    def _get_runner(self) -> Runner:
        if self.runner is None:
            if self._runner_factory is not None:
                self.runner = self._runner_factory(self.settings)
            elif self.settings.ray_address:
                from app.jobs.runners.ray_runner import RayRunner

                self.runner = RayRunner(self.settings.ray_address)
            else:
                from app.jobs.runners.local import LocalRunner

                self.runner = LocalRunner(self.settings.cancel_grace_s)
        assert self.runner is not None
        return self.runner

    # -- the API's operations --------------------------------------------------------------
    def create(
        self,
        *,
        model: str,
        task: str | None,
        training_file: str,
        validation_file: str | None,
        base_model: str,
        hyperparameters: Hyperparameters,
        promote: Promote,
        resources: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Check what can be checked at once (names, task, files), then record the job.

        ``task`` None: the existing model's task, else classification.
        """
        job = self.intake.create(
            model=model,
            task=task,
            training_file=training_file,
            validation_file=validation_file,
            base_model=base_model,
            hyperparameters=hyperparameters,
            promote=promote,
            resources=resources,
        )
        self._wake.set()
        return job

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job; a running worker is stopped before this returns (within seconds)."""
        job = self.db.get_job(job_id)
        if job.finished:
            raise Conflict(f"job {job_id} is already {job.state}")
        now = time.time()
        if self.db.transition(job_id, ("validating_files", "queued"), "cancelled", finished_at=now):
            self.reports.event(job_id, "state", "job cancelled before it ran", state="cancelled")
            self.reports.count_finished("cancelled", None)
            return self.db.get_job(job_id)
        self.db.update_job(job_id, cancel_requested=True)
        run = self.runs.get(job_id)
        if run is not None:
            stop_run(run, "cancel")
            run.done.wait(self.settings.cancel_grace_s + 10.0)
        # Else another replica runs it: its dispatcher sees the flag within a poll.
        return self.db.get_job(job_id)

    def get(self, job_id: str) -> JobRecord:
        return self.db.get_job(job_id)

    def list_jobs(self, limit: int, after: str | None = None) -> tuple[list[JobRecord], bool]:
        """Jobs, newest first, from after job ``after``; and whether more follow."""
        return self.db.list_jobs(limit, after)

    def events(self, job_id: str, after: int | None = None, limit: int = 100) -> list[EventRecord]:
        """A job's events, oldest first, from after event id ``after``."""
        return self.db.events(job_id, after, limit)

    def log_path(self, job: JobRecord) -> Path:
        return work_dir(self.settings.data_dir, job.id) / LOG_FILE

    def recover(self) -> list[str]:
        """Fail ``running`` jobs whose owner is gone; stop their orphaned workers."""
        return self.finisher.recover()

    # -- dispatcher ------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.intake.validate_new(self._stopping)
                self.launcher.start_queued(self._stopping)
                self._housekeeping()
            except Exception:
                log.exception("job dispatcher step failed")
            self._wake.wait(self.settings.job_poll_s)
            self._wake.clear()

    def _housekeeping(self) -> None:
        mine = self.runs.all()
        self.db.heartbeat([r.job.id for r in mine], time.time())
        # A cancel asked through another replica arrives as a flag in the database: one
        # query for all of this replica's running jobs, every poll.
        cancelled = self.db.cancel_requested([r.job.id for r in mine if r.stop_reason is None])
        for run in mine:
            if run.job.id in cancelled:
                stop_run(run, "cancel")
        self.recover()
