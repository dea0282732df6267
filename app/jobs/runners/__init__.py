"""Where a job's worker runs: a local process, or a task on a Ray cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from app.jobs.spec import WorkerEvent, WorkerSpec

EventSink = Callable[[WorkerEvent], None]
# Called once when the worker is gone: its exit code (None if unknown) and its log's tail.
ExitSink = Callable[[int | None, str], None]


class RunHandle(Protocol):
    """One started worker."""

    @property
    def worker_id(self) -> str:
        """A process id or a Ray task id, for the job record."""
        ...

    def cancel(self) -> None:
        """Stop the worker now (within seconds); ``on_exit`` still follows."""
        ...


class Runner(Protocol):
    """Starts workers; events and the exit are reported from a thread of the runner."""

    name: str

    def start(self, spec: WorkerSpec, on_event: EventSink, on_exit: ExitSink) -> RunHandle: ...

    def shutdown(self) -> None: ...
