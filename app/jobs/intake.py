"""A job's way in: the checks a request passes before it is recorded, and the dispatcher's
file validation that moves it from ``validating_files`` to ``queued`` (or ``failed``).

The task is resolved here, once, and recorded on the job; what the task demands of its
files is the task's own ``check_files`` (``app.training.tasks``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from app.errors import FileNotFound
from app.jobs.checks import check_model_task, resolve_task
from app.jobs.files import FileStore
from app.jobs.records import FileRecord, JobRecord, Promote
from app.jobs.reporting import Reporter
from app.jobs.store import JobStore, new_id
from app.store.manifest import check_name
from app.store.versions import ModelStore
from app.training.base_model import resolve_base_model
from app.training.finetune import Hyperparameters
from app.training.tasks import task_named


class Intake:
    """Creates jobs and validates their files."""

    def __init__(
        self, db: JobStore, files: FileStore, models: ModelStore, reports: Reporter
    ) -> None:
        self.db = db
        self.files = files
        self.models = models
        self.reports = reports

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
        """Check what can be checked at once (names, task, files), then record the job."""
        check_name(model)
        resolved = resolve_task(self.models, model, task)
        entry = task_named(resolved)
        train = _file(self.files, training_file, "training_file")
        validation = None
        if validation_file is not None:
            validation = _file(self.files, validation_file, "validation_file")
        entry.check_files(train, validation)
        resolve_base_model(base_model)
        job = JobRecord(
            id=new_id("ftjob"),
            model=model,
            task=resolved,
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
        return job

    def validate_new(self, stopping: threading.Event) -> None:
        """Queue each ``validating_files`` job whose files still fit; fail the others."""
        for job in self.db.jobs_in(("validating_files",)):
            if stopping.is_set():
                return
            try:
                self._check(job)
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

    def _check(self, job: JobRecord) -> None:
        # A job that ran meanwhile may have published this name as another task.
        check_model_task(self.models, job.model, job.task)
        train = self.files.get(job.training_file)
        validation = None if job.validation_file is None else self.files.get(job.validation_file)
        task_named(job.task).check_files(train, validation)


def _file(files: FileStore, file_id: str, param: str) -> FileRecord:
    """``files.get``, whose 404 names the request field that gave the id."""
    try:
        return files.get(file_id)
    except FileNotFound as exc:
        raise FileNotFound(str(exc), param=param) from None
