"""The job service: creates jobs, moves them through their states, runs and records them.

One dispatcher thread per replica validates new jobs, claims queued ones up to the
concurrency limit, beats the heart of the jobs it runs, honours cancels asked on other
replicas, and fails jobs whose owner died. Workers report through the runner's threads.

States: ``validating_files`` -> ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` |
``cancelled``. A job left ``running`` by a process that is gone is marked ``failed`` (not
re-queued): its worker was stopped with it, and a retry is one POST away.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import Conflict, FileNotFound
from app.jobs.checks import check_files, resolve_task
from app.jobs.files import FileStore
from app.jobs.promotion import Decision, decide
from app.jobs.records import EventRecord, FileRecord, JobRecord, Promote
from app.jobs.recovery import lost_jobs, owner_id, stop_orphaned_worker
from app.jobs.reporting import Reporter, Run
from app.jobs.runners import Runner
from app.jobs.runners.local import LOG_FILE
from app.jobs.spec import WorkerSpec
from app.jobs.store import JobStore, default_url, new_id
from app.jobs.tasks import check_task
from app.metrics import Metrics
from app.registry.manifest import check_name
from app.registry.registry import ModelRegistry
from app.registry.store import ModelStore
from app.training.base_model import resolve_base_model
from app.training.finetune import Hyperparameters

log = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.1


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
        self._running: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports = Reporter(db, metrics)
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
        with self._lock:
            running = list(self._running.values())
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
        check_name(model)
        task = resolve_task(self.models, model, task)
        check_task(task)
        train = _file(self.files, training_file, "training_file")
        validation = None
        if validation_file is not None:
            validation = _file(self.files, validation_file, "validation_file")
        check_files(task, train, validation)
        resolve_base_model(base_model)
        job = JobRecord(
            id=new_id("ftjob"),
            model=model,
            task=task,
            training_file=training_file,
            validation_file=validation_file,
            base_model=base_model,
            hyperparameters=hyperparameters.model_dump(),
            resources=resources or {},
            promote=promote,
            state="validating_files",
            created_at=time.time(),
        )
        self.db.add_job(job)
        self.reports.event(
            job.id, "state", "job created; validating files", state="validating_files"
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
        with self._lock:
            run = self._running.get(job_id)
        if run is not None:
            self._stop_run(run, "cancel")
            run.done.wait(self.settings.cancel_grace_s + 10.0)
        # Else another replica runs it: its dispatcher sees the flag within a poll.
        return self.db.get_job(job_id)

    def get(self, job_id: str) -> JobRecord:
        return self.db.get_job(job_id)

    # -- recovery --------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Fail ``running`` jobs whose owner is gone; stop their orphaned workers."""
        with self._lock:
            mine = set(self._running)
        running = self.db.jobs_in(("running",))
        failed: list[str] = []
        for job, reason in lost_jobs(running, mine, self.settings.job_stale_after_s):
            stop_orphaned_worker(job, self.settings.cancel_grace_s)
            if self.db.transition(
                job.id,
                ("running",),
                "failed",
                finished_at=time.time(),
                error={"code": "worker_lost", "message": f"job lost: {reason}"},
                progress={**job.progress, "stage": "failed"},  # as every ended job reads
            ):
                self.reports.event(
                    job.id, "state", f"job failed: {reason}", level="error", state="failed"
                )
                self._cleanup(job)
                failed.append(job.id)
        return failed

    # -- dispatcher ------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._validate_new()
                self._start_queued()
                self._housekeeping()
            except Exception:
                log.exception("job dispatcher step failed")
            self._wake.wait(self.settings.job_poll_s)
            self._wake.clear()

    def _validate_new(self) -> None:
        for job in self.db.jobs_in(("validating_files",)):
            if self._stopping.is_set():
                return
            try:
                self._check_files(job)
            except Exception as exc:
                code = getattr(exc, "code", "invalid_dataset")
                if self.db.transition(
                    job.id,
                    ("validating_files",),
                    "failed",
                    finished_at=time.time(),
                    error={"code": code, "message": str(exc)},
                ):
                    self.reports.event(
                        job.id,
                        "state",
                        f"file validation failed: {exc}",
                        level="error",
                        state="failed",
                    )
                    self.reports.count_finished("failed", None)
                continue
            if self.db.transition(job.id, ("validating_files",), "queued"):
                self.reports.event(job.id, "state", "files validated; job queued", state="queued")

    def _check_files(self, job: JobRecord) -> None:
        # As at creation: the model may have been published as another task since.
        resolve_task(self.models, job.model, job.task)
        train = self.files.get(job.training_file)
        validation = None if job.validation_file is None else self.files.get(job.validation_file)
        check_files(job.task, train, validation)

    def _start_queued(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if len(self._running) >= self.settings.max_concurrent_jobs:
                    return
            queued = self.db.jobs_in(("queued",))
            if not queued:
                return
            job = queued[0]
            now = time.time()
            runner = self._get_runner()
            if not self.db.transition(
                job.id,
                ("queued",),
                "running",
                started_at=now,
                owner=self.owner,
                heartbeat_at=now,
                runner=runner.name,
            ):
                continue  # another replica claimed it
            self._launch(job.model_copy(update={"state": "running", "started_at": now}), runner)

    def _launch(self, job: JobRecord, runner: Runner) -> None:
        run = Run(job)
        with self._lock:
            self._running[job.id] = run
        try:
            spec = self._spec(job, runner.name)
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
            self._stop_run(run, run.stop_reason)
        progress = run.merge_progress({"worker_id": run.handle.worker_id})
        progress.setdefault("stage", "starting")
        self.db.update_job(job.id, progress=progress)
        self.reports.event(
            job.id,
            "state",
            f"job running on the {runner.name} runner ({run.handle.worker_id})",
            state="running",
        )

    def _spec(self, job: JobRecord, runner: str) -> WorkerSpec:
        spec = WorkerSpec(
            job_id=job.id,
            task=job.task,
            model=job.model,
            base_model=job.base_model,
            hyperparameters=job.hyperparameters,
            model_store=str(self.models.root.resolve()),
            work_dir=str(self._work_dir(job).resolve()),
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

    def _work_dir(self, job: JobRecord) -> Path:
        return self.settings.data_dir / "jobs" / job.id

    def _housekeeping(self) -> None:
        with self._lock:
            mine = list(self._running.values())
        self.db.heartbeat([r.job.id for r in mine], time.time())
        for run in mine:
            # A cancel asked through another replica arrives as a flag in the database.
            if run.stop_reason is None and self.db.get_job(run.job.id).cancel_requested:
                self._stop_run(run, "cancel")
        self.recover()

    def _stop_run(self, run: Run, reason: str) -> None:
        run.stop_reason = run.stop_reason or reason
        if run.handle is not None:
            threading.Thread(target=run.handle.cancel, daemon=True).start()

    def _on_exit(self, run: Run, code: int | None, tail: str) -> None:
        job = run.job
        try:
            if run.result is not None:
                self._succeed(run)
            elif run.stop_reason == "cancel":
                self._finish(run, "cancelled", None, "job cancelled; its worker was stopped")
            elif run.stop_reason == "shutdown":
                error = {
                    "code": "server_shutdown",
                    "message": "the server shut down while this job was running",
                }
                self._finish(run, "failed", error, error["message"])
            else:
                error = run.error or {
                    "code": "worker_crashed",
                    "message": f"the worker exited with code {code} without a result: "
                    f"{tail.strip()[-500:]}",
                }
                self._finish(run, "failed", error, f"job failed: {error['message']}")
        except Exception:
            log.exception("finishing job %s failed", job.id)
            self._finish(
                run,
                "failed",
                {"code": "internal_error", "message": "recording the result failed"},
                "job failed",
            )
        finally:
            self._cleanup(job)
            with self._lock:
                self._running.pop(job.id, None)
            self.reports.clear_gauges(job.id)
            run.done.set()
            self._wake.set()

    def _succeed(self, run: Run) -> None:
        job = run.job
        assert run.result is not None
        result = dict(run.result)
        version = int(result["version"])
        active = self.models.active_version(job.model)
        decision = decide(job.promote, active, result.get("comparison"))
        result["promotion"] = {
            "rule": job.promote,
            "promoted": decision.promote,
            "reason": decision.reason,
            "previous_version": active,
        }
        if decision.promote:
            # This replica swaps now; the others follow the pointer within a watch interval.
            try:
                self.registry.promote(job.model, version, reason=f"fine-tune {job.id}")
            except Exception as exc:
                log.error("could not promote %s@%s: %s", job.model, version, exc)
                result["promotion"].update(promoted=False, reason=f"promotion failed: {exc}")
                decision = Decision(False, f"promotion failed: {exc}")
        message = (
            f"published {job.model}@{version}; "
            f"{'promoted' if decision.promote else 'not promoted'}: {decision.reason}"
        )
        self._finish(run, "succeeded", None, message, result=result)

    def _finish(
        self,
        run: Run,
        state: str,
        error: dict[str, Any] | None,
        message: str,
        result: dict[str, Any] | None = None,
    ) -> None:
        job = run.job
        now = time.time()
        fields: dict[str, Any] = {"finished_at": now, "error": error}
        if result is not None:
            fields["result"] = result
        progress = dict(job.progress)
        progress["stage"] = state
        fields["progress"] = progress
        if self.db.transition(job.id, ("running",), state, **fields):
            level = "error" if state == "failed" else "info"
            self.reports.event(job.id, "state", message, level=level, state=state)
            self.reports.count_finished(state, job.started_at)

    def _cleanup(self, job: JobRecord) -> None:
        """Remove the job's scratch files and any half-published version of its model."""
        work = self._work_dir(job)
        for child in (work / "tmp", work / "spec.json"):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        with self._lock:
            busy = any(
                r.job.model == job.model and r.job.id != job.id for r in self._running.values()
            )
        if not busy:
            for leftover in (self.models.root / job.model).glob(".publish-*"):
                shutil.rmtree(leftover, ignore_errors=True)

    def log_path(self, job: JobRecord) -> Path:
        return self._work_dir(job) / LOG_FILE

    def list_jobs(self, limit: int, after: str | None) -> tuple[list[JobRecord], bool]:
        return self.db.list_jobs(limit, after)

    def events(self, job_id: str, after: int | None, limit: int) -> list[EventRecord]:
        return self.db.events(job_id, after, limit)


def _file(files: FileStore, file_id: str, param: str) -> FileRecord:
    """``files.get``, whose 404 names the request field that gave the id."""
    try:
        return files.get(file_id)
    except FileNotFound as exc:
        raise FileNotFound(str(exc), param=param) from None
