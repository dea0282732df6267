"""Dynamic batcher: gathers concurrent requests into length-grouped model runs.

One worker thread owns the queue, the tokenizer calls and the model runs, so the event loop
only enqueues and awaits. Scheduling, per pass:

1. new arrivals are tokenized together (one ``encode_batch`` call) and become *rows*;
2. rows of requests whose deadline passed (or whose caller gave up) are dropped unrun;
3. while fewer than ``max_batch_size`` rows wait, the oldest row waits at most ``max_wait``;
4. a run is anchored on the oldest row (so no row starves) and takes a window of the rows
   around it in length order, across *everything* queued: the window that does the most useful
   (unpadded) work per unit of cost, within ``max_batch_size`` texts and ``max_batch_tokens``
   padded tokens (``best_window``). A random mix of 32 queued texts padded to the longest
   costs about twice the work of the same texts in length-sorted runs;
5. outputs are scattered back; a request resolves when its last row is done.

The pieces: ``batch_jobs`` (limits, jobs, rows, answers), ``batch_queue`` (shared state and
admission), ``batch_shaping`` (which rows run together), ``batch_scheduler`` (the scheduling
thread and its run modes) and ``batch_inline`` (a lone request run on its caller's thread).
This module is the caller's side, on the event loop.
"""

from __future__ import annotations

import asyncio
import time

from app.errors import DeadlineExceeded
from app.runtime.batch_inline import run_inline
from app.runtime.batch_jobs import (
    BatchLimits,
    BatchObserver,
    BatchResult,
    Job,
    RunFn,
    TokenizeFn,
    expire,
)
from app.runtime.batch_queue import BatchQueue
from app.runtime.batch_scheduler import Scheduler
from app.runtime.batch_shaping import best_window


class DynamicBatcher:
    """Runs ``run_fn`` over batches of tokenized rows gathered from concurrent ``submit`` calls."""

    def __init__(
        self,
        tokenize: TokenizeFn,
        run: RunFn,
        limits: BatchLimits,
        observer: BatchObserver | None = None,
        name: str = "batcher",
        streams: int = 1,
        run_solo: RunFn | None = None,
        inline_when_idle: bool = False,
    ) -> None:
        """``streams``: model runs in flight at once. With one, the scheduling thread runs
        each batch itself; with more, that many runner threads take batches from it while it
        tokenizes and shapes the next ones (each run then gets its share of the cores).
        ``run_solo``: runs a batch on all the cores, used instead of ``run`` when that batch is
        everything queued and nothing else runs: a lone caller is not left on one core.
        ``inline_when_idle`` (needs ``run_solo``): a one-text request that finds nothing queued
        and nothing running is run by the caller's thread (the event loop) on ``run_solo``,
        without the two thread hand-offs of the queue (see ``batch_inline``)."""
        self._tokenize = tokenize
        self._run_solo = run_solo
        self._inline = inline_when_idle and run_solo is not None
        self._arriving = 0  # inline candidates between their yield and their decision
        self._obs = observer or BatchObserver()
        self._q = BatchQueue(limits, self._obs, streams)
        self._scheduler = Scheduler(self._q, tokenize, run, run_solo, self._obs, name)

    @property
    def limits(self) -> BatchLimits:
        return self._q.limits

    @limits.setter
    def limits(self, limits: BatchLimits) -> None:
        # Read by the scheduler at each pass: calibration at warm-up reshapes what follows.
        self._q.limits = limits

    @property
    def queued_texts(self) -> int:
        return self._q.queued_texts

    async def submit(self, texts: list[str], timeout_s: float) -> BatchResult:
        """Queue ``texts``; answer their output rows, or raise Overloaded / DeadlineExceeded."""
        if self._inline and len(texts) == 1 and self._q.looks_idle():
            # Let every request this event loop is about to hand over get here first: those
            # parsed in the same pass are tasks ready to run, and a burst must batch, not
            # run inline one after another while the loop is blocked by each run in turn.
            self._arriving += 1
            try:
                await asyncio.sleep(0)
            finally:
                self._arriving -= 1
            if not self._arriving:
                assert self._run_solo is not None
                inline = run_inline(self._q, self._tokenize, self._run_solo, self._obs, texts)
                if inline is not None:
                    return inline
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        job = Job(texts, now + timeout_s, now, loop, loop.create_future())
        self._q.admit(job)
        # A timer on the loop instead of asyncio.wait_for: same effect, without the extra
        # waiter future and callbacks per request (this is the hot path of every request).
        timer = loop.call_later(timeout_s, expire, job.future, timeout_s)
        try:
            return await job.future
        except DeadlineExceeded:
            if not job.finished:  # our timer fired, not the worker's deadline drop
                job.abandoned = True
                self._obs.rejected("deadline")
            raise
        except asyncio.CancelledError:
            # The client went away: its rows are dropped before they reach the model.
            job.abandoned = True
            raise
        finally:
            timer.cancel()

    def close(self) -> None:
        """Take no new work; queued work still runs."""
        self._q.close()

    def join(self, timeout_s: float) -> bool:
        """Wait for queued work to finish; answer ShuttingDown to whatever is left after that."""
        self.close()
        thread = self._scheduler.thread
        thread.join(timeout_s)
        if not thread.is_alive():
            return True
        # Still running past the grace period: fail what has not been answered.
        self._q.abort_waiting()
        thread.join(1.0)
        return False


__all__ = ["BatchLimits", "BatchObserver", "BatchResult", "DynamicBatcher", "best_window"]
