"""Token buckets per key and scope: requests per second and texts per second.

``Limiter`` is the interface the guard charges requests to; ``RateLimiter`` keeps the buckets
in this process's memory (the embedded default), ``RedisRateLimiter``
(app/security/ratelimit_redis.py) in the Redis the replicas share. Both answer with a
``Decision`` and run the same contract tests (tests/contract/test_rate_limits.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

Clock = Callable[[], float]
Kind = Literal["requests", "texts"]
# The suffix of each bucket's own headers: X-RateLimit-Limit-Requests, ...-Texts.
_SUFFIX: dict[str, str] = {"requests": "Requests", "texts": "Texts"}


@dataclass(frozen=True)
class BucketState:
    """One bucket after a request: its size, what is left, and seconds until it is full."""

    kind: Kind
    limit: int
    remaining: int
    reset_s: float

    @classmethod
    def of(cls, kind: Kind, rate: float, capacity: float, tokens: float) -> BucketState:
        return cls(
            kind=kind,
            # The burst a client may send at once: an integer even for fractional rates.
            limit=int(capacity),
            remaining=max(0, int(tokens)),
            reset_s=max(0.0, (capacity - tokens) / rate),
        )


@dataclass(frozen=True)
class Decision:
    """The answer for one request, with what the ``X-RateLimit-*`` headers report.

    ``limit``, ``remaining`` and ``reset_s`` describe the headline bucket: the one that
    refused, or the request bucket when granted. ``buckets`` holds every bucket charged.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float
    buckets: tuple[BucketState, ...] = ()

    @classmethod
    def of(
        cls,
        allowed: bool,
        headline: BucketState,
        buckets: tuple[BucketState, ...],
        retry_after_s: float = 0.0,
    ) -> Decision:
        return cls(
            allowed, headline.limit, headline.remaining, headline.reset_s, retry_after_s, buckets
        )

    def limit_headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers alone: what a granted request's answer carries.

        The unsuffixed three describe the headline bucket (as they always have); each bucket
        also has its own, suffixed ``-Requests`` or ``-Texts``.
        """
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_s)),
        }
        for bucket in self.buckets:
            suffix = _SUFFIX[bucket.kind]
            headers[f"X-RateLimit-Limit-{suffix}"] = str(bucket.limit)
            headers[f"X-RateLimit-Remaining-{suffix}"] = str(bucket.remaining)
            headers[f"X-RateLimit-Reset-{suffix}"] = str(math.ceil(bucket.reset_s))
        return headers

    def headers(self) -> dict[str, str]:
        """The limit headers plus ``Retry-After``: what a refusal (429) carries."""
        return {
            **self.limit_headers(),
            "Retry-After": str(max(1, math.ceil(self.retry_after_s))),
        }


class Limiter(Protocol):
    """Where the guard charges requests: in this process, or in Redis."""

    def counts_texts(self, scope: str) -> bool:
        """Whether the scope has a texts bucket (so the request's texts must be counted)."""
        ...

    async def acquire(self, key: str, scope: str, texts: int = 1) -> Decision | None:
        """Take one request and ``texts`` texts from the key's buckets, or refuse (both are
        checked before either is charged). ``None`` when the scope has no limits."""
        ...


@dataclass(frozen=True)
class Rates:
    """The configured rates (per second) and bucket size (seconds of the rate)."""

    requests_per_s: Mapping[str, float]
    texts_per_s: Mapping[str, float]
    burst_s: float

    def buckets(self, scope: str, texts: int) -> list[tuple[Kind, float, float, float]]:
        """(kind, rate, capacity, cost) of each bucket the scope charges, requests first."""
        found: list[tuple[Kind, float, float, float]] = []
        rps = self.requests_per_s.get(scope, 0)
        if rps > 0:
            found.append(("requests", rps, max(rps * self.burst_s, 1.0), 1.0))
        tps = self.texts_per_s.get(scope, 0)
        if tps > 0:
            found.append(("texts", tps, max(tps * self.burst_s, 1.0), float(texts)))
        return found


class TokenBucket:
    """``rate`` tokens a second, holding at most ``capacity``; starts full."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_s(self, cost: float) -> float:
        """Seconds until ``cost`` tokens are there (0 if they are now); call after refill."""
        # A cost above the capacity could never pass: it takes a full bucket instead.
        missing = min(cost, self.capacity) - self.tokens
        # The tolerance absorbs float error in the refill: a token due now is there now.
        return 0.0 if missing <= 1e-9 else missing / self.rate

    def take(self, cost: float) -> None:
        self.tokens -= min(cost, self.capacity)

    def state(self, kind: Kind) -> BucketState:
        return BucketState.of(kind, self.rate, self.capacity, self.tokens)


class RateLimiter:
    """In-process buckets: one request bucket and one text bucket per (key, scope); a rate
    of 0 means no limit. Each replica counts alone."""

    def __init__(
        self,
        requests_per_s: Mapping[str, float],
        texts_per_s: Mapping[str, float],
        burst_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.rates = Rates(dict(requests_per_s), dict(texts_per_s), burst_s)
        self.clock = clock
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        # Dependencies run on the event loop, but a sync route's would run in a thread.
        self._lock = threading.Lock()

    def counts_texts(self, scope: str) -> bool:
        return self.rates.texts_per_s.get(scope, 0) > 0

    async def acquire(self, key: str, scope: str, texts: int = 1) -> Decision | None:
        return self.check(key, scope, texts)

    def _bucket(self, key: str, scope: str, kind: str, rate: float, now: float) -> TokenBucket:
        bucket = self._buckets.get((key, scope, kind))
        if bucket is None:
            bucket = TokenBucket(rate, rate * self.rates.burst_s, now)
            self._buckets[(key, scope, kind)] = bucket
        bucket.refill(now)
        return bucket

    def check(self, key: str, scope: str, texts: int = 1) -> Decision | None:
        """``acquire`` without the coroutine: take one request (and ``texts`` texts) from
        the key's buckets, or refuse. ``None`` when the scope has no limits."""
        now = self.clock()
        with self._lock:
            charged = [
                (kind, self._bucket(key, scope, kind, rate, now), cost)
                for kind, rate, _, cost in self.rates.buckets(scope, texts)
            ]
            if not charged:
                return None
            waits = [bucket.wait_s(cost) for _, bucket, cost in charged]
            if max(waits) > 0:
                # Report the bucket that refused: its wait is the one the client must honour.
                worst = waits.index(max(waits))
                states = tuple(bucket.state(kind) for kind, bucket, _ in charged)
                return Decision.of(False, states[worst], states, waits[worst])
            for _, bucket, cost in charged:
                bucket.take(cost)
            states = tuple(bucket.state(kind) for kind, bucket, _ in charged)
            # The request bucket describes the limit for the headers of a granted request.
            return Decision.of(True, states[0], states)
