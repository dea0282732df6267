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
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.errors import DeadlineExceeded, InferenceFailed, Overloaded, ShuttingDown, TextserveError
from app.runtime.threadname import name_this_thread
from app.runtime.tokenizer import Encoded, IntArray

TokenizeFn = Callable[[list[str]], list[Encoded]]
RunFn = Callable[[list[IntArray]], list[np.ndarray]]


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int = 32
    max_batch_tokens: int = 8192
    max_wait_s: float = 0.002
    max_queue_texts: int = 1024
    # The fixed cost of one model run, in padded tokens' worth of compute (see best_window).
    overhead_tokens: float = 16.0


@dataclass
class BatchResult:
    """Rows of every model output for one request, in the request's order."""

    outputs: list[np.ndarray]
    truncated: list[bool]
    queue_s: float
    tokenize_s: float
    inference_s: float


class BatchObserver:
    """Hooks for metrics; the default records nothing."""

    def batch(self, texts: int, tokens: int, seconds: float) -> None: ...
    def tokenized(self, texts: int, truncated: int, seconds: float) -> None: ...
    def queued(self, depth: int) -> None: ...
    def dequeued(self, wait_s: float) -> None: ...
    def done(self, seconds: float) -> None: ...
    def rejected(self, reason: str) -> None: ...
    def failed(self) -> None: ...


@dataclass(eq=False)
class _Job:
    texts: list[str]
    deadline: float
    enqueued: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[BatchResult]
    abandoned: bool = False  # set by the caller's side when it stops waiting
    finished: bool = False  # set by the worker once answered
    remaining: int = 0
    outputs: list[np.ndarray] | None = None
    truncated: list[bool] = field(default_factory=list)
    started: float | None = None
    tokenize_s: float = 0.0
    inference_s: float = 0.0


