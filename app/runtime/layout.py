"""How a machine's cores are split between server processes and ONNX Runtime threads.

One process owns one event loop and one batcher per model; its ORT session runs each batch on
``threads`` cores. More threads per run stop paying once a run's matrices are too small to
split well (short texts, small batches), while more processes pay for their own copy of the
model weights and event loop, and split the traffic into smaller batches. The measured
trade-off on a 2-core machine is in the README (``bench/cores.py``); ``auto`` follows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Threads per process for ``auto``: measured with bench/cores.py (README, "Scale across cores").
AUTO_THREADS_PER_WORKER = 2


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan(workers: int = 0, threads: int = 0, cores: int | None = None) -> Layout:
    """Fill in what is left at 0: workers from cores, threads as the cores each worker gets."""
    cores = cores or usable_cores()
    if workers <= 0:
        per = threads if threads > 0 else AUTO_THREADS_PER_WORKER
        workers = max(1, cores // per)
    if threads <= 0:
        threads = max(1, cores // workers)
    return Layout(workers, threads)
