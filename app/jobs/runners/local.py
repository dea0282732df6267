"""The local runner: one ``python -m app.jobs.worker`` process per job, in its own session.

The worker gets its own process group, so cancel reaches every process it started (data
loader workers, tokenizer threads' helpers): SIGTERM to the group, then SIGKILL after a
grace period. Events arrive on a pipe; stdout and stderr go to ``worker.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from pydantic import ValidationError

from app.jobs.runners import EventSink, ExitSink
from app.jobs.spec import WorkerEvent, WorkerSpec

log = logging.getLogger(__name__)

LOG_FILE = "worker.log"
TAIL_BYTES = 2000


class LocalHandle:
    """A running worker process."""

    def __init__(self, proc: subprocess.Popen[bytes], grace_s: float) -> None:
        self.proc = proc
        self._grace_s = grace_s

    @property
    def worker_id(self) -> str:
        return f"pid:{self.proc.pid}"

    def cancel(self) -> None:
        kill_group(self.proc.pid, self._grace_s, self.proc)


def kill_group(pid: int, grace_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if still alive after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    if proc is not None:
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait()


def log_tail(work_dir: Path) -> str:
    path = work_dir / LOG_FILE
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


class LocalRunner:
    """Runs each job in a child process of this server."""

    name = "local"

    def __init__(self, grace_s: float = 3.0) -> None:
        self._grace_s = grace_s

    def start(self, spec: WorkerSpec, on_event: EventSink, on_exit: ExitSink) -> LocalHandle:
        work = Path(spec.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        spec_path = work / "spec.json"
        spec_path.write_text(spec.model_dump_json())
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "TMPDIR": str(work / "tmp"), "PYTHONUNBUFFERED": "1"}
        try:
            with (work / LOG_FILE).open("ab") as logfile:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "app.jobs.worker",
                        "--spec",
                        str(spec_path),
                        "--events-fd",
                        str(write_fd),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,),
                    start_new_session=True,
                    env=env,
                )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the child holds its copy; EOF on ours means it is gone
        threading.Thread(
            target=self._pump,
            args=(proc, read_fd, work, on_event, on_exit),
            name=f"job-{spec.job_id}",
            daemon=True,
        ).start()
        return LocalHandle(proc, self._grace_s)

    def _pump(
        self,
        proc: subprocess.Popen[bytes],
        read_fd: int,
        work: Path,
        on_event: EventSink,
        on_exit: ExitSink,
    ) -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as events:
            for line in events:
                try:
                    event = WorkerEvent.model_validate_json(line)
                except ValidationError:
                    log.warning("unreadable event from worker %s: %.200s", proc.pid, line)
                    continue
                try:
                    on_event(event)
                except Exception:
                    log.exception("recording an event of worker %s failed", proc.pid)
        code = proc.wait()
        on_exit(code, log_tail(work))

    def shutdown(self) -> None:
        """Nothing to release: live workers are stopped by the service, job by job."""
