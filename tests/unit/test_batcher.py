"""The dynamic batcher: exact rows per caller, limits, overload, deadlines, drain."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import numpy as np
import pytest

from app.errors import DeadlineExceeded, InferenceFailed, Overloaded, ShuttingDown
from app.runtime.batcher import BatchLimits, BatchResult, DynamicBatcher, best_window
from app.runtime.tokenizer import Encoded, IntArray


def word_tokenize(texts: list[str]) -> list[Encoded]:
    """Token ids are the words' lengths, so every text has a recognisable row."""
    return [
        Encoded(np.asarray([len(w) for w in t.split()], dtype=np.int64), truncated=False)
        for t in texts
    ]


class RecordingRunner:
    """Computes a row-wise function and records each batch it was given."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.rows: list[tuple[int, ...]] = []
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, rows: list[IntArray]) -> list[np.ndarray]:
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        with self.lock:
            self.batches.append([len(r) for r in rows])
            self.rows.extend(tuple(r.tolist()) for r in rows)
        feats = np.array([[r.sum(), len(r), r[0] if len(r) else -1] for r in rows], dtype=np.int64)
        return [feats, feats[:, :1] * 2]


def expected_rows(text: str) -> tuple[list[int], int]:
    ids = [len(w) for w in text.split()]
    return [sum(ids), len(ids), ids[0]], sum(ids) * 2


def random_text(rng: random.Random) -> str:
    words = ["a", "bb", "ccc", "dddd", "eeeee", "refund", "parcel", "delivery"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))


@pytest.mark.parametrize(("seed", "streams"), [(0, 1), (1, 1), (0, 2), (1, 3)])
def test_many_concurrent_callers_each_get_exactly_their_rows(seed: int, streams: int) -> None:
    rng = random.Random(seed)
    limits = BatchLimits(max_batch_size=16, max_batch_tokens=400, max_wait_s=0.002)
    runner = RecordingRunner()
    batcher = DynamicBatcher(word_tokenize, runner, limits, streams=streams)
    requests = [[random_text(rng) for _ in range(rng.randint(1, 12))] for _ in range(120)]

    async def main() -> list[list[np.ndarray]]:
        async def one(texts: list[str]) -> list[np.ndarray]:
            await asyncio.sleep(rng.random() * 0.01)
            return (await batcher.submit(texts, timeout_s=30)).outputs

        return await asyncio.gather(*(one(t) for t in requests))

    answers = asyncio.run(main())
    batcher.join(5)
    for texts, outputs in zip(requests, answers, strict=True):
        assert outputs[0].shape == (len(texts), 3)
        assert outputs[1].shape == (len(texts), 1)
        for i, text in enumerate(texts):
            feats, doubled = expected_rows(text)
            assert outputs[0][i].tolist() == feats
            assert int(outputs[1][i][0]) == doubled
    # Batching really happened, and every batch kept to the limits.
    assert len(runner.batches) < sum(len(t) for t in requests)
    for lengths in runner.batches:
        assert len(lengths) <= limits.max_batch_size
        if len(lengths) > 1:
            assert max(lengths) * len(lengths) <= limits.max_batch_tokens


def test_batches_group_queued_texts_by_length() -> None:
    """With a backlog, a batch takes texts of similar length rather than arrival order."""
    gate = threading.Event()
    runner = RecordingRunner(gate)
    batcher = DynamicBatcher(word_tokenize, runner, BatchLimits(max_batch_size=4, max_wait_s=0))
    lengths = [1, 40, 2, 41, 3, 42, 4, 43]

    async def main() -> None:
        blocker = asyncio.create_task(batcher.submit(["x"], 10))
        await asyncio.sleep(0.05)  # the worker is now blocked inside the gated run
        tasks = [asyncio.create_task(batcher.submit(["a " * n], 10)) for n in lengths]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(blocker, *tasks)

    asyncio.run(main())
    batcher.join(5)
    assert runner.batches[1:] == [[1, 2, 3, 4], [40, 41, 42, 43]]


def test_long_text_is_not_starved_by_a_stream_of_short_ones() -> None:
    limits = BatchLimits(max_batch_size=4, max_batch_tokens=64, max_wait_s=0.001)
    batcher = DynamicBatcher(word_tokenize, RecordingRunner(), limits)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        stop = loop.time() + 0.5

        async def short_stream() -> None:
            while loop.time() < stop:
                await batcher.submit(["a b"], 10)

        streams = [asyncio.create_task(short_stream()) for _ in range(8)]
        await asyncio.sleep(0.01)
        started = loop.time()
        await batcher.submit([" ".join(["long"] * 60)], 10)
        waited = loop.time() - started
        await asyncio.gather(*streams)
        return waited

    waited = asyncio.run(main())
    batcher.join(5)
    assert waited < 0.5, "the long text waited for the whole stream of short ones"


def test_full_queue_answers_overloaded_and_keeps_queued_work() -> None:
    gate = threading.Event()
    limits = BatchLimits(max_batch_size=2, max_queue_texts=4, max_wait_s=0)
    batcher = DynamicBatcher(word_tokenize, RecordingRunner(gate), limits)

    async def main() -> None:
        first = asyncio.create_task(batcher.submit(["a", "b"], 10))
        await asyncio.sleep(0.05)  # taken by the worker: no longer counted as queued
        queued = asyncio.create_task(batcher.submit(["c", "d", "e", "f"], 10))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await batcher.submit(["g"], 10)
        gate.set()
        assert len((await first).outputs[0]) == 2
        assert len((await queued).outputs[0]) == 4
        # Room again once the queue drained.
        assert len((await batcher.submit(["h"], 10)).outputs[0]) == 1

    asyncio.run(main())
    batcher.join(5)


def test_deadline_passed_while_queued_is_dropped_before_the_model() -> None:
    gate = threading.Event()
    runner = RecordingRunner(gate)
    batcher = DynamicBatcher(word_tokenize, runner, BatchLimits(max_batch_size=1, max_wait_s=0))

    async def main() -> None:
        blocker = asyncio.create_task(batcher.submit(["first"], 10))
        await asyncio.sleep(0.05)
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(["eleven letters here"], 0.05)
        gate.set()
        await blocker
        await batcher.submit(["after"], 10)

    asyncio.run(main())
    batcher.join(5)
    assert runner.rows == [(5,), (5,)], "the expired text reached the model"
    assert batcher.queued_texts == 0


def test_model_error_fails_only_that_batch() -> None:
    calls = {"n": 0}

    def flaky(rows: list[IntArray]) -> list[np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return [np.zeros((len(rows), 1))]

    batcher = DynamicBatcher(word_tokenize, flaky, BatchLimits(max_wait_s=0))

    async def main() -> None:
        with pytest.raises(InferenceFailed, match="boom"):
            await batcher.submit(["x"], 5)
        assert (await batcher.submit(["y"], 5)).outputs[0].shape == (1, 1)

    asyncio.run(main())
    batcher.join(5)


def test_shutdown_drains_queued_work_and_refuses_new() -> None:
    gate = threading.Event()
    batcher = DynamicBatcher(
        word_tokenize, RecordingRunner(gate), BatchLimits(max_batch_size=1, max_wait_s=0)
    )

    async def main() -> None:
        tasks = [asyncio.create_task(batcher.submit([f"t{i}"], 10)) for i in range(5)]
        await asyncio.sleep(0.05)
        batcher.close()
        with pytest.raises(ShuttingDown):
            await batcher.submit(["late"], 10)
        gate.set()
        loop = asyncio.get_running_loop()
        drained = await loop.run_in_executor(None, batcher.join, 5.0)
        assert drained
        results = await asyncio.gather(*tasks)
        assert all(r.outputs[0].shape == (1, 3) for r in results)

    asyncio.run(main())


def test_shutdown_past_grace_period_answers_what_is_left() -> None:
    gate = threading.Event()
    batcher = DynamicBatcher(
        word_tokenize, RecordingRunner(gate), BatchLimits(max_batch_size=1, max_wait_s=0)
    )

    async def main() -> None:
        tasks = [asyncio.create_task(batcher.submit([f"t{i}"], 10)) for i in range(3)]
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        join = loop.run_in_executor(None, batcher.join, 0.1)
        await asyncio.sleep(0.3)
        gate.set()
        assert await join is False
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        # Nothing hangs: each caller has an answer or a clear ShuttingDown.
        assert all(
            not isinstance(o, BaseException) or isinstance(o, ShuttingDown) for o in outcomes
        )
        assert any(isinstance(o, ShuttingDown) for o in outcomes)

    asyncio.run(main())


def test_tokenizer_failure_frees_the_queue() -> None:
    def broken_tokenize(texts: list[str]) -> list[Encoded]:
        if "bad" in texts:
            raise ValueError("cannot tokenize")
        return word_tokenize(texts)

    limits = BatchLimits(max_queue_texts=4, max_wait_s=0)
    batcher = DynamicBatcher(broken_tokenize, RecordingRunner(), limits)

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(InferenceFailed, match="tokenization failed"):
                await batcher.submit(["bad", "x", "y"], 5)
        assert batcher.queued_texts == 0
        assert (await batcher.submit(["a", "b", "c", "d"], 5)).outputs[0].shape == (4, 3)

    asyncio.run(main())
    batcher.join(5)


def test_a_request_that_fills_a_batch_runs_alone() -> None:
    gate = threading.Event()
    runner = RecordingRunner(gate)
    batcher = DynamicBatcher(word_tokenize, runner, BatchLimits(max_batch_size=4, max_wait_s=0))

    async def main() -> None:
        blocker = asyncio.create_task(batcher.submit(["x"], 10))
        await asyncio.sleep(0.05)
        big = asyncio.create_task(batcher.submit(["a b", "a b c", "a", "a b c d"], 10))
        await asyncio.sleep(0.01)
        small = asyncio.create_task(batcher.submit(["a b", "a"], 10))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(blocker, big, small)

    asyncio.run(main())
    batcher.join(5)
    assert [sorted(b) for b in runner.batches[1:]] == [[1, 2, 3, 4], [1, 2]]


# -- batch shaping ---------------------------------------------------------------------------
def _padded(lengths: list[int], lo: int, hi: int) -> int:
    return (hi - lo + 1) * lengths[hi]


def test_window_keeps_long_rows_out_of_a_run_of_short_ones() -> None:
    """Short texts are not padded to a long one: that is half the work of arrival batching."""
    lengths = sorted([8] * 10 + [60] * 2)
    lo, hi = best_window(lengths, 0, BatchLimits(max_batch_size=32, overhead_tokens=16))
    assert (lo, hi) == (0, 9)
    assert _padded(lengths, lo, hi) == 80  # not 12 * 60 = 720


def test_window_always_holds_the_anchor_so_long_rows_do_not_starve() -> None:
    lengths = sorted([8] * 10 + [60] * 2)
    lo, hi = best_window(lengths, 11, BatchLimits(max_batch_size=32, overhead_tokens=16))
    assert lo <= 11 <= hi
    assert (lo, hi) == (10, 11)


def test_a_large_fixed_cost_per_run_favours_full_batches() -> None:
    """On a GPU a run costs launches and copies whatever its size: padding is cheap there."""
    lengths = sorted([8] * 10 + [60] * 2)
    lo, hi = best_window(lengths, 0, BatchLimits(max_batch_size=32, overhead_tokens=5000))
    assert (lo, hi) == (0, 11)


@pytest.mark.parametrize("seed", range(5))
def test_window_respects_the_size_and_token_limits(seed: int) -> None:
    rng = random.Random(seed)
    lengths = sorted(rng.randint(1, 128) for _ in range(rng.randint(1, 200)))
    limits = BatchLimits(max_batch_size=16, max_batch_tokens=600, overhead_tokens=24)
    anchor = rng.randrange(len(lengths))
    lo, hi = best_window(lengths, anchor, limits)
    assert lo <= anchor <= hi
    assert hi - lo + 1 <= limits.max_batch_size
    # A lone row always runs, even one wider than the budget (the tokenizer caps its length).
    assert hi == lo or _padded(lengths, lo, hi) <= limits.max_batch_tokens


def test_a_request_that_fills_batches_alone_is_split_by_length() -> None:
    """A client batch of mixed lengths is not padded to its longest text in one run."""
    runner = RecordingRunner()
    limits = BatchLimits(max_batch_size=8, max_wait_s=0, overhead_tokens=2)
    batcher = DynamicBatcher(word_tokenize, runner, limits)
    texts = ["a " * 2] * 8 + ["a " * 40] * 2

    async def main() -> None:
        await batcher.submit(texts, 10)

    asyncio.run(main())
    batcher.join(5)
    assert sorted(runner.batches) == [[2] * 8, [40, 40]]


# -- several runs in flight ------------------------------------------------------------------
class ConcurrencyRunner(RecordingRunner):
    """Records how many runs were inside the model at once."""

    def __init__(self, hold_s: float) -> None:
        super().__init__()
        self.hold_s = hold_s
        self.inside = 0
        self.most_inside = 0

    def __call__(self, rows: list[IntArray]) -> list[np.ndarray]:
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            threading.Event().wait(self.hold_s)
            return super().__call__(rows)
        finally:
            with self.lock:
                self.inside -= 1


@pytest.mark.parametrize("streams", [1, 2])
def test_streams_bound_the_runs_in_flight(streams: int) -> None:
    """Two streams keep two runs going (each on its share of the cores), never more."""
    runner = ConcurrencyRunner(hold_s=0.02)
    limits = BatchLimits(max_batch_size=2, max_wait_s=0, overhead_tokens=1000)
    batcher = DynamicBatcher(word_tokenize, runner, limits, streams=streams)

    async def main() -> None:
        await asyncio.gather(*(batcher.submit([f"text {i}"], 10) for i in range(12)))

    asyncio.run(main())
    assert batcher.join(5)
    assert runner.most_inside == streams


def test_a_failing_run_on_a_stream_fails_only_its_callers() -> None:
    calls = {"n": 0}

    def flaky(rows: list[IntArray]) -> list[np.ndarray]:
        calls["n"] += 1
        if any(int(r[0]) == 7 for r in rows):
            raise RuntimeError("bad row")
        return RecordingRunner()(rows)

    limits = BatchLimits(max_batch_size=1, max_wait_s=0)
    batcher = DynamicBatcher(word_tokenize, flaky, limits, streams=2)

    async def main() -> list[object]:
        texts = ["aaaaaaa", "bb", "ccc", "dddd"]  # the first tokenizes to [7]
        return await asyncio.gather(
            *(batcher.submit([t], 10) for t in texts), return_exceptions=True
        )

    results = asyncio.run(main())
    assert batcher.join(5)
    assert isinstance(results[0], InferenceFailed)
    assert all(not isinstance(r, BaseException) for r in results[1:])


def test_drain_with_streams_answers_everything_queued() -> None:
    runner = ConcurrencyRunner(hold_s=0.01)
    limits = BatchLimits(max_batch_size=2, max_wait_s=0)
    batcher = DynamicBatcher(word_tokenize, runner, limits, streams=2)

    async def main() -> list[BatchResult]:
        tasks = [asyncio.create_task(batcher.submit([f"t {i}"], 10)) for i in range(20)]
        await asyncio.sleep(0)
        batcher.close()  # no new work, but everything queued still runs
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    assert batcher.join(5)
    assert len(results) == 20
    assert sum(len(b) for b in runner.batches) == 20


def test_a_lone_batch_runs_solo_and_a_backlog_on_the_streams() -> None:
    """Light load: the all-cores runner. Load: the single-thread streams, never solo."""
    solo_runner, stream_runner = RecordingRunner(), ConcurrencyRunner(hold_s=0.02)
    limits = BatchLimits(max_batch_size=2, max_wait_s=0, overhead_tokens=1000)
    batcher = DynamicBatcher(word_tokenize, stream_runner, limits, streams=2, run_solo=solo_runner)

    async def main() -> None:
        await batcher.submit(["one lone text"], 10)
        solo_before = len(solo_runner.batches)
        await asyncio.gather(*(batcher.submit([f"text {i}"], 10) for i in range(12)))
        assert solo_before == 1
        assert stream_runner.batches, "a backlog went to the streams"

    asyncio.run(main())
    assert batcher.join(5)
    assert stream_runner.most_inside == 2
    assert sum(len(b) for b in solo_runner.batches + stream_runner.batches) == 13


class ThreadRecordingRunner(RecordingRunner):
    """Also records which thread ran each batch, and can fail its first run."""

    def __init__(self, gate: threading.Event | None = None, fail_first: bool = False) -> None:
        super().__init__(gate)
        self.threads: list[int] = []
        self.entered = threading.Event()
        self.finished_at: list[float] = []
        self.started_at: list[float] = []
        self.fail_first = fail_first

    def __call__(self, rows: list[IntArray]) -> list[np.ndarray]:
        with self.lock:
            self.threads.append(threading.get_ident())
            self.started_at.append(time.monotonic())
        self.entered.set()
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("first run fails")
        try:
            return super().__call__(rows)
        finally:
            self.finished_at.append(time.monotonic())


def inline_batcher(
    solo: RecordingRunner, streams: RecordingRunner, max_wait_s: float = 0
) -> DynamicBatcher:
    limits = BatchLimits(max_batch_size=8, max_wait_s=max_wait_s, overhead_tokens=1000)
    return DynamicBatcher(
        word_tokenize, streams, limits, streams=2, run_solo=solo, inline_when_idle=True
    )


def test_a_lone_text_runs_inline_on_the_callers_thread() -> None:
    """At light load one text skips the queue: the caller's thread runs it on every core."""
    solo, streams = ThreadRecordingRunner(), ThreadRecordingRunner()
    batcher = inline_batcher(solo, streams)

    async def main() -> list[BatchResult]:
        return [await batcher.submit([text], 10) for text in ("where is my parcel", "hello")]

    results = asyncio.run(main())
    assert batcher.join(5)
    assert solo.threads == [threading.get_ident()] * 2
    assert streams.batches == []
    for text, result in zip(("where is my parcel", "hello"), results, strict=True):
        feats, doubled = expected_rows(text)
        assert result.outputs[0].tolist() == [feats]
        assert result.outputs[1].tolist() == [[doubled]]
        assert result.queue_s == 0.0


