"""How a machine's cores are split: server processes x model runs in flight x ORT threads.

One process owns one event loop and one batcher per model. Its batcher keeps ``streams``
model runs in flight, each run using ``threads`` intra-op threads of ONNX Runtime. More
threads per run stop paying once a run's matrices are too small to split well (short texts,
small batches): the threads wait on each other at every layer, and any other thread that
needs the CPU (the event loop, the tokenizer) stalls the whole run. Concurrent single-thread
runs share nothing and lose nothing to preemption; more processes do too, but each holds its
own copy of the weights and reports its own metrics. Measured trade-offs: README,
"Performance" (``bench/cores.py``); ``auto`` follows them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

# ORT threads per run for ``auto`` on the CPU: measured with bench/cores.py (README).
AUTO_THREADS_PER_STREAM = 1


@dataclass(frozen=True)
class Layout:
    workers: int
    streams: int
    threads: int


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may use: its CPU set, capped by a container's CPU quota.

    A Kubernetes CPU limit is a CFS quota, not a CPU set: the pod still sees every core of
    the node, and sizing threads by that count would oversubscribe the few it may use.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cgroup_cpu_limit(root: Path) -> float | None:
    """CPUs allowed by the cgroup's quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), if any."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            return None if quota == "max" else int(quota) / int(period or 100_000)
        v1 = root / "cpu" / "cpu.cfs_quota_us"
        if v1.is_file():
            quota_us = int(v1.read_text())
            period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def plan(
    workers: int = 1,
    streams: int = 0,
    threads: int = 0,
    cores: int | None = None,
    gpu: bool = False,
) -> Layout:
    """Fill in what is left at 0 so that workers x streams x threads covers the cores.

    On a GPU one stream per process feeds the device (its kernels, not the cores, do the
    work), and ``threads`` only matters for the few CPU-side operators.
    """
    cores = cores or usable_cores()
    workers = max(1, workers) if workers else 1
    per_worker = max(1, cores // workers)
    if streams <= 0:
        if gpu:
            streams = 1
        else:
            per_stream = threads if threads > 0 else AUTO_THREADS_PER_STREAM
            streams = max(1, per_worker // per_stream)
    if threads <= 0:
        threads = max(1, per_worker // streams)
    return Layout(workers, streams, threads)
