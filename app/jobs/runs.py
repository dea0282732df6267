"""The jobs this replica runs right now, shared by the dispatcher and the runners' threads."""

from __future__ import annotations

import threading
from pathlib import Path

from app.jobs.reporting import Run


class Runs:
    """A thread-safe table of this replica's runs, by job id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}

    def add(self, run: Run) -> None:
        with self._lock:
            self._runs[run.job.id] = run

    def pop(self, job_id: str) -> None:
        with self._lock:
            self._runs.pop(job_id, None)

    def get(self, job_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(job_id)

    def all(self) -> list[Run]:
        with self._lock:
            return list(self._runs.values())

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._runs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def model_busy(self, model: str, besides: str) -> bool:
        """Whether a run other than job ``besides`` trains ``model``."""
        with self._lock:
            return any(r.job.model == model and r.job.id != besides for r in self._runs.values())


def stop_run(run: Run, reason: str) -> None:
    """Ask ``run``'s worker to stop, without waiting; its exit is recorded as ``reason``."""
    run.stop_reason = run.stop_reason or reason
    if run.handle is not None:
        threading.Thread(target=run.handle.cancel, daemon=True).start()


def work_dir(data_dir: Path, job_id: str) -> Path:
    """A job's scratch folder: its spec, the worker's log and temporary files."""
    return data_dir / "jobs" / job_id
