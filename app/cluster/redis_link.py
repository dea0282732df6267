"""One replica's link to the Redis that replicas share: the client, and whether Redis answers.

Every Redis call on the request path goes through ``RedisLink.call``, which turns any Redis
or socket failure into ``SharedStateUnavailable`` so that each caller applies its own fallback
(rate limits: ``TEXTSERVE_REDIS_RATE_LIMIT_FAIL``; conversations: stateless). After a failure
the link stays *down* for ``retry_s``: requests take their fallback at once instead of each
waiting for a timeout, and one request then probes Redis again. A Redis that drops packets
therefore costs one timeout per ``retry_s``, not one per request; a stopped one (connection
refused) costs nothing noticeable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.config import Settings
from app.errors import SharedStateUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_CONNECTIONS = 32
CONNECT_TIMEOUT_S = 1.0
Clock = Callable[[], float]


@dataclass
class RedisStats:
    """What the metrics report (read at scrape time): up, errors by use, fallbacks by use."""

    up: bool = True
    errors: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[tuple[str, str]] = field(default_factory=Counter)


class RedisLink:
    """The asyncio client (one connection pool) and the up/down state every caller shares."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "textserve:",
        timeout_s: float = 0.25,
        retry_s: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._clock = clock
        # No retries inside the client: a failed call falls back at once, and the link
        # decides when Redis is tried again. A bounded pool: a burst of requests waits for
        # one of MAX_CONNECTIONS instead of opening a connection each, which on a busy
        # machine took longer than a call's timeout (60 at once: 0.8 s on 2 cores).
        # Opening a connection may take longer than a call: CONNECT_TIMEOUT_S at least.
        connect_s = max(timeout_s, CONNECT_TIMEOUT_S)
        self._pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=connect_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=connect_s,
            retry=Retry(NoBackoff(), 0),
        )
        self.client: redis.asyncio.Redis = redis.asyncio.Redis(connection_pool=self._pool)
        self._lock = threading.Lock()  # the promotion thread records failures too
        self._stats = RedisStats()
        self._retry_at = 0.0
        self._probing = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisLink | None:
        """The link ``TEXTSERVE_REDIS_URL`` names; ``None`` when unset (embedded defaults)."""
        url = settings.redis_url.get_secret_value() if settings.redis_url else ""
        if not url:
            return None
        return cls(
            url,
            prefix=settings.redis_prefix,
            timeout_s=settings.redis_timeout_ms / 1000.0,
            retry_s=settings.redis_retry_s,
        )

    @property
    def up(self) -> bool:
        return self._stats.up

    def stats(self) -> RedisStats:
        with self._lock:
            stats = self._stats
            return RedisStats(stats.up, Counter(stats.errors), Counter(stats.fallbacks))

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def call(self, use: str, operation: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
        """Run ``operation`` on the client; ``SharedStateUnavailable`` if Redis fails or is
        known to be down. ``use`` names the caller in the error metric and the log."""
        if not self._may_try():
            raise SharedStateUnavailable(f"Redis is unreachable (retried every {self.retry_s} s)")
        try:
            result = await operation(self.client)
        except (RedisError, OSError) as exc:
            self.failed(use, exc)
            raise SharedStateUnavailable(f"Redis is unreachable: {exc}") from exc
        except BaseException:
            # Cancelled (its client left): neither verdict; a probe must not stay taken.
            with self._lock:
                self._probing = False
            raise
        self.succeeded()
        return result

    async def ping(self) -> bool:
        """Whether Redis answers now (for /readyz); a success ends a down period early."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            self.failed("ping", exc)
            return False
        self.succeeded()
        return True

    def fallback(self, use: str, mode: str) -> None:
        """Count one request answered without Redis, and how (``stateless``, ``local``...)."""
        with self._lock:
            self._stats.fallbacks[(use, mode)] += 1

    def failed(self, use: str, exc: BaseException) -> None:
        with self._lock:
            was_up = self._stats.up
            self._stats.up = False
            self._stats.errors[use] += 1
            self._retry_at = self._clock() + self.retry_s
            self._probing = False
        if was_up:  # once per outage, not once per request
            log.error("Redis unreachable (%s): %s; falling back until it answers", use, exc)

    def succeeded(self) -> None:
        with self._lock:
            was_up = self._stats.up
            self._stats.up = True
            self._probing = False
        if not was_up:
            log.warning("Redis answers again: shared state restored")

    def _may_try(self) -> bool:
        with self._lock:
            if self._stats.up:
                return True
            # Down: one caller probes once the retry time has come; the others fall back.
            if self._probing or self._clock() < self._retry_at:
                return False
            self._probing = True
            return True

    async def aclose(self) -> None:
        await self.client.aclose()
        await self._pool.aclose()