def test_a_burst_on_one_event_loop_is_batched_not_run_inline() -> None:
    """Requests parsed together must batch: run inline one by one they would run serially."""
    solo, streams = ThreadRecordingRunner(), ThreadRecordingRunner()
    batcher = inline_batcher(solo, streams, max_wait_s=0.005)
    texts = [f"text number {i}" for i in range(12)]

    async def main() -> list[BatchResult]:
        return await asyncio.gather(*(batcher.submit([t], 10) for t in texts))

    results = asyncio.run(main())
    assert batcher.join(5)
    assert threading.get_ident() not in solo.threads + streams.threads
    assert max(len(b) for b in solo.batches + streams.batches) > 1
    for text, result in zip(texts, results, strict=True):
        assert result.outputs[0].tolist() == [expected_rows(text)[0]]


def test_requests_of_several_texts_never_run_inline() -> None:
    solo, streams = ThreadRecordingRunner(), ThreadRecordingRunner()
    batcher = inline_batcher(solo, streams)
    result = asyncio.run(batcher.submit(["a b", "ccc"], 10))
    assert batcher.join(5)
    assert threading.get_ident() not in solo.threads + streams.threads
    assert [r.tolist() for r in result.outputs[0]] == [expected_rows("a b")[0], [3, 1, 3]]


