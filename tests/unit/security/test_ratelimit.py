"""Token buckets per key and scope, on a fake clock."""

from __future__ import annotations

import pytest

from app.security.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_bucket_refuses_beyond_the_burst_and_refills() -> None:
    clock = Clock()
    limiter = RateLimiter({"infer": 10.0}, {}, burst_s=1.0, clock=clock)
    granted = [limiter.check("a", "infer") for _ in range(10)]
    assert all(d is not None and d.allowed for d in granted)
    refused = limiter.check("a", "infer")
    assert refused is not None and not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.1)
    headers = refused.headers()
    assert headers["X-RateLimit-Limit"] == "10"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["Retry-After"] == "1"
    clock.now += 0.1
    again = limiter.check("a", "infer")
    assert again is not None and again.allowed


def test_keys_and_scopes_have_their_own_buckets() -> None:
    limiter = RateLimiter({"infer": 1.0, "admin": 1.0}, {}, burst_s=1.0, clock=Clock())
    assert limiter.check("a", "infer").allowed  # type: ignore[union-attr]
    assert not limiter.check("a", "infer").allowed  # type: ignore[union-attr]
    assert limiter.check("b", "infer").allowed  # type: ignore[union-attr]
    assert limiter.check("a", "admin").allowed  # type: ignore[union-attr]


def test_texts_bucket_charges_per_text_and_a_refusal_costs_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter({"infer": 100.0}, {"infer": 10.0}, burst_s=1.0, clock=clock)
    assert limiter.counts_texts("infer") and not limiter.counts_texts("admin")
    assert limiter.check("a", "infer", texts=8).allowed  # type: ignore[union-attr]
    refused = limiter.check("a", "infer", texts=5)
    assert refused is not None and not refused.allowed
    assert refused.limit == 10 and refused.remaining == 2  # the texts bucket refused
    # The refused request took no request token and no text token.
    assert limiter.check("a", "infer", texts=2).allowed  # type: ignore[union-attr]
    # A request larger than the bucket waits for a full bucket instead of never passing.
    clock.now += 1.0
    assert limiter.check("a", "infer", texts=50).allowed  # type: ignore[union-attr]


def test_scopes_without_limits_are_not_limited() -> None:
    limiter = RateLimiter({"infer": 0.0}, {}, burst_s=1.0, clock=Clock())
    assert limiter.check("a", "infer") is None
    assert limiter.check("a", "metrics") is None
