"""Closed-loop throughput from a load run: the steady state between first and last answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.loadgen import LoadResult, wrk_result


def thread(answers_us: list[float], statuses: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "latencies_us": [300_000.0] * len(answers_us),
        "statuses": statuses or {"200": len(answers_us)},
        "served_ms": {"n": 0},
        "answered_us": {"first": answers_us[0], "last": answers_us[-1]} if answers_us else {},
    }


def report(*threads: dict[str, Any], duration_s: float = 2.0) -> dict[str, Any]:
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    return {"duration_us": duration_s * 1e6, "errors": errors, "threads": list(threads)}


def test_a_loop_cut_after_two_seconds_is_not_charged_for_its_ends() -> None:
    # One connection, each answer 0.15 s after the last: 6.67 requests/s in steady state. Cut
    # after 2 s, 13 answers came (the 14th was in flight): counted over the whole run, that
    # reads 6.5/s.
    answers = [150_000.0 * k for k in range(1, 14)]
    result = wrk_result(report(thread(answers)), concurrency=1, client_cpu_s=0.1)
    assert result.ok == 13
    assert result.ok / result.elapsed_s == 6.5
    assert abs(result.steady_rate - 1 / 0.15) < 1e-9


def test_threads_pool_their_answers_and_errors_count_apart() -> None:
    a = thread([1e6 + 1e5 * k for k in range(8)])  # 1.0 to 1.7 s
    b = thread([1.2e6 + 1e5 * k for k in range(5)] + [2.5e6], statuses={"200": 6, "429": 3})
    result = wrk_result(report(a, b, duration_s=3.0), concurrency=2, client_cpu_s=0.0)
    assert (result.ok, result.errors) == (14, {"429": 3})
    # 13 answers after the first one, over 1.5 s from the first (1.0 s) to the last (2.5 s).
    assert result.steady_rate == 13 / 1.5


def test_with_too_few_answers_the_rate_is_the_plain_count() -> None:
    none = wrk_result(report(thread([])), concurrency=1, client_cpu_s=0.0)
    assert none.steady_rate == 0.0
    plain = LoadResult("httpx", 4, elapsed_s=2.0, ok=7, latencies_s=[], errors={}, client_cpu_s=0)
    assert plain.steady_rate == 3.5
    # Three answers bunched at the end of 2 s (a server queueing seconds deep): their span
    # says nothing about the rate, the count over the run does.
    few = wrk_result(report(thread([1.9e6, 1.95e6, 2.0e6])), concurrency=64, client_cpu_s=0.0)
    assert few.steady_rate == 1.5