def test_an_inline_run_holds_every_stream_until_it_is_done() -> None:
    """Work from elsewhere waits for the inline run rather than sharing its cores."""
    gate = threading.Event()
    solo, streams = ThreadRecordingRunner(gate), ThreadRecordingRunner()
    batcher = inline_batcher(solo, streams)
    results: dict[str, BatchResult] = {}

    def submit(key: str, texts: list[str]) -> None:
        results[key] = asyncio.run(batcher.submit(texts, 10))

    lone = threading.Thread(target=submit, args=("lone", ["held on every core"]))
    lone.start()
    assert solo.entered.wait(5)
    other = threading.Thread(target=submit, args=("other", ["a b", "c d"]))
    other.start()
    time.sleep(0.1)
    assert streams.batches == [], "a stream ran while the inline run held the cores"
    gate.set()
    lone.join(5)
    other.join(5)
    assert batcher.join(5)
    assert solo.threads[0] == lone.ident
    assert streams.started_at and streams.started_at[0] >= solo.finished_at[0]
    assert results["other"].outputs[0].tolist() == [[2, 2, 1], [2, 2, 1]]


def test_an_inline_failure_is_answered_and_the_next_request_runs() -> None:
    solo, streams = ThreadRecordingRunner(fail_first=True), ThreadRecordingRunner()
    batcher = inline_batcher(solo, streams)

    async def main() -> BatchResult:
        with pytest.raises(InferenceFailed, match="first run fails"):
            await batcher.submit(["broken"], 10)
        return await batcher.submit(["fine now"], 10)

    result = asyncio.run(main())
    assert batcher.join(5)
    assert result.outputs[0].tolist() == [expected_rows("fine now")[0]]
    assert len(solo.threads) == 2


def test_a_close_during_an_inline_run_drains_as_soon_as_it_ends() -> None:
    """Closing waits for the inline run, then finishes at once rather than at the timeout."""
    gate = threading.Event()
    solo, streams = ThreadRecordingRunner(gate), ThreadRecordingRunner()
    batcher = inline_batcher(solo, streams)
    results: list[BatchResult] = []
    lone = threading.Thread(
        target=lambda: results.append(asyncio.run(batcher.submit(["held"], 10)))
    )
    lone.start()
    assert solo.entered.wait(5)
    batcher.close()
    threading.Timer(0.1, gate.set).start()
    t0 = time.monotonic()
    assert batcher.join(5)
    assert time.monotonic() - t0 < 2.0
    lone.join(5)
    assert results[0].outputs[0].tolist() == [expected_rows("held")[0]]
