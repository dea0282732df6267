"""A lone request run on its caller's thread, when the batcher has nothing else to do.

At light load the queue's two thread hand-offs (event loop to scheduler, scheduler back to
the loop, each a wake-up of a sleeping thread) cost a lone caller about a millisecond on a
small VM, as much as a third of a short text's model run. When the batcher is idle there is
nothing to batch with, so the caller's own thread runs the text on the all-cores session
instead. It claims every stream first, so the scheduler starts no run on the same cores
meanwhile; whatever arrives in the meantime waits (in the socket, as the event loop is busy)
for at most this one run, then batches.
"""

from __future__ import annotations

import time

from app.errors import InferenceFailed
from app.runtime.batch_jobs import BatchObserver, BatchResult, RunFn, TokenizeFn
from app.runtime.batch_queue import BatchQueue


def run_inline(
    shared: BatchQueue,
    tokenize: TokenizeFn,
    run_solo: RunFn,
    observer: BatchObserver,
    texts: list[str],
) -> BatchResult | None:
    """Run a one-text request right here, if nothing is queued or running.

    Answers ``None`` when the batcher is busy: the request then queues as usual.
    """
    if not shared.claim_every_stream():
        return None
    try:
        t0 = time.perf_counter()
        try:
            encoded = tokenize(texts)
        except Exception as exc:
            raise InferenceFailed(f"tokenization failed: {exc}") from exc
        t1 = time.perf_counter()
        observer.tokenized(1, int(encoded[0].truncated), t1 - t0)
        observer.dequeued(0.0)
        try:
            outputs = run_solo([encoded[0].ids])
        except Exception as exc:
            observer.failed()
            raise InferenceFailed(f"model run failed: {type(exc).__name__}: {exc}") from exc
        t2 = time.perf_counter()
        observer.batch(1, len(encoded[0].ids), t2 - t1)
        observer.done(t2 - t0)
        return BatchResult(
            outputs=outputs,
            truncated=[encoded[0].truncated],
            queue_s=0.0,
            tokenize_s=t1 - t0,
            inference_s=t2 - t1,
        )
    finally:
        shared.free_every_stream()
