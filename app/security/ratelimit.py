"""Token buckets per key and scope: requests per second and texts per second."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class Decision:
    """The answer for one request, with what the ``X-RateLimit-*`` headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float

    def limit_headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers alone: what a granted request's answer carries."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_s)),
        }

    def headers(self) -> dict[str, str]:
        """The limit headers plus ``Retry-After``: what a refusal (429) carries."""
        return {
            **self.limit_headers(),
            "Retry-After": str(max(1, math.ceil(self.retry_after_s))),
        }


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

    def decision(self, allowed: bool, retry_after_s: float) -> Decision:
        return Decision(
            allowed=allowed,
            # The burst a client may send at once: an integer even for fractional rates.
            limit=int(self.capacity),
            remaining=max(0, int(self.tokens)),
            reset_s=(self.capacity - self.tokens) / self.rate,
            retry_after_s=retry_after_s,
        )


class RateLimiter:
    """One request bucket and one text bucket per (key, scope); a rate of 0 means no limit."""

    def __init__(
        self,
        requests_per_s: Mapping[str, float],
        texts_per_s: Mapping[str, float],
        burst_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.requests_per_s = dict(requests_per_s)
        self.texts_per_s = dict(texts_per_s)
        self.burst_s = burst_s
        self.clock = clock
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        # Dependencies run on the event loop, but a sync route's would run in a thread.
        self._lock = threading.Lock()

    def counts_texts(self, scope: str) -> bool:
        return self.texts_per_s.get(scope, 0) > 0

    def _bucket(self, key: str, scope: str, kind: str, rate: float, now: float) -> TokenBucket:
        bucket = self._buckets.get((key, scope, kind))
        if bucket is None:
            bucket = TokenBucket(rate, rate * self.burst_s, now)
            self._buckets[(key, scope, kind)] = bucket
        bucket.refill(now)
        return bucket

    def check(self, key: str, scope: str, texts: int = 1) -> Decision | None:
        """Take one request (and ``texts`` texts) from the key's buckets, or refuse.

        Both buckets are checked before either is charged, so a refused request costs nothing.
        ``None`` when the scope has no limits.
        """
        now = self.clock()
        buckets: list[tuple[TokenBucket, float]] = []
        with self._lock:
            rps = self.requests_per_s.get(scope, 0)
            if rps > 0:
                buckets.append((self._bucket(key, scope, "requests", rps, now), 1.0))
            tps = self.texts_per_s.get(scope, 0)
            if tps > 0:
                buckets.append((self._bucket(key, scope, "texts", tps, now), float(texts)))
            if not buckets:
                return None
            waits = [bucket.wait_s(cost) for bucket, cost in buckets]
            if max(waits) > 0:
                # Report the bucket that refused: its wait is the one the client must honour.
                worst = waits.index(max(waits))
                return buckets[worst][0].decision(False, waits[worst])
            for bucket, cost in buckets:
                bucket.take(cost)
            # The request bucket describes the limit for the headers of a granted request.
            return buckets[0][0].decision(True, 0.0)
