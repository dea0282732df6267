"""What the batcher passes around: its limits, a caller's job, a queued row, the answer.

A job is one ``submit`` call; each of its texts becomes a row once tokenized. Answers are
handed to the caller's event loop (``resolve``), the only place a job's future is completed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.errors import DeadlineExceeded, TextserveError
from app.runtime.tokenizer import Encoded, IntArray

# What a batcher is given: texts -> unpadded token rows, and rows -> the model's outputs.
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
class Job:
    """One caller's request: its texts, its deadline and where its answer goes."""

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
class Row:
    """One tokenized text of a job, waiting in the scheduler's pool."""

    job: Job
    index: int
    ids: IntArray

    @property
    def length(self) -> int:
        return len(self.ids)


Answer = tuple["asyncio.Future[BatchResult]", BatchResult | None, Exception | None]
# A batch run by a runner thread: its rows, the outputs (or what the run raised), seconds.
Completion = tuple[list[Row], list[np.ndarray] | Exception, float]


def fail(job: Job, error: TextserveError) -> None:
    """Answer ``job`` with ``error`` on its event loop, unless it was answered already."""
    if job.finished:
        return
    job.finished = True
    job.loop.call_soon_threadsafe(resolve, job.future, None, error)


def resolve_all(answers: list[Answer]) -> None:
    for future, result, error in answers:
        resolve(future, result, error)


def expire(future: asyncio.Future[BatchResult], timeout_s: float) -> None:
    if not future.done():
        future.set_exception(DeadlineExceeded(f"no answer within {timeout_s * 1000:.0f} ms"))


def resolve(
    future: asyncio.Future[BatchResult], result: BatchResult | None, error: Exception | None
) -> None:
    if future.done():  # the caller timed out or was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)
