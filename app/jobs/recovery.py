"""Which ``running`` jobs lost their server, and stopping the workers such a server left.

A job records its owner as ``host:pid``. On the owner's host a dead pid (or our own pid:
a restarted container keeps both) means the server that ran the job is gone. Elsewhere
only the heartbeat tells, after ``stale_after_s`` of silence.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

from app.jobs.records import JobRecord
from app.jobs.runners.local import kill_group

log = logging.getLogger(__name__)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lost_jobs(
    running: list[JobRecord], mine: set[str], stale_after_s: float
) -> list[tuple[JobRecord, str]]:
    """The jobs of ``running`` (not run by this process) whose server is gone, with why."""
    host = socket.gethostname()
    stale_before = time.time() - stale_after_s
    lost: list[tuple[JobRecord, str]] = []
    for job in running:
        if job.id in mine:
            continue
        owner_host, _, pid = (job.owner or "").rpartition(":")
        if owner_host == host and pid.isdigit():
            if int(pid) != os.getpid() and alive(int(pid)):
                continue  # another live server on this host runs it
            lost.append((job, "the server restarted while this job was running"))
        elif (job.heartbeat_at or 0) < stale_before:
            lost.append((job, f"its server sent no heartbeat for {stale_after_s:.0f} s"))
    return lost


def stop_orphaned_worker(job: JobRecord, grace_s: float) -> None:
    """Kill the local worker a dead server left running for ``job``, if it still runs."""
    owner_host, _, _ = (job.owner or "").rpartition(":")
    worker = job.progress.get("worker_id", "")
    if owner_host != socket.gethostname() or not isinstance(worker, str):
        return
    if worker.startswith("pid:") and worker[4:].isdigit():
        pid = int(worker[4:])
        if alive(pid) and _is_worker_of(pid, job.id):
            log.warning("stopping orphaned worker %s of job %s", pid, job.id)
            kill_group(pid, grace_s)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_worker_of(pid: int, job_id: str) -> bool:
    """True if ``pid`` runs this job's worker (guards against a recycled process id)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"app.jobs.worker" in cmdline and any(job_id.encode() in part for part in cmdline)
