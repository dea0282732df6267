"""The fixed cost per run that batch shaping uses, fitted from timed runs."""

from __future__ import annotations

import pytest

from app.runtime.engine import overhead_tokens


def test_a_line_through_exact_timings_gives_its_intercept_in_tokens() -> None:
    # 2 ms per run plus 0.1 ms per token: the fixed cost is worth 20 tokens.
    times = {n * 32: 0.002 + 0.0001 * n * 32 for n in (1, 2, 4, 8, 16)}
    assert overhead_tokens(times, 8192) == pytest.approx(20.0)


def test_one_outlier_moves_the_fit_less_than_a_two_point_estimate() -> None:
    exact = {n * 32: 0.002 + 0.0001 * n * 32 for n in (1, 2, 4, 8, 16)}
    noisy = dict(exact)
    noisy[32] *= 1.15  # the one-row run was slow this time
    five = overhead_tokens(noisy, 8192)
    two = overhead_tokens({32: noisy[32], 512: noisy[512]}, 8192)
    assert abs(five - 20.0) < abs(two - 20.0)


def test_no_slope_means_every_run_costs_the_same_whatever_its_size() -> None:
    assert overhead_tokens({32: 0.01, 64: 0.009, 128: 0.008}, 8192) == 8192
    assert overhead_tokens({32: 0.01}, 4096) == 4096


def test_the_answer_stays_within_zero_and_the_limit() -> None:
    # Runs that cost less than nothing at zero tokens: clamp to no fixed cost.
    assert overhead_tokens({32: 0.001, 64: 0.003, 128: 0.007}, 8192) == 0.0
    assert overhead_tokens({32: 1.0, 64: 1.0001, 128: 1.0003}, 500) == 500
