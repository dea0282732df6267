"""How a job ends: its worker's exit recorded as a state, the promotion rule applied to a
published version, lost jobs failed, and the scratch files removed."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from typing import Any

from app.config import Settings
from app.jobs.promotion import Decision, decide
from app.jobs.records import JobRecord
from app.jobs.recovery import lost_jobs, stop_orphaned_worker
from app.jobs.reporting import Reporter, Run
from app.jobs.runs import Runs, work_dir
from app.jobs.store import JobStore
from app.registry.registry import ModelRegistry
from app.store.versions import ModelStore

log = logging.getLogger(__name__)


class Finisher:
    """Records the end of each job this replica ran (or that a dead replica left running)."""

    def __init__(
        self,
        settings: Settings,
        db: JobStore,
        models: ModelStore,
        registry: ModelRegistry,
        reports: Reporter,
        runs: Runs,
        wake: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.models = models
        self.registry = registry
        self.reports = reports
        self.runs = runs
        self._wake = wake

    def on_exit(self, run: Run, code: int | None, tail: str) -> None:
        """The worker of ``run`` is gone (exit ``code``, last log lines ``tail``)."""
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
            self.cleanup(job)
            self.runs.pop(job.id)
            self.reports.clear_gauges(job.id)
            run.done.set()
            self._wake()

    def recover(self) -> list[str]:
        """Fail ``running`` jobs whose owner is gone; stop their orphaned workers."""
        mine = self.runs.ids()
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
                self.cleanup(job)
                failed.append(job.id)
        return failed

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
        fields: dict[str, Any] = {"finished_at": time.time(), "error": error}
        if result is not None:
            fields["result"] = result
        fields["progress"] = {**job.progress, "stage": state}
        level = "error" if state == "failed" else "info"
        if self.db.finish(job.id, state, message, level=level, fields=fields):
            self.reports.count_finished(state, job.started_at)

    def cleanup(self, job: JobRecord) -> None:
        """Remove the job's scratch files and any half-published version of its model."""
        work = work_dir(self.settings.data_dir, job.id)
        for child in (work / "tmp", work / "spec.json"):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        if not self.runs.model_busy(job.model, besides=job.id):
            for leftover in (self.models.root / job.model).glob(".publish-*"):
                shutil.rmtree(leftover, ignore_errors=True)
