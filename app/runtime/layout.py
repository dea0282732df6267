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

import os
from dataclasses import dataclass

# ORT threads per run for ``auto`` on the CPU: measured with bench/cores.py (README).
AUTO_THREADS_PER_STREAM = 1


@dataclass(frozen=True)
class Layout:
    workers: int
    streams: int
    threads: int


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
