"""The Ray runner: each job is a Ray task on the cluster at ``ray_address``.

The task runs the same ``worker.execute`` as a local worker and sends the same events
through a ``ray.util.queue.Queue``; a thread here drains it. The data rows travel with the
task (a remote node may not see this server's data folder); the model store must be the
shared volume every serving replica reads. Cancel is ``ray.cancel(force=True)``, which
kills the task's worker process.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from app.jobs.runners import EventSink, ExitSink
from app.jobs.spec import WorkerEvent, WorkerSpec

log = logging.getLogger(__name__)

POLL_S = 0.2


def _run_remote(spec_json: str, queue: Any) -> int:
    """Body of the Ray task (module level so that Ray pickles it by reference)."""
    from app.jobs.worker import execute

    spec = WorkerSpec.model_validate_json(spec_json)

    def emit(event: WorkerEvent) -> None:
        queue.put(event.model_dump_json())

    return execute(spec, emit, lambda: False)


class RayHandle:
    """A submitted Ray task."""

    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.cancelled = False

    @property
    def worker_id(self) -> str:
        return f"ray:{self.ref.task_id().hex()}"

    def cancel(self) -> None:
        import ray

        self.cancelled = True
        ray.cancel(self.ref, force=True)


class RayRunner:
    """Submits jobs as Ray tasks; connects to the cluster on construction."""

    name = "ray"

    def __init__(self, address: str | None, *, init_kwargs: dict[str, Any] | None = None) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, **(init_kwargs or {}))
        self._remote = ray.remote(max_retries=0)(_run_remote)

    def start(self, spec: WorkerSpec, on_event: EventSink, on_exit: ExitSink) -> RayHandle:
        from ray.util.queue import Queue

        queue = Queue(actor_options={"num_cpus": 0})
        resources = spec.resources
        ref = self._remote.options(
            num_cpus=float(resources.get("cpus", 1)),
            num_gpus=float(resources.get("gpus", 0)),
            name=f"textserve-{spec.job_id}",
        ).remote(spec.model_dump_json(), queue)
        handle = RayHandle(ref)
        threading.Thread(
            target=self._pump,
            args=(handle, queue, Path(spec.work_dir), on_event, on_exit),
            name=f"job-{spec.job_id}",
            daemon=True,
        ).start()
        return handle

    def _pump(
        self, handle: RayHandle, queue: Any, work: Path, on_event: EventSink, on_exit: ExitSink
    ) -> None:
        import ray
        from ray.exceptions import RayError

        def drain() -> None:
            while not queue.empty():
                try:
                    on_event(WorkerEvent.model_validate_json(queue.get_nowait()))
                except Exception:
                    log.exception("recording an event of %s failed", handle.worker_id)

        code: int | None
        tail = ""
        while True:
            drain()
            done, _ = ray.wait([handle.ref], timeout=POLL_S)
            if done:
                break
        try:
            code = int(ray.get(handle.ref))
        except RayError as exc:
            code = None if handle.cancelled else 1
            tail = str(exc)[-2000:]
        # Events put just before the task ended are still in the queue.
        time.sleep(POLL_S)
        drain()
        try:
            ray.kill(queue.actor)
        except Exception:
            log.debug("queue actor of %s already gone", handle.worker_id)
        # A killed task leaves its scratch folder; on one machine (or a shared volume) it
        # is this one.
        shutil.rmtree(work / "tmp", ignore_errors=True)
        on_exit(code, tail)

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