@dataclass(eq=False)
class _Row:
    job: _Job
    index: int
    ids: IntArray

    @property
    def length(self) -> int:
        return len(self.ids)


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
        without the two thread hand-offs of the queue (see ``_try_inline``)."""
        self._tokenize = tokenize
        self._run_fn = run
        self._run_solo = run_solo
        self._inline = inline_when_idle and run_solo is not None
        self._arriving = 0  # inline candidates between their yield and their decision
        self.limits = limits
        self._obs = observer or BatchObserver()
        self._cond = threading.Condition()
        self._incoming: list[_Job] = []
        self._done: list[_Completion] = []
        self._queued_texts = 0
        self._closed = False
        self._streams = max(1, streams)
        self._idle = self._streams
        self._tasks: queue.SimpleQueue[list[_Row] | None] = queue.SimpleQueue()
        self._runners = [
            threading.Thread(target=self._runner, name=f"{name}-run-{i}", daemon=True)
            for i in range(self._streams if self._streams > 1 else 0)
        ]
        for runner in self._runners:
            runner.start()
        self._thread = threading.Thread(target=self._worker, name=name, daemon=True)
        self._thread.start()

    # -- caller side (event loop) ----------------------------------------------------------
    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    async def submit(self, texts: list[str], timeout_s: float) -> BatchResult:
        """Queue ``texts``; answer their output rows, or raise Overloaded / DeadlineExceeded."""
        if self._inline and len(texts) == 1 and self._looks_idle():
            # Let every request this event loop is about to hand over get here first: those
            # parsed in the same pass are tasks ready to run, and a burst must batch, not
            # run inline one after another while the loop is blocked by each run in turn.
            self._arriving += 1
            try:
                await asyncio.sleep(0)
            finally:
                self._arriving -= 1
            if not self._arriving:
                inline = self._try_inline(texts)
                if inline is not None:
                    return inline
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        job = _Job(texts, now + timeout_s, now, loop, loop.create_future())
        with self._cond:
            if self._closed:
                self._obs.rejected("shutting_down")
                raise ShuttingDown("the service is shutting down")
            if self._queued_texts + len(texts) > self.limits.max_queue_texts:
                self._obs.rejected("queue_full")
                raise Overloaded(
                    f"queue full ({self._queued_texts} texts waiting, "
                    f"limit {self.limits.max_queue_texts})"
                )
            self._incoming.append(job)
            self._queued_texts += len(texts)
            # The depth gauge is set by the worker when it takes arrivals in: not here, where
            # its lock would be taken on the event loop once per request.
            self._cond.notify()
        # A timer on the loop instead of asyncio.wait_for: same effect, without the extra
        # waiter future and callbacks per request (this is the hot path of every request).
        timer = loop.call_later(timeout_s, _expire, job.future, timeout_s)
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

    def _looks_idle(self) -> bool:
        """A lock-free first look (``_try_inline`` checks again under the lock)."""
        return not self._incoming and not self._queued_texts and self._idle == self._streams

    def _try_inline(self, texts: list[str]) -> BatchResult | None:
        """Run a lone one-text request right here, if nothing is queued or running.

        At light load the queue's two thread hand-offs (event loop to scheduler, scheduler back
        to the loop, each a wake-up of a sleeping thread) cost a lone caller about a
        millisecond on a small VM, as much as a third of a short text's model run. When the
        batcher is idle there is nothing to batch with, so the caller's own thread runs the
        text on the all-cores session instead. It claims every stream first, so the scheduler
        starts no run on the same cores meanwhile; whatever arrives in the meantime waits
        (in the socket, as the event loop is busy) for at most this one run, then batches.
        Answers ``None`` when the batcher is busy: the request then queues as usual.
        """
        assert self._run_solo is not None
        with self._cond:
            if self._closed or self._incoming or self._queued_texts or self._idle != self._streams:
                return None
            self._idle = 0  # every stream is taken until this run is done
        try:
            t0 = time.perf_counter()
            try:
                encoded = self._tokenize(texts)
            except Exception as exc:
                raise InferenceFailed(f"tokenization failed: {exc}") from exc
            t1 = time.perf_counter()
            self._obs.tokenized(1, int(encoded[0].truncated), t1 - t0)
            self._obs.dequeued(0.0)
            try:
                outputs = self._run_solo([encoded[0].ids])
            except Exception as exc:
                self._obs.failed()
                raise InferenceFailed(f"model run failed: {type(exc).__name__}: {exc}") from exc
            t2 = time.perf_counter()
            self._obs.batch(1, len(encoded[0].ids), t2 - t1)
            self._obs.done(t2 - t0)
            return BatchResult(
                outputs=outputs,
                truncated=[encoded[0].truncated],
                queue_s=0.0,
                tokenize_s=t1 - t0,
                inference_s=t2 - t1,
            )
        finally:
            with self._cond:
                self._idle = self._streams
                # Rows may have queued meanwhile (from another event loop), or a close may be
                # waiting for every stream to be free: the scheduler sleeps until this moment.
                if self._incoming or self._done or self._queued_texts or self._closed:
                    self._cond.notify()

    def close(self) -> None:
        """Take no new work; queued work still runs."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def join(self, timeout_s: float) -> bool:
        """Wait for queued work to finish; answer ShuttingDown to whatever is left after that."""
        self.close()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            return True
        with self._cond:
            # Still running past the grace period: fail what has not been answered.
            self._abort = True
            for job in self._incoming:
                self._fail(job, ShuttingDown("the service shut down before this ran"))
            self._incoming.clear()
            self._cond.notify()
        self._thread.join(1.0)
        return False

    # -- worker side -----------------------------------------------------------------------
    _abort = False
    _last_batch = 0

    def _worker(self) -> None:
        """The scheduler: admits arrivals, drops the dead, shapes batches, scatters results.

        Every job's state is touched on this thread only; runner threads (``streams > 1``)
        just run the batches they are given and hand the outputs back.
        """
        name_this_thread("ts-scheduler")
        pool: list[_Row] = []
        while True:
            with self._cond:
                while not self._has_work(pool):
                    self._cond.wait()
                if self._abort or (
                    self._closed
                    and not self._incoming
                    and not self._done
                    and not pool
                    and self._idle == self._streams
                ):
                    break
                new, self._incoming = self._incoming, []
                done, self._done = self._done, []
                depth = self._queued_texts
            for completion in done:
                self._complete(*completion)
            if new:
                self._obs.queued(depth)
                self._admit(new, pool)
            self._drop_dead(pool)
            if not pool or not self._idle:
                continue
            # Waiting to fill a batch only pays under load: a lone caller (the last run held
            # one row) goes straight to the model instead of idling for max_wait.
            under_load = self._last_batch > 1 or len(pool) > 1
            if under_load and len(pool) < self.limits.max_batch_size and not self._closed:
                wait_left = pool[0].job.enqueued + self.limits.max_wait_s - time.monotonic()
                if wait_left > 0:
                    with self._cond:
                        self._cond.wait_for(
                            lambda: bool(self._incoming or self._done), timeout=wait_left
                        )
                    continue
            # A stream is reserved before the batch is taken out of the pool: an inline run
            # (_try_inline) may have claimed every stream since the look above.
            with self._cond:
                if not self._idle:
                    continue
                all_idle = self._idle == self._streams
                self._idle -= 1
            batch = self._select(pool)
            self._dispatch(batch)
            if self._streams == 1:
                outcome = self._run(batch, self._run_fn)
                with self._cond:
                    self._idle += 1
                self._complete(batch, *outcome)
            elif self._run_solo is not None and len(batch) == 1 and not pool and all_idle:
                # Light load: one text, and nothing else queued or running. Run it here, on
                # every core (the other streams are taken too: nobody else takes a stream
                # while any is reserved); what arrives meanwhile waits in `incoming` for the
                # next pass. Larger batches keep to the streams, so that this thread stays
                # free to feed the other stream as more arrives.
                with self._cond:
                    self._idle -= self._streams - 1
                outcome = self._run(batch, self._run_solo)
                with self._cond:
                    self._idle += self._streams
                self._complete(batch, *outcome)
            else:
                self._tasks.put(batch)  # the reserved stream's runner gives it back
        for _ in self._runners:
            self._tasks.put(None)
        for row in pool:
            self._fail(row.job, ShuttingDown("the service shut down before this ran"))

    def _has_work(self, pool: list[_Row]) -> bool:
        """Whether the scheduler has something to do (called holding the condition)."""
        if self._abort or self._incoming or self._done:
            return True
        if pool:
            return self._idle > 0  # else: wait for a run to finish
        # Nothing queued: only shutting down, once every run in flight is back, remains.
        return self._closed and self._idle == self._streams

    def _runner(self) -> None:
        name_this_thread("ts-run")
        while (batch := self._tasks.get()) is not None:
            outcome = self._run(batch, self._run_fn)
            with self._cond:
                self._done.append((batch, *outcome))
                self._idle += 1
                self._cond.notify()

    def _run(self, batch: list[_Row], fn: RunFn) -> tuple[list[np.ndarray] | Exception, float]:
        t0 = time.perf_counter()
        try:
            outputs: list[np.ndarray] | Exception = fn([r.ids for r in batch])
        except Exception as exc:  # answered per job by _complete; the thread lives on
            outputs = exc
        return outputs, time.perf_counter() - t0

    def _admit(self, jobs: list[_Job], pool: list[_Row]) -> None:
        texts = [t for job in jobs for t in job.texts]
        t0 = time.perf_counter()
        try:
            encoded = self._tokenize(texts)
        except Exception as exc:  # a tokenizer bug must not kill the worker
            self._release(len(texts))  # before answering, so a retry finds the room
            for job in jobs:
                self._fail(job, InferenceFailed(f"tokenization failed: {exc}"))
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
            pool.extend(_Row(job, i, e.ids) for i, e in enumerate(chunk))

    def _drop_dead(self, pool: list[_Row]) -> None:
        now = time.monotonic()
        dead = {r.job for r in pool if r.job.abandoned or r.job.finished or r.job.deadline <= now}
        if not dead:
            return
        queued = sum(1 for r in pool if r.job in dead)
        pool[:] = [r for r in pool if r.job not in dead]
        # Only the rows still queued: rows of these jobs already running were released when
        # they were dispatched, and their outputs will be discarded.
        self._release(queued)
        for job in dead:
            if not job.abandoned and not job.finished:
                self._obs.rejected("deadline")
                self._fail(job, DeadlineExceeded("deadline passed while queued"))

    def _select(self, pool: list[_Row]) -> list[_Row]:
        """Anchor on the oldest row; add the rows nearest in length within the limits."""
        limits = self.limits
        anchor_job = pool[0].job
        own = [i for i, r in enumerate(pool) if r.job is anchor_job]
        if len(own) >= limits.max_batch_size:
            # A request that fills a batch by itself runs alone: mixing it with others would
            # spread its rows over more runs and multiply its latency. Its own rows are still
            # shaped by length: successive passes take windows from its shortest row upwards.
            own.sort(key=lambda i: pool[i].length)
            lo, hi = best_window([pool[i].length for i in own], 0, limits)
            taken = set(own[lo : hi + 1])
            batch = [pool[i] for i in sorted(taken)]
            pool[:] = [r for i, r in enumerate(pool) if i not in taken]
            return batch
        order = sorted(range(len(pool)), key=lambda i: pool[i].length)
        lengths = [pool[i].length for i in order]
        lo, hi = best_window(lengths, order.index(0), limits)
        picked = set(order[lo : hi + 1])
        # The anchor first, then the rest in queue order: the batch's row order is irrelevant
        # to the model, but keeping it stable makes runs reproducible.
        batch = [pool[i] for i in sorted(picked)]
        pool[:] = [r for i, r in enumerate(pool) if i not in picked]
        return batch

    def _dispatch(self, batch: list[_Row]) -> None:
        now = time.monotonic()
        for row in batch:
            if row.job.started is None:
                row.job.started = now
                self._obs.dequeued(now - row.job.enqueued)
        self._release(len(batch))

    def _complete(
        self, batch: list[_Row], outputs: list[np.ndarray] | Exception, seconds: float
    ) -> None:
        if isinstance(outputs, Exception):
            exc = outputs
            self._obs.failed()
            for job in {r.job for r in batch}:
                self._fail(job, InferenceFailed(f"model run failed: {type(exc).__name__}: {exc}"))
            return
        self._last_batch = len(batch)
        self._obs.batch(len(batch), len(batch) * max(r.length for r in batch), seconds)
        touched: dict[_Job, None] = {}
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
        answered: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        for job in touched:
            job.inference_s += seconds
            if job.remaining == 0:
                answered.setdefault(job.loop, []).append(self._succeed(job))
        # One wake-up of each event loop per run, not one per request answered.
        for loop, answers in answered.items():
            loop.call_soon_threadsafe(_resolve_all, answers)

    def _release(self, n: int) -> None:
        with self._cond:
            self._queued_texts -= n
            self._obs.queued(self._queued_texts)

    def _succeed(self, job: _Job) -> _Answer:
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

    def _fail(self, job: _Job, error: TextserveError) -> None:
        if job.finished:
            return
        job.finished = True
        job.loop.call_soon_threadsafe(_resolve, job.future, None, error)


