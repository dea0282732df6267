"""The worker: runs one job in its own process (``python -m app.jobs.worker``) or Ray task.

It never touches the job database: it reads its ``WorkerSpec``, trains, publishes, and
reports ``WorkerEvent`` lines on a pipe (local) or a queue (Ray). The server records them,
so a crash or an out-of-memory kill here cannot corrupt any state the server owns.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO

from app.errors import TextserveError
from app.jobs.checks import check_model_task
from app.jobs.spec import WorkerEvent, WorkerSpec, examples_from_rows, report_to
from app.store.versions import ModelStore
from app.training.data import Example, read_jsonl
from app.training.errors import TrainingCancelled
from app.training.task import TaskContext
from app.training.tasks import task_named

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_ORPHANED = 0, 1, 2, 3


def execute(
    spec: WorkerSpec, emit: Callable[[WorkerEvent], None], should_stop: Callable[[], bool]
) -> int:
    """Run the job; the last event is ``result`` or ``error``. Returns the exit code."""
    scratch = Path(spec.work_dir) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    # Staging folders of the export land in the job's folder, which the runner removes:
    # a killed worker leaves nothing behind elsewhere.
    tempfile.tempdir = str(scratch)
    try:
        emit(WorkerEvent(type="stage", message="loading data", data={"stage": "loading data"}))
        train, validation = _load(spec)
        store = ModelStore(Path(spec.model_store))
        task = task_named(spec.task)
        # The task was resolved when the job was created; a job that ran meanwhile may have
        # published this name as another task, and two tasks must not share a model.
        check_model_task(store, spec.model, spec.task)
        ctx = TaskContext(spec, store, train, validation, report_to(emit), should_stop)
        result = task.run(ctx)
    except TrainingCancelled as exc:
        emit(WorkerEvent(type="error", message=str(exc), data={"code": exc.code}))
        return EXIT_CANCELLED
    except TextserveError as exc:
        emit(WorkerEvent(type="error", message=str(exc), data={"code": exc.code}))
        return EXIT_FAILED
    except Exception as exc:
        log.exception("job %s failed", spec.job_id)
        message = f"{type(exc).__name__}: {exc}"
        emit(
            WorkerEvent(
                type="error",
                message=message,
                data={"code": "training_failed", "traceback": traceback.format_exc(limit=8)},
            )
        )
        return EXIT_FAILED
    emit(WorkerEvent(type="result", message="published", data=dict(result)))
    return EXIT_OK


def _load(spec: WorkerSpec) -> tuple[list[Example], list[Example] | None]:
    if spec.train_rows is not None:
        train = examples_from_rows(spec.train_rows)
    elif spec.train_path is not None:
        train = read_jsonl(Path(spec.train_path))
    else:
        raise ValueError("the spec names no training data")
    if spec.validation_rows is not None:
        return train, examples_from_rows(spec.validation_rows)
    if spec.validation_path is not None:
        return train, read_jsonl(Path(spec.validation_path))
    return train, None


class _PipeEmitter:
    """Writes events as JSON lines on the pipe to the server; exits if the server is gone."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: WorkerEvent) -> None:
        try:
            self._stream.write(event.model_dump_json() + "\n")
            self._stream.flush()
        except (BrokenPipeError, OSError):
            # Nobody would record the outcome: stop before publishing anything more.
            os._exit(EXIT_ORPHANED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one textserve fine-tune job.")
    parser.add_argument("--spec", type=Path, required=True, help="WorkerSpec JSON file")
    parser.add_argument("--events-fd", type=int, required=True, help="pipe for events")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = WorkerSpec.model_validate(json.loads(args.spec.read_text()))
    parent = os.getppid()
    stop = {"requested": False}

    def on_term(_signum: int, _frame: object) -> None:
        stop["requested"] = True  # checked between steps; the runner kills us if we dawdle

    signal.signal(signal.SIGTERM, on_term)

    def should_stop() -> bool:
        # A new parent means the server died; its successor marks this job failed.
        return stop["requested"] or os.getppid() != parent

    with os.fdopen(args.events_fd, "w", encoding="utf-8") as stream:
        return execute(spec, _PipeEmitter(stream), should_stop)


if __name__ == "__main__":
    sys.exit(main())
