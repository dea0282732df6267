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
    # One connection, each answer 0.3 s after the last: 3.33 requests/s in steady state. Cut
    # after 2 s, six answers came (the seventh was in flight): counted over the whole run,
    # that reads 3.0/s.
    answers = [300_000.0 * k for k in range(1, 7)]
    result = wrk_result(report(thread(answers)), concurrency=1, client_cpu_s=0.1)
    assert result.ok == 6
    assert result.ok / result.elapsed_s == 3.0
    assert abs(result.steady_rate - 1 / 0.3) < 1e-9


def test_threads_pool_their_answers_and_errors_count_apart() -> None:
    a = thread([1_000_000.0, 1_500_000.0, 2_000_000.0])
    b = thread([1_200_000.0, 2_500_000.0], statuses={"200": 2, "429": 3})
    result = wrk_result(report(a, b, duration_s=3.0), concurrency=2, client_cpu_s=0.0)
    assert (result.ok, result.errors) == (5, {"429": 3})
    # Four answers after the first one, over 1.5 s from the first (1.0 s) to the last (2.5 s).
    assert result.steady_rate == 4 / 1.5


def test_without_two_answers_the_rate_is_the_plain_count() -> None:
    none = wrk_result(report(thread([])), concurrency=1, client_cpu_s=0.0)
    assert none.steady_rate == 0.0
    plain = LoadResult("httpx", 4, elapsed_s=2.0, ok=7, latencies_s=[], errors={}, client_cpu_s=0)
    assert plain.steady_rate == 3.5
