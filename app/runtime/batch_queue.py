"""The batcher's shared state and its admission: what waits, what came back, free streams.

Callers (on event loops), the scheduler thread and the runner threads meet here, under one
condition variable. Admission refuses work up front, on the caller's side: after ``close``
(``ShuttingDown``) and past ``max_queue_texts`` texts waiting (``Overloaded``), so that a
full queue answers at once instead of growing every caller's wait.
"""

from __future__ import annotations

import threading

from app.errors import Overloaded, ShuttingDown
from app.runtime.batch_jobs import BatchLimits, BatchObserver, Completion, Job, fail


class BatchQueue:
    """Jobs not yet taken in, batches run and not yet scattered, and the streams' accounting.

    Every attribute is read and written holding ``cond`` (``looks_idle`` excepted).
    ``idle`` counts the streams (model runs that may be in flight) that are free: the
    scheduler reserves one per run, an inline run (``batch_inline``) claims them all.
    """

    def __init__(self, limits: BatchLimits, observer: BatchObserver, streams: int) -> None:
        self.limits = limits
        self.cond = threading.Condition()
        self.incoming: list[Job] = []
        self.done: list[Completion] = []
        self.queued_texts = 0
        self.closed = False
        self.abort = False  # past the drain's grace period: stop now
        self.streams = max(1, streams)
        self.idle = self.streams
        self._obs = observer

    # -- admission (caller side) -----------------------------------------------------------
    def admit(self, job: Job) -> None:
        """Queue ``job``, or refuse it: ``ShuttingDown`` once closed, ``Overloaded`` when full."""
        with self.cond:
            if self.closed:
                self._obs.rejected("shutting_down")
                raise ShuttingDown("the service is shutting down")
            if self.queued_texts + len(job.texts) > self.limits.max_queue_texts:
                self._obs.rejected("queue_full")
                raise Overloaded(
                    f"queue full ({self.queued_texts} texts waiting, "
                    f"limit {self.limits.max_queue_texts})"
                )
            self.incoming.append(job)
            self.queued_texts += len(job.texts)
            # The depth gauge is set by the scheduler when it takes arrivals in: not here,
            # where its lock would be taken on the event loop once per request.
            self.cond.notify()

    def release(self, n: int) -> None:
        """``n`` queued texts left the queue (dispatched to a run, or dropped)."""
        with self.cond:
            self.queued_texts -= n
            self._obs.queued(self.queued_texts)

    def close(self) -> None:
        """Take no new work; queued work still runs."""
        with self.cond:
            self.closed = True
            self.cond.notify()

    def abort_waiting(self) -> None:
        """Stop the scheduler now, answering ``ShuttingDown`` to jobs not yet taken in."""
        with self.cond:
            self.abort = True
            for job in self.incoming:
                fail(job, ShuttingDown("the service shut down before this ran"))
            self.incoming.clear()
            self.cond.notify()

    # -- streams ---------------------------------------------------------------------------
    def looks_idle(self) -> bool:
        """A lock-free first look (``claim_every_stream`` checks again under the lock)."""
        return not self.incoming and not self.queued_texts and self.idle == self.streams

    def claim_every_stream(self) -> bool:
        """Take every stream if nothing is queued or running; False (nothing taken) if busy."""
        with self.cond:
            if self.closed or self.incoming or self.queued_texts or self.idle != self.streams:
                return False
            self.idle = 0  # every stream is taken until free_every_stream
            return True

    def free_every_stream(self) -> None:
        with self.cond:
            self.idle = self.streams
            # Rows may have queued meanwhile (from another event loop), or a close may be
            # waiting for every stream to be free: the scheduler sleeps until this moment.
            if self.incoming or self.done or self.queued_texts or self.closed:
                self.cond.notify()
