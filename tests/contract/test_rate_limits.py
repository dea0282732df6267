"""The rate-limit contract, for the in-process buckets and for the Redis ones alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.security.ratelimit import Limiter, RateLimiter, Rates
from app.security.ratelimit_redis import RedisRateLimiter
from tests.contract.conftest import redis_link


@asynccontextmanager
async def limiter(
    request: pytest.FixtureRequest, backend: str, rates: Rates
) -> AsyncIterator[Limiter]:
    if backend == "in_process":
        yield RateLimiter(rates.requests_per_s, rates.texts_per_s, rates.burst_s)
        return
    async with redis_link(request.node.redis_url) as link:
        yield RedisRateLimiter(link, rates)


# Rates slow enough that the test's own pace refills nothing worth a token.
SLOW = 0.01


def test_a_burst_passes_then_refusals_say_when_to_retry(
    request: pytest.FixtureRequest, backend: str
) -> None:
    async def main() -> None:
        async with limiter(request, backend, Rates({"infer": SLOW}, {}, 500.0)) as lim:
            granted = [await lim.acquire("a", "infer") for _ in range(5)]
            assert all(d is not None and d.allowed for d in granted)
            assert [d.remaining for d in granted if d] == [4, 3, 2, 1, 0]
            refused = await lim.acquire("a", "infer")
            assert refused is not None and not refused.allowed
            # One token at 0.01 a second: about 100 s away.
            assert 90 < refused.retry_after_s <= 100
            headers = refused.headers()
            assert headers["X-RateLimit-Limit"] == "5"
            assert headers["X-RateLimit-Remaining"] == "0"
            assert headers["Retry-After"] == str(int(headers["Retry-After"]))

    asyncio.run(main())


def test_tokens_come_back_at_the_rate(request: pytest.FixtureRequest, backend: str) -> None:
    async def main() -> None:
        # 20 a second, a bucket of 2: a token is back every 50 ms.
        async with limiter(request, backend, Rates({"infer": 20.0}, {}, 0.1)) as lim:
            assert (await lim.acquire("a", "infer")).allowed  # type: ignore[union-attr]
            assert (await lim.acquire("a", "infer")).allowed  # type: ignore[union-attr]
            refused = await lim.acquire("a", "infer")
            assert refused is not None and not refused.allowed
            assert 0 < refused.retry_after_s <= 0.05 + 1e-6
            await asyncio.sleep(refused.retry_after_s + 0.02)
            assert (await lim.acquire("a", "infer")).allowed  # type: ignore[union-attr]

    asyncio.run(main())


def test_both_buckets_are_checked_before_either_is_charged(
    request: pytest.FixtureRequest, backend: str
) -> None:
    async def main() -> None:
        rates = Rates({"infer": SLOW}, {"infer": SLOW}, 1000.0)  # 10 requests, 10 texts
        async with limiter(request, backend, rates) as lim:
            assert lim.counts_texts("infer") and not lim.counts_texts("admin")
            first = await lim.acquire("a", "infer", texts=8)
            assert first is not None and first.allowed
            # Granted: the headline is the request bucket; each bucket reports itself.
            assert (first.limit, first.remaining) == (10, 9)
            assert [(b.kind, b.limit, b.remaining) for b in first.buckets] == [
                ("requests", 10, 9),
                ("texts", 10, 2),
            ]
            refused = await lim.acquire("a", "infer", texts=5)
            assert refused is not None and not refused.allowed
            assert (refused.limit, refused.remaining) == (10, 2)  # the texts bucket refused
            # The refused request took no request token and no text token.
            again = await lim.acquire("a", "infer", texts=2)
            assert again is not None and again.allowed
            assert [b.remaining for b in again.buckets] == [8, 0]
            # A request larger than a full bucket waits for a full bucket, not forever.
            fresh = await lim.acquire("b", "infer", texts=50)
            assert fresh is not None and fresh.allowed

    asyncio.run(main())


def test_keys_and_scopes_have_their_own_buckets(
    request: pytest.FixtureRequest, backend: str
) -> None:
    async def main() -> None:
        rates = Rates({"infer": SLOW, "admin": SLOW}, {}, 100.0)  # one request each
        async with limiter(request, backend, rates) as lim:
            assert (await lim.acquire("a", "infer")).allowed  # type: ignore[union-attr]
            assert not (await lim.acquire("a", "infer")).allowed  # type: ignore[union-attr]
            assert (await lim.acquire("b", "infer")).allowed  # type: ignore[union-attr]
            assert (await lim.acquire("a", "admin")).allowed  # type: ignore[union-attr]

    asyncio.run(main())


def test_scopes_without_limits_are_not_limited(
    request: pytest.FixtureRequest, backend: str
) -> None:
    async def main() -> None:
        async with limiter(request, backend, Rates({"infer": 0.0}, {}, 1.0)) as lim:
            assert await lim.acquire("a", "infer") is None
            assert await lim.acquire("a", "metrics") is None

    asyncio.run(main())


def test_concurrent_requests_never_overdraw_a_bucket(
    request: pytest.FixtureRequest, backend: str
) -> None:
    async def main() -> None:
        async with limiter(request, backend, Rates({"infer": SLOW}, {}, 2000.0)) as lim:
            decisions = await asyncio.gather(*(lim.acquire("a", "infer") for _ in range(60)))
            assert sum(1 for d in decisions if d is not None and d.allowed) == 20

    asyncio.run(main())


def test_the_headers_report_both_buckets(request: pytest.FixtureRequest, backend: str) -> None:
    async def main() -> None:
        rates = Rates({"infer": 1.0}, {"infer": 50.0}, 10.0)
        async with limiter(request, backend, rates) as lim:
            started = time.monotonic()
            decision = await lim.acquire("a", "infer", texts=40)
            assert decision is not None
            headers = decision.limit_headers()
            assert headers["X-RateLimit-Limit"] == headers["X-RateLimit-Limit-Requests"] == "10"
            assert headers["X-RateLimit-Remaining-Requests"] == "9"
            assert headers["X-RateLimit-Limit-Texts"] == "500"
            assert headers["X-RateLimit-Remaining-Texts"] == "460"
            # 40 texts at 50 a second: full again in under a second, whole seconds up.
            assert headers["X-RateLimit-Reset-Texts"] == "1"
            assert headers["X-RateLimit-Reset-Requests"] == "1"
            assert time.monotonic() - started < 1

    asyncio.run(main())