def best_window(lengths: list[int], anchor: int, limits: BatchLimits) -> tuple[int, int]:
    """The run to make next: a window ``[lo, hi]`` of the length-sorted rows holding ``anchor``.

    Chosen to maximise useful tokens per unit of cost, where a run of ``n`` rows padded to
    width ``w`` costs ``overhead_tokens + n * w``. Taking every queued row (what arrival-order
    batchers do) pads short texts to the longest one; taking one row at a time pays the fixed
    per-run cost each time. Between the two, the best window depends on the spread of lengths
    queued and on how large the fixed cost is on this hardware (``overhead_tokens``, measured
    at warm-up: small on a CPU, large on a GPU, where it pushes towards full batches).
    """
    prefix = [0]
    for n in lengths:
        prefix.append(prefix[-1] + n)
    size, budget = limits.max_batch_size, limits.max_batch_tokens
    best, best_lo, best_hi = -1.0, anchor, anchor
    for hi in range(anchor, min(len(lengths), anchor + size)):
        width = lengths[hi]
        most = min(size, max(1, budget // max(width, 1)))
        if hi - anchor + 1 > most:
            break  # wider windows only get longer from here
        for lo in range(anchor, max(-1, hi - most), -1):
            rows = hi - lo + 1
            gain = (prefix[hi + 1] - prefix[lo]) / (limits.overhead_tokens + rows * width)
            # Ties go to the larger batch: same efficiency, fewer runs.
            if gain > best or (gain == best and rows > best_hi - best_lo + 1):
                best, best_lo, best_hi = gain, lo, hi
    return best_lo, best_hi


_Answer = tuple["asyncio.Future[BatchResult]", BatchResult | None, Exception | None]
# A batch run by a runner thread: its rows, the outputs (or what the run raised), seconds.
_Completion = tuple[list[_Row], list[np.ndarray] | Exception, float]


def _resolve_all(answers: list[_Answer]) -> None:
    for future, result, error in answers:
        _resolve(future, result, error)


def _expire(future: asyncio.Future[BatchResult], timeout_s: float) -> None:
    if not future.done():
        future.set_exception(DeadlineExceeded(f"no answer within {timeout_s * 1000:.0f} ms"))


def _resolve(
    future: asyncio.Future[BatchResult], result: BatchResult | None, error: Exception | None
) -> None:
    if future.done():  # the caller timed out or was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


__all__ = ["BatchLimits", "BatchObserver", "BatchResult", "DynamicBatcher", "best_window"]
