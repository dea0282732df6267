"""The batcher's scheduling thread, and the three ways a batch it shapes gets run.

One thread owns the pool of tokenized rows: it takes arrivals in, drops the dead, shapes
batches (``batch_shaping``) and scatters each run's outputs back to the jobs. Every job's
state is touched on this thread only. A batch then runs in one of three ways:

- one stream (``streams == 1``): on this thread, which shapes the next batch afterwards;
- several streams: on a runner thread, one per stream, while this thread tokenizes and
  shapes the next batches (each run then gets its share of the cores);
- solo: at light load (one text, nothing else queued or running) with a ``run_solo``, on
  this thread across every core, holding every stream meanwhile.

(A fourth path, a lone request run on its caller's thread, bypasses this one entirely:
``batch_inline``.)
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time

import numpy as np

from app.errors import DeadlineExceeded, InferenceFailed, ShuttingDown
from app.runtime.batch_jobs import (
    Answer,
    BatchObserver,
    BatchResult,
    Job,
    Row,
    RunFn,
    TokenizeFn,
    fail,
    resolve_all,
)
from app.runtime.batch_queue import BatchQueue
from app.runtime.batch_shaping import take_batch
from app.runtime.threadname import name_this_thread


class Scheduler:
    """The scheduling thread of one batcher, and its runner threads when ``streams > 1``."""

    def __init__(
        self,
        shared: BatchQueue,
        tokenize: TokenizeFn,
        run: RunFn,
        run_solo: RunFn | None,
        observer: BatchObserver,
        name: str,
    ) -> None:
        self._q = shared
        self._tokenize = tokenize
        self._run_fn = run
        self._run_solo = run_solo
        self._obs = observer
        self._last_batch = 0  # rows in the last batch run: one means light load
        self._tasks: queue.SimpleQueue[list[Row] | None] = queue.SimpleQueue()
        streams = shared.streams
        self._runners = [
            threading.Thread(target=self._runner, name=f"{name}-run-{i}", daemon=True)
            for i in range(streams if streams > 1 else 0)
        ]
        for runner in self._runners:
            runner.start()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        """Admits arrivals, drops the dead, shapes batches, starts runs, scatters results."""
        name_this_thread("ts-scheduler")
        q = self._q
        pool: list[Row] = []
        while True:
            with q.cond:
                while not self._has_work(pool):
                    q.cond.wait()
                if q.abort or (
                    q.closed and not q.incoming and not q.done and not pool and q.idle == q.streams
                ):
                    break
                new, q.incoming = q.incoming, []
                done, q.done = q.done, []
                depth = q.queued_texts
            for completion in done:
                self._complete(*completion)
            if new:
                self._obs.queued(depth)
                self._admit(new, pool)
            self._drop_dead(pool)
            if not pool or not q.idle:
                continue
            # Waiting to fill a batch only pays under load: a lone caller (the last run held
            # one row) goes straight to the model instead of idling for max_wait.
            under_load = self._last_batch > 1 or len(pool) > 1
            if under_load and len(pool) < q.limits.max_batch_size and not q.closed:
                wait_left = pool[0].job.enqueued + q.limits.max_wait_s - time.monotonic()
                if wait_left > 0:
                    with q.cond:
                        q.cond.wait_for(lambda: bool(q.incoming or q.done), timeout=wait_left)
                    continue
            # A stream is reserved before the batch is taken out of the pool: an inline run
            # (batch_inline) may have claimed every stream since the look above.
            with q.cond:
                if not q.idle:
                    continue
                all_idle = q.idle == q.streams
                q.idle -= 1
            batch = take_batch(pool, q.limits)
            self._dispatch(batch)
            self._start(batch, lone=len(batch) == 1 and not pool and all_idle)
        for _ in self._runners:
            self._tasks.put(None)
        for row in pool:
            fail(row.job, ShuttingDown("the service shut down before this ran"))

    def _start(self, batch: list[Row], lone: bool) -> None:
        """Run ``batch`` on the stream reserved for it, in one of the three ways."""
        q = self._q
        if q.streams == 1:
            outcome = self._run(batch, self._run_fn)
            with q.cond:
                q.idle += 1
            self._complete(batch, *outcome)
        elif self._run_solo is not None and lone:
            # Light load: one text, and nothing else queued or running. Run it here, on
            # every core (the other streams are taken too: nobody else takes a stream
            # while any is reserved); what arrives meanwhile waits in `incoming` for the
            # next pass. Larger batches keep to the streams, so that this thread stays
            # free to feed the other stream as more arrives.
            with q.cond:
                q.idle -= q.streams - 1
            outcome = self._run(batch, self._run_solo)
            with q.cond:
                q.idle += q.streams
            self._complete(batch, *outcome)
        else:
            self._tasks.put(batch)  # the reserved stream's runner gives it back

    def _has_work(self, pool: list[Row]) -> bool:
        """Whether the scheduler has something to do (called holding the condition)."""
        q = self._q
        if q.abort or q.incoming or q.done:
            return True
        if pool:
            return q.idle > 0  # else: wait for a run to finish
        # Nothing queued: only shutting down, once every run in flight is back, remains.
        return q.closed and q.idle == q.streams

    def _runner(self) -> None:
        name_this_thread("ts-run")
        q = self._q
        while (batch := self._tasks.get()) is not None:
            outcome = self._run(batch, self._run_fn)
            with q.cond:
                q.done.append((batch, *outcome))
                q.idle += 1
                q.cond.notify()

    def _run(self, batch: list[Row], fn: RunFn) -> tuple[list[np.ndarray] | Exception, float]:
        t0 = time.perf_counter()
        try:
            outputs: list[np.ndarray] | Exception = fn([r.ids for r in batch])
        except Exception as exc:  # answered per job by _complete; the thread lives on
            outputs = exc
        return outputs, time.perf_counter() - t0

    def _admit(self, jobs: list[Job], pool: list[Row]) -> None:
        texts = [t for job in jobs for t in job.texts]
        t0 = time.perf_counter()
        try:
            encoded = self._tokenize(texts)
        except Exception as exc:  # a tokenizer bug must not kill the worker
            self._q.release(len(texts))  # before answering, so a retry finds the room
            for job in jobs:
                fail(job, InferenceFailed(f"tokenization failed: {exc}"))
            return
        seconds = time.perf_counter() - t0
        self._obs.tokenized(len(texts), sum(e.truncated for e in encoded), seconds)
        pos = 0
        for job in jobs:
            job.tokenize_s = seconds
            job.remaining = len(job.texts)
            chunk = encoded[pos : pos + len(job.texts)]
            pos += len(job.texts)
            job.truncated = [e.truncated for e in chunk]
            pool.extend(Row(job, i, e.ids) for i, e in enumerate(chunk))

    def _drop_dead(self, pool: list[Row]) -> None:
        now = time.monotonic()
        dead = {r.job for r in pool if r.job.abandoned or r.job.finished or r.job.deadline <= now}
        if not dead:
            return
        queued = sum(1 for r in pool if r.job in dead)
        pool[:] = [r for r in pool if r.job not in dead]
        # Only the rows still queued: rows of these jobs already running were released when
        # they were dispatched, and their outputs will be discarded.
        self._q.release(queued)
        for job in dead:
            if not job.abandoned and not job.finished:
                self._obs.rejected("deadline")
                fail(job, DeadlineExceeded("deadline passed while queued"))

    def _dispatch(self, batch: list[Row]) -> None:
        now = time.monotonic()
        for row in batch:
            if row.job.started is None:
                row.job.started = now
                self._obs.dequeued(now - row.job.enqueued)
        self._q.release(len(batch))

    def _complete(
        self, batch: list[Row], outputs: list[np.ndarray] | Exception, seconds: float
    ) -> None:
        """Scatter a run's output rows to their jobs; answer each job once it is whole."""
        if isinstance(outputs, Exception):
            exc = outputs
            self._obs.failed()
            for job in {r.job for r in batch}:
                fail(job, InferenceFailed(f"model run failed: {type(exc).__name__}: {exc}"))
            return
        self._last_batch = len(batch)
        self._obs.batch(len(batch), len(batch) * max(r.length for r in batch), seconds)
        touched: dict[Job, None] = {}
        for i, row in enumerate(batch):
            job = row.job
            if job.finished:
                continue
            if job.outputs is None:
                job.outputs = [
                    np.empty((len(job.texts), *o.shape[1:]), dtype=o.dtype) for o in outputs
                ]
            for k, out in enumerate(outputs):
                job.outputs[k][row.index] = out[i]
            job.remaining -= 1
            touched[job] = None
        answered: dict[asyncio.AbstractEventLoop, list[Answer]] = {}
        for job in touched:
            job.inference_s += seconds
            if job.remaining == 0:
                answered.setdefault(job.loop, []).append(self._succeed(job))
        # One wake-up of each event loop per run, not one per request answered.
        for loop, answers in answered.items():
            loop.call_soon_threadsafe(resolve_all, answers)

    def _succeed(self, job: Job) -> Answer:
        job.finished = True
        assert job.outputs is not None
        assert job.started is not None
        result = BatchResult(
            outputs=job.outputs,
            truncated=job.truncated,
            queue_s=job.started - job.enqueued,
            tokenize_s=job.tokenize_s,
            inference_s=job.inference_s,
        )
        self._obs.done(time.monotonic() - job.enqueued)
        return job.future, result, None
